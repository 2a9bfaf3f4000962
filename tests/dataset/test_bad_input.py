"""Bad input: a clear message naming the file, exit code 2, and nothing left behind in the output folder."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from medcal_gui.core.errors import DataError, OutputError
from medcal_gui.dataset.export import export_dataset
from medcal_gui.dataset.reading.loader import load_dataset
from medcal_gui.dataset.variants import get_variant


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    (d / "keep.txt").write_bytes(b"an unrelated file that must survive")
    return d


def _fails(cli, h, out, *args):
    """Run `medcal format ... -d out` expecting exit 2; check out/ is unchanged; return stderr."""
    rc, stdout, err = cli("format", *args, "-d", out)
    assert rc == 2, (stdout, err)
    assert h.listing(out) == ["keep.txt"]
    assert (out / "keep.txt").read_bytes() == b"an unrelated file that must survive"
    assert h.partials(out.parent) == []
    assert err.strip().splitlines()[-1].startswith("medcal format: error: ")
    return err


def test_empty_file(cli, h, make_file, out):
    p = make_file.bytes("empty.txt", b"")
    err = _fails(cli, h, out, p)
    assert f"{p}: the file is empty." in err


def test_binary_file_with_nul_bytes(cli, h, make_file, out):
    p = make_file.bytes("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    err = _fails(cli, h, out, p)
    assert f"{p}: this looks like a binary file (it contains NUL bytes)" in err


def test_folder_with_no_usable_files(cli, h, make_file, out):
    make_file.bytes("docs/notes.md", b"# notes\n")
    make_file.bytes("docs/data.json", b"{}")
    folder = make_file.root / "docs"
    err = _fails(cli, h, out, folder)
    assert f"{folder}: the folder holds no usable files (looked for *.txt, *.jsonl, *.csv)." in err


def test_file_without_headers_suggests_split_paragraphs(cli, h, make_file, out):
    p = make_file.bytes("plain.txt", b"\nAdult patient on telemetry.\n\nNeonate patient on a monitor.\n")
    err = _fails(cli, h, out, p)
    assert f"{p}, line 2: text before the first 'Below is a <topic> topic:' header" in err
    assert err.rstrip().endswith("Use --split paragraphs.")  # the CLI's phrasing of the error's hint


def test_undecodable_bytes_under_forced_encoding_name_file_and_line(cli, h, make_file, out):
    p = make_file.bytes("cp.txt", "Below is a cardiology topic:\n\nAdult patient.\n\u201cquoted\u201d\n"
                        .encode("cp1252"))
    err = _fails(cli, h, out, p, "--encoding", "utf-8")
    assert f"{p}, line 4: bytes that are not valid utf-8" in err and err.rstrip().endswith("Use --encoding auto.")


def test_turn_marker_inside_a_narrative_names_record_file_and_line(cli, h, make_file, out):
    p = make_file.narratives("m.txt", [h.ADULT, h.NEONATE + "\nthen <start_of_turn>model said hi"])
    err = _fails(cli, h, out, p)
    assert (f"{p}, line 8: record m-0002 contains the turn marker <start_of_turn> in its narrative" in err)


def test_error_in_a_later_file_leaves_no_partial_output(cli, h, make_file, out):
    good = make_file.narratives("a.txt", h.NARRATIVES * 300)  # several thousand lines written first
    bad = make_file.narratives("b.txt", [h.ADULT, "Adult <end_of_turn> here."])
    err = _fails(cli, h, out, good, bad, "--all-variants")
    assert f"{bad}, line 7: record b-0002 contains the turn marker <end_of_turn>" in err


def test_mixed_encodings_work_with_a_warning_naming_files(cli, h, make_file, tmp_path):
    a = make_file.narratives("a.txt", [h.ADULT + " 37 \u00b0C"])
    b = make_file.narratives("b.txt", [h.NEONATE + " \u201cquiet\u201d"], encoding="cp1252")
    c = make_file.narratives("c.txt", [h.OTHER], encoding="utf-16")
    rc, stdout, err = cli("format", a, b, c, "-o", tmp_path / "o.txt", "--json")
    assert rc == 0, err
    res = json.loads(stdout)
    assert res["records"] == 3
    assert ("The input files use different encodings (a.txt: UTF-8, b.txt: cp1252, c.txt: UTF-16); each was "
            "decoded with its own, and every output is UTF-8.") in res["warnings"][0]
    text = (tmp_path / "o.txt").read_text(encoding="utf-8")
    assert "37 \u00b0C" in text and "\u201cquiet\u201d" in text


def test_same_encoding_everywhere_gives_no_warning(cli, make_file, tmp_path, h):
    a = make_file.narratives("a.txt", [h.ADULT])
    b = make_file.narratives("b.txt", [h.NEONATE], bom=b"\xef\xbb\xbf")  # UTF-8 with and without BOM
    rc, stdout, err = cli("format", a, b, "-o", tmp_path / "o.txt", "--json")
    assert rc == 0, err
    assert json.loads(stdout)["warnings"] == []


def test_output_equal_to_an_input_is_refused(cli, h, make_file):
    p = make_file.narratives("a.txt", [h.ADULT])
    before = p.read_bytes()
    rc, _, err = cli("format", p, "-o", p)
    assert rc == 2
    assert f"The output {p} is the same file as the input {p}: medcal never overwrites an input." in err
    assert p.read_bytes() == before and h.listing(make_file.root) == ["a.txt"]


def test_all_variants_over_an_input_in_the_same_folder_is_refused(cli, h, make_file):
    p = make_file.narratives("cardiology_calibration_imatrix.txt", [h.ADULT])
    before = p.read_bytes()
    rc, _, err = cli("format", p, "--all-variants", "-d", make_file.root)
    assert rc == 2 and "medcal never overwrites an input" in err
    assert p.read_bytes() == before and h.listing(make_file.root) == ["cardiology_calibration_imatrix.txt"]


def test_unwritable_output_folder_under_a_regular_file(cli, h, make_file, tmp_path):
    # Tests may run as root, where permissions do not stop writes: a folder below a file cannot exist.
    p = make_file.narratives("a.txt", [h.ADULT])
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"a file, not a folder")
    rc, _, err = cli("format", p, "-d", blocker / "sub")
    assert rc == 2
    assert f"Cannot write to the folder {blocker / 'sub'}" in err and "Pick a folder you can write to." in err
    rc, _, err = cli("format", p, "-o", blocker / "f.txt")
    assert rc == 2 and f"Cannot write to the folder {blocker}" in err
    assert blocker.read_bytes() == b"a file, not a folder"
    with pytest.raises(OutputError):
        export_dataset([p], dest_dir=blocker / "x", variant=get_variant("quantization_calibration"))


def test_missing_input_file(cli, h, tmp_path, out):
    err = _fails(cli, h, out, tmp_path / "nope.txt")
    assert f"{tmp_path / 'nope.txt'}: no such file or folder." in err


def test_conflicting_output_options(cli, h, make_file, tmp_path):
    p = make_file.narratives("a.txt", [h.ADULT])
    rc, _, err = cli("format", p, "-o", tmp_path / "x.txt", "-d", tmp_path)
    assert rc == 2 and "Use either -o FILE or -d DIR, not both." in err
    rc, _, err = cli("format", p, "-o", tmp_path / "x.txt", "--all-variants")
    assert rc == 2 and "--all-variants writes several files" in err
    assert not (tmp_path / "x.txt").exists()
    assert [n for n in h.listing(tmp_path) if n.endswith(".txt")] == ["in/a.txt"]


def test_empty_narrative_after_header_is_an_error(make_file, tmp_path, h):
    p = make_file.bytes("e.txt", f"Below is a cardiology topic:\n\n{h.ADULT}\n\nBelow is a cardiology "
                                 "topic:\n\n\n".encode())
    with pytest.raises(DataError, match="record e-0002 has an empty narrative"):
        export_dataset([p], dest_dir=tmp_path / "o", variant=get_variant("quantization_calibration"))
    assert h.listing(tmp_path / "o") == []


@pytest.mark.slow
def test_large_file_streams_with_bounded_memory(tmp_path, sample_file, h):
    """~60 MB of narratives: peak traced memory stays under 100 MB and every record is counted."""
    pool = [r.text for r in load_dataset([sample_file]).records]
    src = tmp_path / "big.txt"
    n = 0
    # Records of four sample narratives (~2.6 KB, a long monitoring report): tracemalloc's cost grows
    # with the number of records, and this keeps the test well under 30 s.
    with open(src, "w", encoding="utf-8", newline="\n") as fh:
        while fh.tell() < 60_000_000:
            body = "\n".join(pool[(4 * n + i) % len(pool)] for i in range(4))
            fh.write(f"Below is a cardiology topic:\n\n{body}\nRef {n}.\n\n")
            n += 1
    t0 = time.monotonic()
    tracemalloc.start()
    try:
        res = export_dataset([src], out=tmp_path / "out" / "f.txt",
                             variant=get_variant("quantization_calibration"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    seconds = time.monotonic() - t0
    assert res.records == n and n > 20_000
    assert res.validation.records == n and res.validation.errors == []
    assert peak < 100 * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB"
    out = tmp_path / "out" / "f.txt"
    assert out.stat().st_size > src.stat().st_size
    with open(out, "rb") as fh:
        assert fh.read(19) == b"<start_of_turn>user"
    assert h.partials(tmp_path) == []
    print(f"{n} records, {src.stat().st_size / 1e6:.0f} MB in {seconds:.1f} s, peak {peak / 2**20:.0f} MiB")
