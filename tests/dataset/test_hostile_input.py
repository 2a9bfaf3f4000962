"""Hostile and broken inputs: files that are not files, special-token text, malformed CSV, wide encodings,
deep JSON, late NUL bytes, enormous records, and decoding damage reported at the source file's line.

Every case runs on real files, FIFOs, devices and links; every message is one line naming the file.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from medcal_gui.core.errors import DataError, InputError, OptionHint
from medcal_gui.dataset.export import export_dataset
from medcal_gui.dataset.formatting import format_record
from medcal_gui.dataset.reading.loader import LoadOptions, load_dataset
from medcal_gui.dataset.records import MAX_RECORD_CHARS
from medcal_gui.dataset.validation.validate import validate_file
from medcal_gui.dataset.variants import get_variant

VARIANT = "quantization_calibration"


def _format_fails(cli, *args) -> str:
    rc, out, err = cli("format", *args)
    assert rc == 2, (out, err)
    last = err.strip().splitlines()[-1]  # (progress lines may come before it)
    assert last.startswith("medcal format: error: ") and "Traceback" not in err, err  # one line, no traceback
    return last


def _validate_fails(cli, path) -> str:
    rc, out, err = cli("validate", path)
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medcal validate: error: "), err
    return lines[0]


# -- inputs that are not regular, readable files (2.12) ----------------------------------------------------

@pytest.mark.timeout(30)
def test_fifo_is_refused_at_once_without_waiting_for_a_writer(cli, tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    for err in (_format_fails(cli, fifo, "-o", tmp_path / "o.txt"), _validate_fails(cli, fifo)):
        assert f"{fifo}: is a named pipe (FIFO)" in err and "no such file" not in err
    with pytest.raises(InputError, match="is a named pipe"):
        load_dataset([fifo])  # the GUI's loader
    assert not (tmp_path / "o.txt").exists()


def test_dev_zero_is_refused_as_a_device(cli, tmp_path):
    for err in (_format_fails(cli, "/dev/zero", "-o", tmp_path / "o.txt"), _validate_fails(cli, "/dev/zero")):
        assert "/dev/zero: is a character device" in err and "no such file" not in err


def test_folder_given_where_a_file_is_needed(cli, tmp_path):
    folder = tmp_path / "notes.txt"
    folder.mkdir()
    assert f"{folder}: is a folder, not a calibration text file." in _validate_fails(cli, folder)


def test_broken_symlink_names_its_missing_target(cli, tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "gone.txt")
    for err in (_format_fails(cli, link, "-o", tmp_path / "o.txt"), _validate_fails(cli, link)):
        assert f"{link}: a symbolic link to {tmp_path / 'gone.txt'}, which does not exist." in err


def _unreadable(tmp_path: Path) -> Path:
    """A path the kernel refuses to read: chmod 000 for a normal user; for root (whom chmod does not stop),
    a link to /proc/sys/vm/drop_caches, which is write-only even for root."""
    if os.geteuid() != 0:
        p = tmp_path / "secret.txt"
        p.write_text("Below is a cardiology topic:\n\nAdult patient.\n", encoding="utf-8")
        p.chmod(0)
        return p
    link = tmp_path / "secret.txt"
    link.symlink_to("/proc/sys/vm/drop_caches")
    return link


def test_permission_denied_is_one_line_naming_the_file(cli, tmp_path):
    p = _unreadable(tmp_path)
    with pytest.raises(PermissionError):
        open(p, "rb").close()  # the premise: the kernel really refuses
    for err in (_format_fails(cli, p, "-o", tmp_path / "o.txt"), _validate_fails(cli, p)):
        assert f"{p}: cannot be read (permission denied)." in err


# -- special-token text inside a narrative (2b) ------------------------------------------------------------

@pytest.mark.parametrize("token", ["<bos>", "<eos>", "<pad>", "<mask>", "<start_of_image>", "<unused42>"])
def test_special_token_text_in_a_narrative_is_an_error_at_its_line(cli, make_file, tmp_path, h, token):
    p = make_file.narratives("t.txt", [h.ADULT, h.NEONATE + f"\nSecond line with {token} inside."])
    err = _format_fails(cli, p, "-o", tmp_path / "o.txt")
    assert f"{p}, line 8: record t-0002 contains {token} in its narrative" in err
    assert "control" in err and not (tmp_path / "o.txt").exists()
    (issue,) = [i for i in load_dataset([p]).issues if i.severity == "error"]
    assert issue.record_id == "t-0002" and f"{p}, line 8:" in issue.message


def test_special_token_text_in_a_formatted_file_fails_its_own_checklist_row(tmp_path, h):
    v = get_variant(VARIANT)
    text = format_record(h.ADULT, v) + format_record(h.NEONATE + " then <eos> and more", v)
    p = tmp_path / "f.txt"
    p.write_text(text, encoding="utf-8")
    r = validate_file(p)
    assert any("record f-0002 (line 12) contains <eos>" in e for e in r.errors)
    rows = {c.title: c.status for c in r.checks}
    assert rows["No special tokens inside narratives"] == "fail"
    assert rows["Proper <start_of_turn> / <end_of_turn> pairs"] == "pass"


# -- malformed CSV quoting (2b) ----------------------------------------------------------------------------

def test_csv_text_after_a_closing_quote_is_an_error_not_an_altered_narrative(make_file, h):
    p = make_file.bytes("q.csv", f'id,text\n1,"{h.ADULT}"\n2,"Adult patient "quoted" badly, 70 bpm."\n'.encode())
    (issue,) = load_dataset([p]).issues
    assert issue.severity == "error" and issue.message.startswith(f"{p}, line 3: text after the closing quote")
    assert load_dataset([p]).records == []


def test_csv_quote_never_closed_names_the_row_where_it_opened(make_file, h):
    p = make_file.bytes("u.csv", f'id,text\n1,"{h.ADULT}"\n2,"Neonate patient,\nstill open\n3,x\n'.encode())
    (issue,) = load_dataset([p]).issues
    assert issue.message.startswith(f"{p}, line 3: a quoted field opened in the row starting here is never "
                                    "closed")


# -- wide encodings without a BOM (2b) ---------------------------------------------------------------------

def test_bomless_utf16le_decodes_when_forced_and_is_named_when_not(cli, make_file, tmp_path, h):
    p = make_file.narratives("w.txt", [h.ADULT + " 37 \u00b0C", h.NEONATE], encoding="utf-16-le")
    assert not p.read_bytes().startswith((b"\xff\xfe", b"\xfe\xff"))
    ds = load_dataset([p], LoadOptions(encoding="utf-16-le"))
    assert ds.errors == [] and [r.text for r in ds.records] == [h.ADULT + " 37 \u00b0C", h.NEONATE]
    rc, _, err = cli("format", p, "--encoding", "utf-16-le", "-o", tmp_path / "o.txt")
    assert rc == 0, err
    assert " 37 \u00b0C" in (tmp_path / "o.txt").read_text(encoding="utf-8")
    (issue,) = load_dataset([p]).issues  # auto: not "binary", but what it is and what to choose
    assert "looks like UTF-16-LE text without a byte-order mark" in issue.message
    assert issue.hint == OptionHint("encoding", "utf-16-le")
    assert _format_fails(cli, p, "-o", tmp_path / "x.txt").endswith("Use --encoding utf-16-le.")


# -- deep JSON, late NUL bytes, enormous records (2b) ------------------------------------------------------

def test_deeply_nested_jsonl_is_a_clean_error_at_its_line(cli, make_file, tmp_path, h):
    p = make_file.bytes("deep.jsonl", (json.dumps({"text": h.ADULT}) + "\n" + "[" * 200_000 + "\n").encode())
    (issue,) = load_dataset([p]).issues
    assert issue.message.startswith(f"{p}, line 2: the JSON is nested too deeply")
    assert f"{p}, line 2: the JSON is nested too deeply" in _format_fails(cli, p, "-o", tmp_path / "o.txt")


def test_nul_byte_past_the_first_256_kb_is_reported_at_the_source_line(cli, make_file, tmp_path, h):
    records = [h.ADULT] * 1500 + [h.NEONATE.replace("bradycardia", "brady\x00cardia")]
    p = make_file.narratives("late.txt", records)
    assert p.read_bytes().index(b"\x00") > 256 * 1024
    line = 4 * 1500 + 3
    err = _format_fails(cli, p, "-o", tmp_path / "o.txt")
    assert f"{p}, line {line}: contains a NUL character (U+0000)" in err
    assert f"{p}, line {line}: contains a NUL character" in load_dataset([p]).errors[0]


def test_record_over_the_size_limit_is_refused_at_its_line(make_file, tmp_path, h):
    body = ("Adult patient on telemetry, sinus rhythm 72 bpm. " * (MAX_RECORD_CHARS // 40)).strip()
    p = make_file.narratives("huge.txt", [h.ADULT, body])
    with pytest.raises(DataError, match="the record starting here is longer than 1,000,000 characters") as e:
        export_dataset([p], out=tmp_path / "o.txt", variant=get_variant(VARIANT))
    assert e.value.line == 7 and not (tmp_path / "o.txt").exists()


def test_one_enormous_line_is_refused_with_bounded_memory(make_file, tmp_path):
    p = make_file.bytes("line.txt", b"Below is a cardiology topic:\n\nAdult " + b"sinus rhythm " * 4_000_000
                        + b"\n")  # 52 MB on one line
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="line 3: the line is longer than 4,000,000 characters"):
            export_dataset([p], out=tmp_path / "o.txt", variant=get_variant(VARIANT))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 48 * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB for a 52 MB line"


# -- decoding damage, reported in step 1 at the source line (issue 11, item 2) -----------------------------

def test_latin1_forced_on_cp1252_flags_c1_controls_at_the_source_line(make_file, h):
    p = make_file.narratives("cp.txt", [h.ADULT, h.NEONATE + "\n\u201cquiet\u201d night \u2013 no pauses."],
                             encoding="cp1252")
    ds = load_dataset([p], LoadOptions(encoding="latin-1"))
    (issue,) = [i for i in ds.issues if i.severity == "warning" and "C1" in i.message]
    assert issue.message.startswith(f"{p}, line 8: C1 control characters (first: U+0093)")
    assert (issue.line, issue.hint) == (8, OptionHint("encoding", "cp1252"))
    assert issue.message in ds.warnings  # what the Narratives pane lists as the file's warnings
    assert not any("C1" in w for w in load_dataset([p]).warnings)  # auto-detected as cp1252: clean


def test_utf8_read_as_cp1252_is_flagged_as_mojibake_with_a_utf8_hint(make_file, h):
    p = make_file.narratives("u8.txt", [h.ADULT, h.NEONATE + "\nThe nurse\u2019s note: caf\u00e9."])
    ds = load_dataset([p], LoadOptions(encoding="cp1252"))
    (issue,) = ds.issues
    assert issue.message.startswith(f"{p}, line 8: mojibake (first: 'â€™' for '’')")
    assert issue.hint == OptionHint("encoding", "utf-8")
    assert load_dataset([p]).issues == []


def test_double_encoded_utf8_and_replacement_characters_are_warned_without_a_hint(make_file, h):
    p = make_file.narratives("d.txt", [h.ADULT + " The nurse\u00e2\u20ac\u2122s note.", h.NEONATE + " \ufffd"])
    kinds = {i.message.split(": ", 2)[1].split(" (")[0]: i for i in load_dataset([p]).issues}
    assert set(kinds) == {"mojibake", "U+FFFD replacement characters"}
    assert kinds["mojibake"].line == 3 and kinds["mojibake"].hint is None
    assert kinds["U+FFFD replacement characters"].line == 7


def test_cli_export_stops_at_the_source_line_of_c1_damage(cli, make_file, tmp_path, h):
    p = make_file.narratives("cp.txt", [h.ADULT + " \u201cok\u201d"], encoding="cp1252")
    err = _format_fails(cli, p, "--encoding", "latin-1", "-o", tmp_path / "o.txt")
    assert f"{p}, line 3: C1 control characters" in err and err.endswith("Use --encoding cp1252.")
