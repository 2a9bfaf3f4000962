"""The GUI's "importance matrix, then quantize" job on the tiny real model: a re-run into the same folder
that fails or is cancelled never removes or damages the earlier outputs, and a cancel during quantize keeps
this run's finished importance matrix and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcal_gui.core.errors import MedcalError
from medcal_gui.core.fsutil import TMP_PREFIX
from medcal_gui.core.jobs import CancelToken, Progress, no_progress
from medcal_gui.dataset.holdout import calibration_text
from medcal_gui.dataset.reading.loader import load_dataset
from medcal_gui.dataset.variants import get_variant
from medcal_gui.workflows.calibrate_quantize import (
    RunCancelled,
    RunPlan,
    existing_outputs,
    imatrix_path_for,
    output_names,
    run_quantize,
)

N_CTX = 128


def _plan(tiny_model: Path, sample_file: Path, out: Path, chunks: int) -> RunPlan:
    recs = load_dataset([sample_file]).records
    cal = calibration_text(recs, get_variant("quantization_calibration"), "seed")
    return RunPlan(tiny_model, out, "Q4_K_M", "compute", cal, n_ctx=N_CTX, n_chunks=chunks, threads=2)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def earlier_run(tiny_model: Path, sample_file: Path, tmp_path: Path) -> tuple[RunPlan, dict[str, bytes]]:
    out = tmp_path / "run" / "q.gguf"
    first = _plan(tiny_model, sample_file, out, chunks=1)
    res = run_quantize(first, no_progress, CancelToken())
    assert res.outcome.kept == [imatrix_path_for(out), *output_names(out)] and not res.outcome.untouched
    return first, _snapshot(out.parent)


def test_existing_outputs_lists_what_a_rerun_would_replace(earlier_run: tuple[RunPlan, dict[str, bytes]]) -> None:
    plan, files = earlier_run
    assert sorted(p.name for p in existing_outputs(plan)) == sorted(files)
    assert sorted(files) == ["q.gguf", "q.gguf.manifest.json", "q.gguf.sha256", "q.imatrix.gguf"]


def test_cancel_during_the_imatrix_leaves_the_earlier_outputs(earlier_run: tuple[RunPlan, dict[str, bytes]],
                                                              tiny_model: Path, sample_file: Path) -> None:
    plan, before = earlier_run
    token = CancelToken()

    def progress(p: Progress) -> None:
        if p.stage == "imatrix" and p.done:
            token.cancel()

    with pytest.raises(RunCancelled) as exc:
        run_quantize(_plan(tiny_model, sample_file, plan.out, chunks=2), progress, token)
    assert _snapshot(plan.out.parent) == before  # byte for byte, no partial files
    assert exc.value.outcome.kept == [] and len(exc.value.outcome.untouched) == 4
    assert exc.value.stage == "imatrix" and "this run wrote no file" in exc.value.message


def test_cancel_during_quantize_keeps_this_runs_imatrix_and_the_earlier_quant(
        earlier_run: tuple[RunPlan, dict[str, bytes]], tiny_model: Path, sample_file: Path) -> None:
    plan, before = earlier_run
    token = CancelToken()

    def progress(p: Progress) -> None:
        if p.stage.startswith("quantize"):
            token.cancel()

    with pytest.raises(RunCancelled) as exc:
        run_quantize(_plan(tiny_model, sample_file, plan.out, chunks=2), progress, token)
    after = _snapshot(plan.out.parent)
    imx = imatrix_path_for(plan.out)
    assert sorted(after) == sorted(before)  # nothing removed, no partial file
    assert after["q.imatrix.gguf"] != before["q.imatrix.gguf"]  # this run's matrix (2 chunks) replaced it
    for name in ("q.gguf", "q.gguf.sha256", "q.gguf.manifest.json"):
        assert after[name] == before[name]
    o = exc.value.outcome
    assert o.kept == [imx] and o.removed == [] and [p.name for p in o.untouched] == [
        "q.gguf", "q.gguf.sha256", "q.gguf.manifest.json"]
    assert exc.value.stage == "quantize"
    assert "kept what this run finished: q.imatrix.gguf" in exc.value.message


def test_a_failing_rerun_leaves_the_earlier_outputs(earlier_run: tuple[RunPlan, dict[str, bytes]],
                                                    tiny_model: Path, sample_file: Path) -> None:
    plan, before = earlier_run

    class Boom(MedcalError):
        pass

    def progress(p: Progress) -> None:
        if p.stage == "imatrix" and p.done:
            raise Boom("the disk went away")

    with pytest.raises(Boom) as exc:
        run_quantize(_plan(tiny_model, sample_file, plan.out, chunks=2), progress, CancelToken())
    assert _snapshot(plan.out.parent) == before
    assert len(exc.value.outcome.untouched) == 4  # type: ignore[attr-defined]


def test_a_cancel_after_the_quant_is_complete_keeps_the_result(tiny_model: Path, sample_file: Path,
                                                               tmp_path: Path) -> None:
    token = CancelToken()

    def progress(p: Progress) -> None:
        if p.stage == "quantize" and p.message == "done":
            token.cancel()  # too late: the quant and its sidecars are complete

    plan = _plan(tiny_model, sample_file, tmp_path / "q.gguf", chunks=1)
    res = run_quantize(plan, progress, token)
    assert res.quant.out == plan.out and plan.out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in res.outcome.kept)
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))
