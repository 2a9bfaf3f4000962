"""Narratives to a calibrated quant in one go: the GUI's workflow (steps 1 to 3) without the window.

The same functions as the panes, the same defaults and the same file names: the records are split with
`dataset.holdout.split_records` (the last `HELDOUT_FRACTION` held out for `medcal eval`), formatted with
`calibration_text`, and `run_quantize` (the GUI's job) computes the importance matrix and quantizes. Into
OUTDIR go `<model>-<TYPE>.gguf` (+ .sha256, .manifest.json), `<model>-<TYPE>.imatrix.gguf`, the calibration
and held-out texts beside them, and `pipeline_summary.json`.

The run is one unit: a Ctrl-C or a failure anywhere removes every file this run wrote and puts back the
files of an earlier run it had replaced (kept as hard links until the run completes), so the folder ends as
it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import Cancelled, DataError, InputError
from medcal_gui.core.fsutil import TMP_PREFIX, check_output_path, ensure_dir, write_text_atomic
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.dataset.formatting import DEFAULT_LAYOUT
from medcal_gui.dataset.holdout import calibration_text, heldout_text
from medcal_gui.dataset.reading.loader import LoadOptions, load_dataset
from medcal_gui.dataset.validation.validate import validate_text
from medcal_gui.dataset.variants import DEFAULT_VARIANT, get_variant
from medcal_gui.quantize.quant_types import get_quant_type
from medcal_gui.workflows.calibrate_quantize import (
    RunPlan,
    RunResult,
    planned_outputs,
    quant_path_for,
    run_quantize,
)
from medcal_gui.workflows.preflight import missing_folders, remove_made_folders

SUMMARY_NAME = "pipeline_summary.json"


def calibration_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".calibration.txt")


def heldout_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".heldout.txt")


@dataclass
class PipelineResult:
    outdir: Path
    calibration: Path
    heldout: Path | None
    records: int
    held_out: int
    run: RunResult
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        imat = self.run.imatrix
        return {"outdir": str(self.outdir), "calibration": str(self.calibration),
                "heldout": str(self.heldout) if self.heldout else None, "records": self.records,
                "held_out": self.held_out, "imatrix": imat.to_json() if imat else None,
                "quantize": self.run.quant.to_json(), "seconds": round(self.seconds, 2),
                "warnings": self.warnings}


class _Rollback:
    """Undo for a run that writes several files: earlier files are kept as hard links until `commit`."""

    def __init__(self, targets: Sequence[Path]) -> None:
        self.targets = list(targets)
        self.backups: dict[Path, Path] = {}
        for t in self.targets:
            if t.is_file():
                b = t.with_name(f"{TMP_PREFIX}backup-{t.name}")
                with contextlib.suppress(OSError):
                    b.unlink()
                try:
                    os.link(t, b)
                    self.backups[t] = b
                except OSError:
                    pass  # no hard links here: the earlier file is then only replaced when the new one is complete

    def commit(self) -> None:
        for b in self.backups.values():
            with contextlib.suppress(OSError):
                b.unlink()

    def rollback(self) -> None:
        for t in self.targets:
            with contextlib.suppress(OSError):
                if t in self.backups:
                    b = self.backups[t]
                    if t.exists() and os.path.samefile(t, b):
                        b.unlink()  # never replaced (rename() between two links of one file does nothing)
                    else:
                        os.replace(b, t)
                elif t.exists():
                    t.unlink()


def run_pipeline(narratives: Sequence[Path], model: Path, qtype: str, outdir: Path, *,
                 variant: str = DEFAULT_VARIANT, layout: str = DEFAULT_LAYOUT, hold_out: bool = True,
                 options: LoadOptions | None = None, n_ctx: int = 512, n_chunks: int | None = None,
                 threads: int | None = None, progress: ProgressCallback = no_progress,
                 cancel: CancelToken | None = None) -> PipelineResult:
    cancel = cancel or CancelToken()
    t0 = time.monotonic()
    qt = get_quant_type(qtype)  # fail on a bad type before any work
    v = get_variant(variant)
    model, outdir = Path(model), Path(outdir)
    if not model.is_file():
        raise InputError(f"The model file {model} does not exist.")
    out = quant_path_for(model, qt.name, outdir)
    calib_path, held_path = calibration_path_for(out), heldout_path_for(out)

    progress(Progress("load", 0, None, message="reading the narratives"))
    ds = load_dataset(narratives, options, progress=progress, cancel=cancel)
    if ds.errors:
        raise InputError(ds.errors[0] + (f" (and {len(ds.errors) - 1} more problems)" if len(ds.errors) > 1
                                         else ""))
    if not ds.records:
        raise InputError("The narrative files hold no records.")
    cal = calibration_text(ds.records, v, layout, hold_out)
    held_text, n_held = heldout_text(ds.records, v, layout) if cal.held_out else ("", 0)
    report = validate_text(cal.text, expected_marker=v.marker or None, expect_records=cal.records)
    if report.errors:
        raise DataError("The formatted calibration text failed validation: " + "; ".join(report.errors[:3]))
    plan = RunPlan(model=model, out=out, qtype=qt.name, imatrix_mode="compute", calibration=cal,
                   n_ctx=n_ctx, n_chunks=n_chunks, threads=threads)
    ours = [calib_path] + ([held_path] if n_held else []) + planned_outputs(plan) + [outdir / SUMMARY_NAME]
    inputs = [model, *(Path(n) for n in narratives)]
    for p in ours:
        check_output_path(p, inputs)
    made = missing_folders(outdir)  # a run that fails or is cancelled removes the folders it created
    ensure_dir(outdir)
    undo = _Rollback(ours)
    try:
        write_text_atomic(calib_path, cal.text)
        if n_held:
            write_text_atomic(held_path, held_text)
        cancel.check()
        run = run_quantize(plan, progress, cancel)
        warnings = list(ds.warnings) + report.warnings + (run.imatrix.warnings if run.imatrix else [])
        if not plan.computes_imatrix():
            warnings.append(f"{qt.name} ignores the importance matrix, so none was computed.")
        warnings += run.quant.warnings
        res = PipelineResult(outdir, calib_path, held_path if n_held else None, cal.records, n_held, run,
                             time.monotonic() - t0, warnings)
        write_text_atomic(outdir / SUMMARY_NAME, json.dumps(res.to_json(), indent=2) + "\n")
    except Cancelled:
        undo.rollback()
        remove_made_folders(made, "pipeline")
        raise Cancelled("Cancelled: every file this run wrote was removed, and the earlier files it had "
                        f"replaced in {outdir} were put back.") from None
    except BaseException:
        undo.rollback()
        remove_made_folders(made, "pipeline")
        raise
    undo.commit()
    return res
