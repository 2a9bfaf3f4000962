"""The window's load job and checklist job, in the core: issues tied to file, line and record."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcal_gui.core.errors import Cancelled
from medcal_gui.core.jobs import CancelToken, Progress
from medcal_gui.dataset.formatting import format_dataset
from medcal_gui.dataset.reading.loaded import load_inputs
from medcal_gui.dataset.reading.loader import LoadOptions
from medcal_gui.dataset.validation.checklist import check_dataset
from medcal_gui.dataset.validation.validate import validate_text
from medcal_gui.dataset.variants import load_variants


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_issues_name_their_file_line_and_record(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.txt", "Below is a cardiology topic:\n\nAdult patient, 70 years old, stable.\n\n"
                  "Below is a cardiology topic:\n\nAdult patient, 55 years old, seen by Dr. Smith, call "
                  "555-123-4567.\n\nBelow is a cardiology topic:\n\nAdult patient, line one\n"
                  "then <end_of_turn> inside.\n")
    bad = _write(tmp_path / "plain.txt", "no header at all\n")
    loaded = load_inputs([good, bad], LoadOptions())
    assert [r.id for r in loaded.dataset.records] == ["good-0001", "good-0002", "good-0003"]
    marker = [i for i in loaded.issues if "turn marker" in i.message]
    assert len(marker) == 1
    assert (marker[0].severity, marker[0].path, marker[0].line, marker[0].record_id) == (
        "error", str(good), 12, "good-0003")
    phi = [i for i in loaded.issues if i.message.startswith("Possible PHI")]
    assert phi and {(i.severity, i.path, i.record_id, i.line) for i in phi} == {
        ("warning", str(good), "good-0002", 7)}
    header = loaded.file_issues(bad)
    assert len(header) == 1 and header[0].severity == "error" and header[0].record_id is None
    assert header[0].message.startswith(f"{bad}, line 1: ")
    # A record error is listed once, on its record, not again as a file error.
    assert sum("turn marker" in i.message for i in loaded.file_issues(good)) == 1
    assert loaded.errors == 2 and loaded.warnings == len(phi)


def test_mixed_encodings_warn_once_for_the_inputs_as_a_whole(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.txt", "Below is a cardiology topic:\n\nAdult patient, stable.\n")
    b = tmp_path / "b.txt"
    b.write_bytes("Below is a cardiology topic:\n\nAdult patient, caf\u00e9 \u201cstable\u201d \u2013 fine, "
                  "sinus rhythm throughout the recording.\n".encode("cp1252"))
    loaded = load_inputs([a, b], LoadOptions())
    whole = [i for i in loaded.issues if i.path is None]
    assert len(whole) == 1 and "different encodings" in whole[0].message
    assert loaded.file_issues(a) == []


def test_check_dataset_is_the_validation_of_the_formatted_text(sample_file: Path) -> None:
    records = load_inputs([sample_file], LoadOptions()).dataset.records
    variant = load_variants()["night_sentinel"]
    seen: list[Progress] = []
    report = check_dataset(records, variant, "gemma", seen.append)
    direct = validate_text(format_dataset(records, variant, "gemma"), sources=[r.text for r in records],
                           ids=[r.id for r in records], expected_marker=variant.marker)
    assert report.to_json() == direct.to_json()
    assert report.records == 38 and not report.errors
    assert (seen[0].done, seen[-1].done, seen[-1].total) == (0, 38, 38)


def test_check_dataset_honours_cancel(sample_file: Path) -> None:
    records = load_inputs([sample_file], LoadOptions()).dataset.records
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        check_dataset(records, load_variants()["quantization_calibration"], "seed", cancel=token)


def test_exported_readme_gives_the_written_file_size(sample_file: Path, tmp_path: Path) -> None:
    from medcal_gui.dataset.export import README_NAME, export_dataset
    from medcal_gui.dataset.formatting import DEFAULT_OUTPUT

    res = export_dataset([sample_file], dest_dir=tmp_path, all_variants=True,
                         variant=load_variants()["quantization_calibration"])
    readme = (tmp_path / README_NAME).read_text(encoding="utf-8")
    size = (tmp_path / DEFAULT_OUTPUT).stat().st_size
    assert res.validation.file_size == size
    assert f"File size: {size / 1024:.1f} KB ({size} bytes)" in readme
    assert "in memory" not in readme
