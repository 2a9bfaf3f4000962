"""Per-file encoding detection: BOM, strict UTF-8, chardet, latin-1; forced encodings; line ends."""

from __future__ import annotations

import codecs
import json

import chardet
import pytest

from medcal_gui.core.errors import DataError, InputError
from medcal_gui.dataset.reading.encoding import CHARDET_MIN_CONFIDENCE, SAMPLE_BYTES, detect_encoding
from medcal_gui.dataset.reading.loader import LoadOptions, load_dataset

SYMBOLS = ("Adult patient, 61 years old, temperature 37.2 \u00b0C, HR 72 \u00b1 4 bpm, norepinephrine "
           "0.05 \u00b5g/kg/min.\nSecond line of the same narrative.")
SMART = ("Adult patient, 54 years old, reported \u201cpalpitations at night\u201d; the nurse\u2019s note "
         "says HR 60\u201380 bpm, temperature 37.4 \u00b0C.\nSecond line of the same narrative.")
PLAIN = ("Neonate patient, 3 days old, SpO2 97% on room air, monitored overnight with no events of any "
         "kind recorded at all.")
C1 = [chr(c) for c in range(0x80, 0xA0)]


def _texts(path, **opts):
    ds = load_dataset([path], LoadOptions(**opts))
    assert ds.errors == []
    return [r.text for r in ds.records], ds


def _format_json(cli, path, tmp_path, *extra):
    rc, out, err = cli("format", path, "-o", tmp_path / "out" / "f.txt", "--json", *extra)
    assert rc == 0, err
    return json.loads(out), (tmp_path / "out" / "f.txt").read_text(encoding="utf-8")


def test_plain_utf8_is_read_as_utf8_without_chardet(make_file, cli, tmp_path):
    p = make_file.narratives("u8.txt", [SYMBOLS, PLAIN])
    info = detect_encoding(p)
    assert (info.encoding, info.method, info.confidence) == ("utf-8", "utf-8", None)
    res, formatted = _format_json(cli, p, tmp_path)
    assert res["files"][0]["encoding_method"] == "utf-8"
    assert res["records"] == 2
    assert SYMBOLS in formatted


def test_utf8_bom_with_crlf_decodes_without_bom_or_carriage_returns(make_file, cli, tmp_path):
    p = make_file.narratives("bom.txt", [SYMBOLS, PLAIN], eol="\r\n", bom=codecs.BOM_UTF8)
    info = detect_encoding(p)
    assert (info.encoding, info.method) == ("utf-8-sig", "bom")
    texts, ds = _texts(p)
    assert texts == [SYMBOLS, PLAIN]
    assert [r.line for r in ds.records] == [3, 8]
    res, formatted = _format_json(cli, p, tmp_path)
    assert res["files"][0]["encoding"] == "utf-8-sig"
    assert res["files"][0]["encoding_method"] == "bom"
    raw = (tmp_path / "out" / "f.txt").read_bytes()
    assert b"\r" not in raw and not raw.startswith(codecs.BOM_UTF8)
    assert "\ufeff" not in formatted


@pytest.mark.parametrize("codec, bom, expected", [
    ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16"),
    ("utf-16-be", codecs.BOM_UTF16_BE, "utf-16"),
    ("utf-32-le", codecs.BOM_UTF32_LE, "utf-32"),
    ("utf-32-be", codecs.BOM_UTF32_BE, "utf-32"),
])
def test_utf16_and_utf32_with_bom_decode_by_bom(make_file, cli, tmp_path, codec, bom, expected):
    p = make_file.narratives(f"{codec}.txt", [SYMBOLS, PLAIN], encoding=codec, bom=bom)
    info = detect_encoding(p)
    assert (info.encoding, info.method, info.confidence) == (expected, "bom", None)
    texts, _ = _texts(p)
    assert texts == [SYMBOLS, PLAIN]
    res, formatted = _format_json(cli, p, tmp_path)
    assert res["files"][0]["encoding_method"] == "bom"
    assert "37.2 \u00b0C, HR 72 \u00b1 4 bpm" in formatted and "0.05 \u00b5g" in formatted


def test_utf32_le_bom_is_not_mistaken_for_utf16(make_file):
    # The UTF-32 LE BOM (FF FE 00 00) starts with the UTF-16 LE BOM (FF FE).
    p = make_file.narratives("u32.txt", [PLAIN], encoding="utf-32-le", bom=codecs.BOM_UTF32_LE)
    assert detect_encoding(p).encoding == "utf-32"
    assert _texts(p)[0] == [PLAIN]


def test_cp1252_smart_quotes_decode_to_quotes(make_file, cli, tmp_path):
    p = make_file.narratives("cp.txt", [SMART, PLAIN], encoding="cp1252")
    assert b"\x93" in p.read_bytes()  # a real cp1252 file: smart quotes are bytes 0x93/0x94
    info = detect_encoding(p)
    det = chardet.detect(p.read_bytes()[:SAMPLE_BYTES])
    assert info.encoding == "cp1252"
    # chardet's confidence decides the method; either way the report carries chardet's own numbers.
    expected_method = "chardet" if det["confidence"] >= CHARDET_MIN_CONFIDENCE else "fallback"
    assert info.method == expected_method
    assert info.confidence == pytest.approx(det["confidence"])
    assert info.guess == det["encoding"]
    texts, _ = _texts(p)
    assert texts == [SMART, PLAIN]
    assert not any(c in texts[0] for c in C1)
    res, formatted = _format_json(cli, p, tmp_path)
    assert res["files"][0]["encoding"] == "cp1252"
    assert res["files"][0]["encoding_method"] == expected_method
    assert res["files"][0]["chardet_confidence"] == pytest.approx(det["confidence"])
    assert "\u201cpalpitations at night\u201d; the nurse\u2019s note says HR 60\u201380 bpm" in formatted


def test_latin1_degree_micro_plus_minus_decode_exactly(make_file, cli, tmp_path):
    p = make_file.narratives("lat.txt", [SYMBOLS, PLAIN], encoding="latin-1")
    assert not any(0x80 <= b <= 0x9F for b in p.read_bytes())
    info = detect_encoding(p)
    assert info.method in ("chardet", "fallback")
    assert info.confidence is not None  # chardet was consulted and its confidence reported
    texts, _ = _texts(p)
    assert texts == [SYMBOLS, PLAIN]
    res, formatted = _format_json(cli, p, tmp_path)
    assert res["files"][0]["encoding_method"] == info.method
    assert "37.2 \u00b0C, HR 72 \u00b1 4 bpm, norepinephrine 0.05 \u00b5g/kg/min." in formatted


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def test_non_utf8_without_c1_bytes_follows_chardet_only_when_it_is_sure(make_file, cli, tmp_path):
    # The rule, on whatever chardet is installed (5.2 is often sure of this text, 7.x is not): chardet's
    # guess is used when its confidence reaches CHARDET_MIN_CONFIDENCE and the whole file decodes with it;
    # otherwise latin-1, the last resort, reads it and a warning says so. Both branches assert; none skips.
    p = make_file.narratives("short.txt", ["Adult patient, 40 \u00b0C fever, HR 120 bpm, BP 90/60 mmHg, "
                                           "SpO2 93%, sinus tachycardia on telemetry overnight."],
                             encoding="latin-1")
    data = p.read_bytes()
    assert not any(0x80 <= b <= 0x9F for b in data) and not _decodes(data, "utf-8")
    det = chardet.detect(data[:SAMPLE_BYTES])
    info = detect_encoding(p)
    assert info.guess == det["encoding"] and info.confidence == pytest.approx(det["confidence"] or 0.0)
    sure = bool(det["encoding"]) and det["confidence"] >= CHARDET_MIN_CONFIDENCE and _decodes(
        data, det["encoding"])
    res, formatted = _format_json(cli, p, tmp_path)
    fallback_warned = [w for w in res["warnings"] if "short.txt" in w and "latin-1 (the last resort" in w]
    if sure:
        assert (info.method, info.encoding) == ("chardet", codecs.lookup(det["encoding"]).name)
        assert fallback_warned == []
        assert data.decode(info.encoding).split("\n\n", 1)[1].strip() in formatted  # chardet's reading, kept
    else:
        assert (info.method, info.encoding) == ("fallback", "latin-1")
        assert len(fallback_warned) == 1
        assert "40 \u00b0C fever" in formatted  # latin-1 reads this file exactly


def test_lone_cr_line_ends_are_normalised_to_lf(make_file, cli, tmp_path):
    p = make_file.narratives("cr.txt", [SYMBOLS, PLAIN], eol="\r")
    assert b"\n" not in p.read_bytes()
    texts, ds = _texts(p)
    assert texts == [SYMBOLS, PLAIN]
    assert [r.line for r in ds.records] == [3, 8]
    res, formatted = _format_json(cli, p, tmp_path)
    assert res["records"] == 2
    assert b"\r" not in (tmp_path / "out" / "f.txt").read_bytes()
    assert "norepinephrine 0.05 \u00b5g/kg/min.\nSecond line of the same narrative.\n<end_of_turn>" in formatted


def test_mixed_crlf_and_lf_in_one_file_are_all_lf(make_file):
    data = ("Below is a cardiology topic:\r\n\r\n" + SYMBOLS.replace("\n", "\r\n") + "\r\n\n"
            "Below is a cardiology topic:\n\r" + PLAIN + "\r").encode()
    p = make_file.bytes("mixed.txt", data)
    texts, ds = _texts(p)
    assert texts == [SYMBOLS, PLAIN]
    assert [r.line for r in ds.records] == [3, 8]  # CRLF, LF and a lone CR each end one line


def test_forced_encoding_is_reported_as_forced(make_file, cli, tmp_path):
    p = make_file.narratives("cp.txt", [SMART], encoding="cp1252")
    info = detect_encoding(p, "cp1252")
    assert (info.encoding, info.method, info.confidence, info.guess) == ("cp1252", "forced", None, None)
    res, formatted = _format_json(cli, p, tmp_path, "--encoding", "cp1252")
    assert res["files"][0]["encoding_method"] == "forced"
    assert "\u201cpalpitations at night\u201d" in formatted


def test_forced_latin1_reads_utf8_bytes_as_latin1_characters(make_file):
    # The user's choice wins over detection, even when it makes mojibake: nothing is guessed behind it.
    p = make_file.narratives("u8.txt", [SYMBOLS])
    texts, ds = _texts(p, encoding="latin-1")
    assert ds.files[0].encoding.method == "forced"
    assert "37.2 \u00c2\u00b0C" in texts[0]


def test_forced_utf8_on_a_utf8_bom_file_drops_the_bom(make_file):
    p = make_file.narratives("bom.txt", [PLAIN], bom=codecs.BOM_UTF8)
    info = detect_encoding(p, "utf-8")
    assert (info.encoding, info.method) == ("utf-8-sig", "forced")
    assert _texts(p, encoding="utf-8")[0] == [PLAIN]


def test_forced_unknown_codec_is_an_input_error(make_file):
    p = make_file.narratives("u8.txt", [PLAIN])
    with pytest.raises(InputError, match="Unknown encoding 'klingon-8'"):
        detect_encoding(p, "klingon-8")


def test_forced_encoding_that_does_not_fit_names_file_and_line(make_file):
    p = make_file.narratives("cp.txt", [PLAIN, SMART], encoding="cp1252")
    with pytest.raises(DataError) as exc:
        detect_encoding(p, "utf-8")
    # Records: header 1, blank 2, PLAIN 3, blank 4, header 5, blank 6, SMART 7 (the smart quotes).
    assert exc.value.path == str(p) and exc.value.line == 7
    assert exc.value.message.startswith(f"{p}, line 7: bytes that are not valid utf-8")


def test_bom_file_with_invalid_body_is_an_error_not_replaced(make_file):
    p = make_file.bytes("badbom.txt", codecs.BOM_UTF8 + b"Below is a cardiology topic:\n\nAdult \xff\xfe x\n")
    with pytest.raises(DataError, match="byte-order mark but is not valid UTF-8") as exc:
        detect_encoding(p)
    assert exc.value.line == 3


def test_byte_undefined_in_cp1252_is_kept_not_replaced(make_file):
    # 0x81 has no cp1252 character: the last resort (latin-1) keeps it as U+0081, never as U+FFFD.
    p = make_file.bytes("odd.txt", b"Below is a cardiology topic:\n\nAdult patient \x81 with a stray byte "
                                   b"\xb0 in a narrative long enough to be a real record of monitoring.\n")
    info = detect_encoding(p)
    assert (info.encoding, info.method) == ("latin-1", "fallback")
    texts, _ = _texts(p)
    assert "\x81" in texts[0] and "\ufffd" not in texts[0] and "\u00b0" in texts[0]
