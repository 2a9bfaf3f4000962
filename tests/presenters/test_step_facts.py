"""What steps 3 and 4 show, computed in the core (no Qt): naming, notes, counts, readings."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from medcal_gui.dataset.holdout import split_records
from medcal_gui.presenters.quantize_facts import (
    cancel_message,
    estimate_bytes,
    imatrix_notes,
    output_path,
    size_note,
)
from medcal_gui.presenters.verify_facts import held_out_count, is_demo_model
from medcal_gui.quantize.quant_types import get_quant_type
from medcal_gui.workflows.calibrate_quantize import imatrix_path_for


def test_output_path_names_the_type_next_to_the_model_or_in_the_folder(tmp_path: Path) -> None:
    m = tmp_path / "models" / "gemma-f16.gguf"
    assert output_path(m, "  ", "Q4_K_M") == tmp_path / "models" / "gemma-f16-Q4_K_M.gguf"
    assert output_path(m, str(tmp_path / "out"), "Q8_0") == tmp_path / "out" / "gemma-f16-Q8_0.gguf"


def test_imatrix_notes_follow_the_type_and_mode() -> None:
    q8, iq2 = get_quant_type("Q8_0"), get_quant_type("IQ2_XXS")
    assert imatrix_notes(q8, "compute", []) == ["Q8_0 ignores the importance matrix: the run skips computing one."]
    assert "requires an importance matrix" in imatrix_notes(iq2, "none", [])[0]
    dry = ["IQ2_XXS requires an importance matrix here", "3 tensors use a fallback type"]
    assert imatrix_notes(iq2, "none", dry) == dry  # llama.cpp's own words replace the generic advice
    assert imatrix_notes(iq2, "compute", dry) == ["3 tensors use a fallback type"]


def test_size_note_explains_a_dry_run_well_above_the_estimate() -> None:
    qt = get_quant_type("Q4_K_M")
    params = 268_098_176  # Gemma 3 270M
    est = estimate_bytes(qt, params)
    assert size_note(qt, params, int(est * 1.02)) == ""
    note = size_note(qt, params, 253_000_000)
    assert "253 MB" in note and f"({est / 1e6:,.0f} MB, " in note and "token embeddings" in note
    assert size_note(qt, params, None) == ""


def test_cancel_message_says_the_finished_imatrix_was_kept(tmp_path: Path) -> None:
    out = tmp_path / "m-Q4_K_M.gguf"
    started = time.time()
    assert "nothing from this run was left behind" in cancel_message(out, True, started)
    imx = imatrix_path_for(out)
    imx.write_bytes(b"GGUF")
    os.utime(imx, (started - 3600, started - 3600))  # an earlier run's: not this run's output
    assert "nothing from this run" in cancel_message(out, True, started)
    os.utime(imx, (started + 5, started + 5))
    msg = cancel_message(out, True, started)
    assert f"the importance matrix was kept: {imx}" in msg and "earlier files" in msg
    assert "nothing from this run" in cancel_message(out, False, started)  # a file imatrix is an input


@pytest.mark.parametrize("n", [0, 1, 2, 5, 38, 101])
def test_held_out_count_is_the_split_step_3_makes(n: int) -> None:
    assert held_out_count(n) == len(split_records(list(range(n)))[1])  # type: ignore[arg-type]


def test_the_demo_model_and_its_quants_are_recognised(tmp_path: Path) -> None:
    from medcal_gui.gguf_files.demo_model import demo_model_path

    demo = demo_model_path()
    assert is_demo_model(demo) and is_demo_model(tmp_path / f"{demo.stem}-Q4_K_M.gguf")
    assert not is_demo_model(tmp_path / "medgemma-4b-it-f16.gguf") and not is_demo_model(None)


def test_run_blocker_says_what_is_missing(tmp_path: Path) -> None:
    from medcal_gui.presenters.quantize_facts import run_blocker

    q4, q8, iq2 = get_quant_type("Q4_K_M"), get_quant_type("Q8_0"), get_quant_type("IQ2_XXS")
    assert "Load narratives" in run_blocker(q4, "compute", has_records=False, n_chunks=None, imatrix_file="")
    assert "at least one chunk" in run_blocker(q4, "compute", has_records=True, n_chunks=0, imatrix_file="")
    assert run_blocker(q4, "compute", has_records=True, n_chunks=3, imatrix_file="") == ""
    assert run_blocker(q8, "compute", has_records=False, n_chunks=None, imatrix_file="") == ""  # ignores it
    assert "existing importance matrix" in run_blocker(q4, "file", has_records=True, n_chunks=3,
                                                       imatrix_file=str(tmp_path / "missing.gguf"))
    assert run_blocker(iq2, "none", has_records=True, n_chunks=3, imatrix_file="", refusal="no: needs one") == (
        "no: needs one")


def test_output_line_names_the_files_and_a_replacement(tmp_path: Path) -> None:
    from medcal_gui.presenters.quantize_facts import output_line

    out = tmp_path / "m-Q4_K_M.gguf"
    line = output_line(out, get_quant_type("Q4_K_M"), "compute")
    assert "<b>m-Q4_K_M.gguf</b>" in line and "m-Q4_K_M.imatrix.gguf" in line and "replaced" not in line
    out.write_bytes(b"")
    line = output_line(out, get_quant_type("Q8_0"), "compute")
    assert "imatrix" not in line and "It exists and will be replaced" in line


def test_heldout_split_is_the_records_step_3_keeps_out(sample_file: Path) -> None:
    from medcal_gui.dataset.reading.loader import LoadOptions, load_dataset
    from medcal_gui.presenters.verify_facts import heldout_split

    records = load_dataset([sample_file], LoadOptions()).records
    text, what = heldout_split(records, "no_such_variant", "")
    held = split_records(records)[1]
    assert what == f"the last {len(held)} of {len(records)} narratives (quantization_calibration, seed layout)"
    assert text.count("<start_of_turn>user") == len(held)


def test_run_needs_takes_the_larger_memory_and_both_disks(tiny_model: Path, tmp_path: Path) -> None:
    from medcal_gui.budget.limits import imatrix_needs, model_shape, quantize_needs
    from medcal_gui.presenters.quantize_facts import run_needs
    from medcal_gui.quantize.quant_types import get_quant_type
    from medcal_gui.workflows.calibrate_quantize import imatrix_path_for

    shape, qt, out = model_shape(tiny_model), get_quant_type("Q4_K_M"), tmp_path / "q.gguf"
    im = imatrix_needs(shape, 256, imatrix_path_for(out))
    q = quantize_needs(shape, out, qt.bpw, output_bytes=123_456)
    both = run_needs(shape, out, qt, 256, True, 123_456)
    assert both.memory == max(im.memory, q.memory) and both.disk == im.disk + q.disk
    only = run_needs(shape, out, qt, 256, False, 123_456)
    assert (only.memory, only.disk) == (q.memory, q.disk)
