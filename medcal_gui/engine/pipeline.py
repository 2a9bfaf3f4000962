"""Format, validate, imatrix and quantize in one go: every artefact lands in one folder."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.dataset.export import export_dataset
from medcal_gui.dataset.loader import LoadOptions
from medcal_gui.dataset.variants import get_variant
from medcal_gui.engine.imatrix import ImatrixResult, compute_imatrix
from medcal_gui.engine.quant_types import get_quant_type
from medcal_gui.engine.quantize import QuantizeResult, quantize_model
from medcal_gui.fsutil import sha256_file, write_text_atomic
from medcal_gui.jobs import CancelToken, ProgressCallback, no_progress

SUMMARY_NAME = "pipeline_summary.json"


@dataclass
class PipelineResult:
    outdir: Path
    calibration: Path
    records: int
    imatrix: ImatrixResult | None
    quant: QuantizeResult
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"outdir": str(self.outdir), "calibration": str(self.calibration), "records": self.records,
                "imatrix": self.imatrix.to_json() if self.imatrix else None, "quantize": self.quant.to_json(),
                "seconds": round(self.seconds, 2), "warnings": self.warnings}


def run_pipeline(narratives: Sequence[Path], model: Path, qtype: str, outdir: Path, *,
                 variant: str = "quantization_calibration", layout: str = "seed",
                 options: LoadOptions | None = None, n_ctx: int = 512, n_chunks: int | None = None,
                 threads: int | None = None, out: Path | None = None,
                 progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> PipelineResult:
    cancel = cancel or CancelToken()
    t0 = time.monotonic()
    qt = get_quant_type(qtype)  # fail on a bad type before any work
    outdir = Path(outdir)
    v = get_variant(variant)
    exported = export_dataset(narratives, dest_dir=outdir, all_variants=True, variant=v, layout=layout,
                              options=options, progress=progress, cancel=cancel)
    calib = outdir / "medgemma_calibration_imatrix_formatted.txt"
    warnings = list(exported.warnings)
    imat: ImatrixResult | None = None
    if qt.imatrix != "ignores":
        imat = compute_imatrix(model, [calib], n_ctx=n_ctx, n_chunks=n_chunks, threads=threads,
                               out=outdir / "imatrix.gguf", progress=progress, cancel=cancel)
        warnings += imat.warnings
    else:
        warnings.append(f"{qt.name} ignores the importance matrix, so none was computed.")
    target = out or outdir / f"{Path(model).stem}-{qt.name}.gguf"
    quant = quantize_model(model, target, qt.name, imatrix=imat.out if imat else None, threads=threads,
                           provenance={"calibration.sha256": sha256_file(calib),
                                       "calibration.variant": v.name, "calibration.layout": layout},
                           progress=progress, cancel=cancel)
    warnings += quant.warnings
    res = PipelineResult(outdir, calib, exported.records, imat, quant, time.monotonic() - t0, warnings)
    write_text_atomic(outdir / SUMMARY_NAME, json.dumps(res.to_json(), indent=2) + "\n")
    return res
