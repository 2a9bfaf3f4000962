"""Layouts: `seed` reproduces the seed document's record byte for byte; `gemma` is Gemma's chat template."""

from __future__ import annotations

import dataclasses

import pytest

from medcal_gui.dataset.formatting import DEFAULT_LAYOUT, DEFAULT_OUTPUT, format_dataset, format_original, format_record
from medcal_gui.dataset.reading.loader import load_dataset
from medcal_gui.dataset.records import Record
from medcal_gui.dataset.variants import get_variant

NARR = "Adolescent patient, 10 years old, Female...\n[clinical narrative]"


def test_seed_layout_is_the_seed_record_byte_for_byte(h):
    got = format_record(NARR, get_variant("quantization_calibration"), "seed")
    expected = (
        b"<start_of_turn>user\n[QUANTIZATION CALIBRATION]\nProcess the following cardiac monitoring "
        b"interpretation for model quantization calibration:\nAdolescent patient, 10 years old, Female...\n"
        b"[clinical narrative]\n<end_of_turn>\n<start_of_turn>model\nClinical assessment complete. I have "
        b"processed the cardiac monitoring data and documented \nthe rhythm analysis, vital signs, and "
        b"clinical recommendations. This record is calibrated \nfor quantization-aware model optimization in "
        b"cardiology domain.\n<end_of_turn>\n\n")
    assert got.encode("utf-8") == expected
    assert got == h.SEED_RECORD.format(narrative=NARR)
    assert DEFAULT_LAYOUT == "seed" and DEFAULT_OUTPUT == "medgemma_calibration_imatrix_formatted.txt"


def test_gemma_layout_has_no_newline_before_end_of_turn():
    v = get_variant("quantization_calibration")
    assert format_record(NARR, v, "gemma") == (
        "<start_of_turn>user\n[QUANTIZATION CALIBRATION]\nProcess the following cardiac monitoring "
        "interpretation for model quantization calibration:\n" + NARR + "<end_of_turn>\n"
        "<start_of_turn>model\n" + "\n".join(v.response) + "<end_of_turn>\n")


def test_records_are_each_followed_by_one_empty_line(h):
    recs = [Record("a-0001", "a.txt", 3, h.ADULT), Record("a-0002", "a.txt", 7, h.NEONATE)]
    out = format_dataset(recs, get_variant("quantization_calibration"))
    assert out == h.SEED_RECORD.format(narrative=h.ADULT) + h.SEED_RECORD.format(narrative=h.NEONATE)
    assert out.count("<end_of_turn>\n\n<start_of_turn>user\n") == 1
    assert out.endswith("<end_of_turn>\n\n") and not out.endswith("\n\n\n")


@pytest.mark.parametrize("name, marker, instruction_start", [
    ("night_sentinel", "[NIGHT SENTINEL MONITORING]", "Review the following overnight cardiac monitoring"),
    ("clinical_analysis", "[CLINICAL ANALYSIS]", "Provide a diagnostic interpretation"),
])
def test_other_variants_use_their_marker_and_instruction(name, marker, instruction_start):
    v = get_variant(name)
    lines = format_record("Adult x.", v).split("\n")
    assert lines[:2] == ["<start_of_turn>user", marker]
    assert lines[2].startswith(instruction_start) and lines[3] == "Adult x."
    assert lines[4:6] == ["<end_of_turn>", "<start_of_turn>model"]
    assert lines[6:9] == list(v.response)


def test_variant_without_marker_has_no_marker_line():
    v = dataclasses.replace(get_variant("quantization_calibration"), marker="")
    assert format_record("Adult x.", v).startswith(
        "<start_of_turn>user\nProcess the following cardiac monitoring interpretation for model quantization "
        "calibration:\nAdult x.\n<end_of_turn>\n")


def test_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="unknown layout 'chatml'"):
        format_record("Adult x.", get_variant("quantization_calibration"), "chatml")


def test_original_format_is_header_blank_line_narrative():
    assert format_original(Record("a-0001", "a.txt", 3, "Adult x.\nline 2", topic="neurology")) == (
        "Below is a neurology topic:\n\nAdult x.\nline 2\n\n")
    assert format_original(Record("a-0001", "a.csv", 2, "Adult y.")) == (
        "Below is a cardiology topic:\n\nAdult y.\n\n")


def test_formatted_sample_starts_with_the_seed_record(cli, sample_file, tmp_path, h):
    out = tmp_path / "f.txt"
    rc, _, err = cli("format", sample_file, "-o", out)
    assert rc == 0, err
    data = out.read_bytes()
    recs = load_dataset([sample_file]).records
    assert data == "".join(h.SEED_RECORD.format(narrative=r.text) for r in recs).encode("utf-8")
    first = h.SEED_RECORD.format(narrative=recs[0].text).encode("utf-8")
    assert data.startswith(first)
    assert recs[0].text.startswith("Adolescent patient, 10 years old, Female")
    assert data.count(b"<start_of_turn>user\n") == 38 and data.count(b"<start_of_turn>model\n") == 38


def test_cli_gemma_layout_output(cli, make_file, tmp_path, h):
    src = make_file.narratives("a.txt", [h.ADULT, h.NEONATE])
    out = tmp_path / "g.txt"
    rc, _, err = cli("format", src, "-o", out, "--layout", "gemma")
    assert rc == 0, err
    v = get_variant("quantization_calibration")
    assert out.read_text(encoding="utf-8") == format_record(h.ADULT, v, "gemma") + format_record(
        h.NEONATE, v, "gemma")
    assert "\n<end_of_turn>" not in out.read_text(encoding="utf-8")
