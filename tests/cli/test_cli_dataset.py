"""`medcal format` and `medcal validate` run in-process: exit codes 0/1/2 and the JSON they print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcal_gui.cli.main import main

SAMPLE_POPULATIONS = {"adolescent": 24, "adult": 7, "neonate": 7}


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDCAL_HOME", str(tmp_path / "medcal-home"))


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def formatted(tmp_path: Path, sample_file: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "medgemma_calibration_imatrix_formatted.txt"
    rc, _, err = run(capsys, "format", sample_file, "-o", out)
    assert rc == 0, err
    return out


def test_format_sample_json(tmp_path, sample_file, capsys):
    rc, out, err = run(capsys, "format", sample_file, "-d", tmp_path / "o", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["records"] == 38 and res["populations"] == SAMPLE_POPULATIONS
    assert res["errors"] == [] and res["warnings"] == []
    assert res["outputs"] == [str(tmp_path / "o" / "medgemma_calibration_imatrix_formatted.txt")]
    assert res["validation"]["turns"] == {"start_of_turn": 76, "end_of_turn": 76, "user": 38, "model": 38}
    assert res["files"][0]["encoding_method"] == "utf-8"


def test_format_sample_text_report(tmp_path, sample_file, capsys):
    rc, out, _ = run(capsys, "format", sample_file, "-o", tmp_path / "f.txt")
    assert rc == 0
    assert f"{sample_file}: read as utf-8 (valid UTF-8 throughout)" in out
    assert "38 records (24 adolescent, 7 adult, 7 neonate); variant quantization_calibration, layout seed" in out
    assert f"wrote {tmp_path / 'f.txt'}" in out


def test_validate_sample_output_json(formatted, sample_file, capsys):
    rc, out, _ = run(capsys, "validate", formatted, "--json", "--expect-records", "38", "--source", sample_file)
    assert rc == 0
    rep = json.loads(out)
    assert rep["records"] == 38 and rep["populations"] == SAMPLE_POPULATIONS
    assert rep["errors"] == [] and rep["warnings"] == []
    assert rep["narratives_compared"] == 38 and rep["utf8_valid"] is True
    assert rep["marker"] == "[QUANTIZATION CALIBRATION]" and rep["layout"] == "seed"
    assert rep["file_size"] == formatted.stat().st_size
    assert {c["status"] for c in rep["checks"]} <= {"pass", "info"}


def test_validate_wrong_expected_count_exits_1(formatted, capsys):
    rc, out, _ = run(capsys, "validate", formatted, "--json", "--expect-records", "37")
    assert rc == 1
    assert json.loads(out)["errors"] == ["Expected 37 records, found 38."]


def test_validate_text_output_lists_checks_and_errors(formatted, capsys):
    rc, out, _ = run(capsys, "validate", formatted, "--expect-records", "40")
    assert rc == 1
    assert f"{formatted}: 38 records (chat, seed layout)" in out
    assert "  [FAIL] All records present: 38 of 40 expected records" in out
    assert "  [PASS] User turns = model turns = records: 38 user, 38 model, 38 records" in out
    assert "error: Expected 40 records, found 38." in out


def test_validate_changed_narrative_against_source_exits_1(formatted, sample_file, tmp_path, capsys):
    edited = tmp_path / "edited.txt"
    edited.write_bytes(formatted.read_bytes().replace(b"mean HR 84", b"mean HR 85", 1))
    rc, out, _ = run(capsys, "validate", edited, "--json", "--source", sample_file)
    assert rc == 1
    assert json.loads(out)["errors"] == ["record edited-0001 (line 1): the narrative differs from its source."]


def test_validate_broken_turns_exits_1(formatted, tmp_path, capsys):
    broken = tmp_path / "broken.txt"
    broken.write_bytes(formatted.read_bytes().replace(b"<end_of_turn>\n", b"", 1))
    rc, out, _ = run(capsys, "validate", broken, "--json")
    rep = json.loads(out)
    assert rc == 1
    assert "76 <start_of_turn> but 75 <end_of_turn>: the turns are not paired." in rep["errors"]


def test_validate_invalid_utf8_exits_1(formatted, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(formatted.read_bytes().replace("°".encode(), b"\xb0", 1))
    rc, out, _ = run(capsys, "validate", bad, "--json")
    rep = json.loads(out)
    assert rc == 1 and rep["utf8_valid"] is False
    assert any("not valid UTF-8" in e for e in rep["errors"])


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "the file is empty"),
    (b"\x00\x01\x02 binary", "binary file"),
])
def test_validate_unusable_input_exits_2(tmp_path, capsys, content, message):
    p = tmp_path / "x.txt"
    if content is not None:
        p.write_bytes(content)
    rc, out, err = run(capsys, "validate", p, "--json")
    assert rc == 2 and out == ""
    assert err.startswith(f"medcal validate: error: {p}") and message in err


def test_validate_original_format_sample(sample_file, capsys):
    rc, out, _ = run(capsys, "validate", sample_file, "--json", "--expect-records", "38")
    rep = json.loads(out)
    assert rc == 0 and rep["kind"] == "narratives"
    assert rep["records"] == 38 and rep["populations"] == SAMPLE_POPULATIONS


def test_format_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "plain.txt"
    src.write_text("Adult patient without any header line.\n", encoding="utf-8")
    rc, out, err = run(capsys, "format", src, "-d", tmp_path / "o")
    assert rc == 2 and out == ""
    assert "--split paragraphs" in err
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_format_split_paragraphs_option(tmp_path, capsys):
    src = tmp_path / "plain.txt"
    src.write_text("Adult patient one, on telemetry for two days with sinus rhythm and no events at all.\n\n"
                   "Neonate patient two, on a monitor overnight with stable saturations and no pauses.\n",
                   encoding="utf-8")
    rc, out, err = run(capsys, "format", src, "--split", "paragraphs", "-o", tmp_path / "f.txt", "--json")
    assert rc == 0, err
    assert json.loads(out)["populations"] == {"adult": 1, "neonate": 1}


def test_format_text_field_option_for_jsonl(tmp_path, capsys):
    src = tmp_path / "rows.jsonl"
    src.write_text(json.dumps({"body": "Adolescent patient, 12 years old, on Holter monitoring for 24 hours, "
                                       "benign findings."}) + "\n", encoding="utf-8")
    rc, _, err = run(capsys, "format", src, "-o", tmp_path / "f.txt")
    assert rc == 2 and ("no 'text' field (fields: body). Choose the field that holds the narrative with "
                        "--text-field NAME.") in err
    rc, out, err = run(capsys, "format", src, "--text-field", "body", "-o", tmp_path / "f.txt", "--json")
    assert rc == 0, err
    assert json.loads(out)["populations"] == {"adolescent": 1}


def test_format_unknown_variant_exits_2(tmp_path, sample_file, capsys):
    rc, _, err = run(capsys, "format", sample_file, "--variant", "nope", "-o", tmp_path / "f.txt")
    assert rc == 2 and "Unknown variant 'nope'" in err
    assert not (tmp_path / "f.txt").exists()


def test_cli_phrases_each_option_hint_with_its_flag():
    from medcal_gui.cli.hints import cli_hint, cli_message
    from medcal_gui.core.errors import DataError, OptionHint

    assert cli_hint(None) == ""
    assert cli_hint(OptionHint("split", "paragraphs")) == " Use --split paragraphs."
    assert cli_hint(OptionHint("encoding", "cp1252")) == " Use --encoding cp1252."
    assert cli_hint(OptionHint("text_field", None, ("body", "id"))) == (
        " Choose the field that holds the narrative with --text-field NAME.")
    exc = DataError("no header.", "a.txt", 3, hint=OptionHint("split", "paragraphs"))
    assert (exc.message, exc.hint.option, exc.hint.value) == ("a.txt, line 3: no header.", "split", "paragraphs")
    assert cli_message(exc) == "a.txt, line 3: no header. Use --split paragraphs."


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`medcal validate FILE --json | head -c 1`: no BrokenPipeError traceback when the reader leaves."""
    import subprocess
    import sys

    # 3,000 records with a phone number each: the JSON (about 0.5 MB of PHI warnings) outgrows the pipe's buffer
    src = tmp_path / "many.txt"
    src.write_text("\n".join(f"Below is a adult topic:\n\nSeen today, phone 555-{1000 + i}, heart rate 72 bpm.\n"
                             for i in range(3000)), encoding="utf-8")
    out = tmp_path / "calib.txt"
    subprocess.run([sys.executable, "-m", "medcal_gui", "format", str(src), "-o", str(out)], check=True,
                   capture_output=True)
    cmd = f"{sys.executable} -m medcal_gui validate {out} --json | head -c 1"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert proc.stdout == "{"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
