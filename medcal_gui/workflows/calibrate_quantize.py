"""The jobs behind panes 3 and 4, Qt-free: calibration and held-out text from the loaded records, the one
"importance matrix then quantize" run, and a quiet size estimate.

They follow the job protocol (`progress`, `cancel`) and only call the engine; the panes start them in a
worker and show what they report.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medcal_gui.calibrate.imatrix import ImatrixResult, compute_imatrix
from medcal_gui.core.errors import Cancelled, InputError, MedcalError
from medcal_gui.core.fsutil import TMP_PREFIX, check_output_path
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback
from medcal_gui.dataset.holdout import CalibrationText
from medcal_gui.quantize.quant_types import get_quant_type
from medcal_gui.quantize.quantize import QuantizeResult, quantize_model
from medcal_gui.quantize.tensor_types import TensorTypeRule


def output_names(out: Path) -> list[Path]:
    """Every file a run writes for the quant `out` (itself, its checksum and manifest)."""
    return [out, out.with_name(out.name + ".sha256"), out.with_name(out.name + ".manifest.json")]


def quant_path_for(model: Path, qtype: str, folder: Path | None = None) -> Path:
    """The quant's file name, the same in the GUI and the CLI: `<model stem>-<TYPE>.gguf`."""
    return (folder if folder is not None else model.parent) / f"{model.stem}-{qtype}.gguf"


def imatrix_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".imatrix.gguf")


@dataclass
class RunPlan:
    model: Path
    out: Path
    qtype: str
    imatrix_mode: str  # "compute" | "file" | "none"
    calibration: CalibrationText | None = None
    imatrix_file: Path | None = None
    n_ctx: int = 512
    n_chunks: int | None = None
    threads: int | None = None
    tensor_types: list[TensorTypeRule] = field(default_factory=list)  # --tensor-type rules, first match wins

    def computes_imatrix(self) -> bool:
        return self.imatrix_mode == "compute" and get_quant_type(self.qtype).imatrix != "ignores"


@dataclass
class RunOutcome:
    """What a run left on disk: the complete files it wrote, the partial ones it removed, and the outputs of
    an earlier run into the same names that it left as they were."""

    kept: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    untouched: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        if self.kept:
            parts.append("kept what this run finished: " + ", ".join(p.name for p in self.kept))
        else:
            parts.append("this run wrote no file")
        if self.removed:
            parts.append("removed its partial files: " + ", ".join(p.name for p in self.removed))
        if self.untouched:
            parts.append("earlier files left as they were: " + ", ".join(p.name for p in self.untouched))
        return "; ".join(parts) + "."

    def to_json(self) -> dict[str, list[str]]:
        return {k: [str(p) for p in getattr(self, k)] for k in ("kept", "removed", "untouched")}


class RunCancelled(Cancelled):
    """A cancelled run, with what it kept (a finished importance matrix survives a cancel during quantize)."""

    def __init__(self, outcome: RunOutcome, stage: str) -> None:
        super().__init__(f"Cancelled during {stage}: {outcome.summary()}")
        self.outcome = outcome
        self.stage = stage


@dataclass
class RunResult:
    plan: RunPlan
    imatrix: ImatrixResult | None
    imatrix_path: Path | None
    quant: QuantizeResult
    outcome: RunOutcome = field(default_factory=RunOutcome)


def planned_outputs(plan: RunPlan) -> list[Path]:
    """Every file the run would write: the quant and its sidecars, and the imatrix when it computes one."""
    return output_names(plan.out) + ([imatrix_path_for(plan.out)] if plan.computes_imatrix() else [])


def existing_outputs(plan: RunPlan) -> list[Path]:
    """The files of an earlier run the run would replace (the GUI asks before replacing them)."""
    return [p for p in planned_outputs(plan) if p.exists()]


def _partials(folder: Path) -> set[Path]:
    try:
        return set(folder.glob(TMP_PREFIX + "*"))
    except OSError:
        return set()


def run_quantize(plan: RunPlan, progress: ProgressCallback, cancel: CancelToken) -> RunResult:
    """Importance matrix (when the plan computes one), then quantize, as one job.

    Each output is written beside its final name and renamed over it only when complete, so a failure or a
    cancel never removes or damages the files of an earlier run. A finished importance matrix is kept when
    the quantize step after it is cancelled or fails (it cost the most); the `RunCancelled` raised then, and
    `outcome` on any other error, say what was kept and what was left as it was.
    """
    inputs = [plan.model] + ([plan.imatrix_file] if plan.imatrix_file else [])
    for p in planned_outputs(plan):
        check_output_path(p, inputs)
    earlier = existing_outputs(plan)
    before = _partials(plan.out.parent)
    outcome = RunOutcome()
    imat: ImatrixResult | None = None
    imatrix_path: Path | None = plan.imatrix_file if plan.imatrix_mode == "file" else None
    stage = "imatrix"
    try:
        if plan.computes_imatrix():
            assert plan.calibration is not None
            imat = compute_imatrix(plan.model, [plan.calibration.text], n_ctx=plan.n_ctx,
                                   n_chunks=plan.n_chunks, threads=plan.threads, compute_ppl=True,
                                   progress=progress, cancel=cancel)
            assert imat.data is not None
            imat.data.datasets = [plan.calibration.label]
            cancel.check()
            imatrix_path = imatrix_path_for(plan.out)
            imat.data.save(imatrix_path)
            outcome.kept.append(imatrix_path)
            imat.out = imatrix_path
        elif plan.imatrix_mode == "compute":
            progress(Progress("imatrix", 0, 0, message=f"skipped: {plan.qtype} ignores the importance matrix"))
        stage = "quantize"
        provenance: dict[str, object] = {}
        if plan.calibration is not None and imat is not None:
            provenance = {"calibration.sha256": plan.calibration.sha256,
                          "calibration.variant": plan.calibration.variant,
                          "calibration.layout": plan.calibration.layout,
                          "calibration.records": plan.calibration.records}
        quant = quantize_model(plan.model, plan.out, plan.qtype, imatrix=imatrix_path, threads=plan.threads,
                               tensor_types=plan.tensor_types, provenance=provenance, progress=progress,
                               cancel=cancel)
        # Complete: a cancel that arrives now is too late to undo anything, and nothing needs undoing.
        outcome.kept += output_names(plan.out)
    except BaseException as exc:
        for p in _partials(plan.out.parent) - before:  # the engine removes its own; make sure
            with contextlib.suppress(OSError):
                p.unlink()
                outcome.removed.append(p)
        outcome.untouched = [p for p in earlier if p not in outcome.kept]
        if isinstance(exc, Cancelled):
            raise RunCancelled(outcome, stage) from exc
        if isinstance(exc, MedcalError):
            exc.outcome = outcome  # type: ignore[attr-defined]
        raise
    outcome.untouched = [p for p in earlier if p not in outcome.kept]
    return RunResult(plan, imat, imatrix_path, quant, outcome)


class _DropThread(logging.Filter):
    """Drops the records logged from one thread (a size estimate's 236 per-tensor lines)."""

    def __init__(self, ident: int) -> None:
        super().__init__()
        self.ident = ident

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.ident


@contextlib.contextmanager
def quiet_llama_log() -> Iterator[None]:
    """Keep llama.cpp's log lines from this thread out of the log (other threads still log)."""
    logger = logging.getLogger("medcal_gui.llama")
    f = _DropThread(threading.get_ident())
    logger.addFilter(f)
    try:
        yield
    finally:
        logger.removeFilter(f)


def estimate_size(model: Path, qtype: str, cancel: CancelToken) -> tuple[QuantizeResult | None, str | None]:
    """llama.cpp's dry-run size for `qtype` without an importance matrix, or (None, why) when llama.cpp
    would refuse the type without one (then the bits-per-weight estimate stands in)."""
    if cancel.cancelled:
        raise Cancelled()
    try:
        with quiet_llama_log():
            return quantize_model(model, model.with_name(model.stem + f"-{qtype}.dry-run.gguf"), qtype,
                                  dry_run=True), None
    except InputError as exc:
        if get_quant_type(qtype).imatrix != "requires":
            raise
        return None, exc.message
