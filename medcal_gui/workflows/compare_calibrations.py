"""Calibration A/B: which calibration text makes the best quant? For each candidate file: importance matrix,
quantize, then score every quant against the base on one held-out text (one cached base pass), and rank
them by mean KL divergence.

The "no imatrix" baseline is a plain quantization wherever llama.cpp makes one. For IQ3_XXS it does when the
tensors that would take IQ3_XXS can be stored otherwise (on Gemma 3 270M it keeps them in k-quants); where
its dry run finds tensors that really need importance weights (`tensor_requires_imatrix` in llama-quant.cpp)
the baseline gets a *uniform* matrix instead (every column weighted 1): the quantizer's importance-weighted
search then runs with no information from any text, the closest llama.cpp allows to "no calibration".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from medcal_gui.calibrate.imatrix_io import ImatrixData, ImatrixEntry
from medcal_gui.core.errors import InputError, MedcalError
from medcal_gui.core.fsutil import check_input_file, check_output_path, ensure_dir, same_file, write_text_atomic
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.core.text_files import read_bytes_bounded
from medcal_gui.evaluate.evaluate import EvalResult, ModelEval, evaluate
from medcal_gui.quantize.quant_types import get_quant_type
from medcal_gui.workflows.preflight import (
    check_count,
    check_ctx,
    missing_folders,
    remove_made_folders,
)

log = logging.getLogger(__name__)

NO_IMATRIX = "no-imatrix"
PLOT_NAME = "comparison.svg"


@dataclass
class CompareRow:
    name: str
    calibration: str | None  # the calibration file, None for the baseline
    imatrix: str  # "imatrix", "uniform" (baseline where one is required) or "none"
    quant: Path
    imatrix_chunks: int
    eval: ModelEval

    def to_json(self) -> dict[str, Any]:
        d = {"name": self.name, "calibration": self.calibration, "imatrix": self.imatrix,
             "quant": str(self.quant), "imatrix_chunks": self.imatrix_chunks}
        d.update({k: v for k, v in self.eval.to_json().items() if k not in ("model", "name")})
        return d


@dataclass
class CompareResult:
    model: Path
    qtype: str
    heldout: Path
    n_ctx: int
    rows: list[CompareRow]  # best (lowest mean KLD) first
    evaluation: EvalResult
    seconds: float
    table_md: Path | None = None
    table_json: Path | None = None
    plot: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"model": str(self.model), "qtype": self.qtype, "heldout": str(self.heldout), "n_ctx": self.n_ctx,
                "tokens_scored": self.evaluation.tokens_scored, "chunks": self.evaluation.chunks,
                "parse_special": self.evaluation.parse_special, "seconds": self.seconds,
                "rows": [r.to_json() for r in self.rows],
                "table_md": str(self.table_md) if self.table_md else None,
                "table_json": str(self.table_json) if self.table_json else None,
                "plot": str(self.plot) if self.plot else None, "warnings": self.warnings}


def uniform_imatrix(like: ImatrixData) -> ImatrixData:
    """An importance matrix with every weight's columns equally important (shapes taken from `like`)."""
    entries = {name: ImatrixEntry(np.ones_like(e.in_sum2), np.ones_like(e.counts))
               for name, e in like.entries.items()}
    return ImatrixData(entries=entries, datasets=["uniform (no calibration text)"], chunk_count=1,
                       chunk_size=like.chunk_size or 512)


def _prefixed(progress: ProgressCallback, prefix: str) -> ProgressCallback:
    def inner(p: Progress) -> None:
        progress(replace(p, message=f"{prefix} {p.message}".strip()))

    return inner


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def markdown_table(res: CompareResult) -> str:
    head = "| rank | calibration | imatrix | mean KLD | median KLD | KLD 99% | same top | RMS Δp | PPL ratio |\n"
    head += "|---:|---|---|---:|---:|---:|---:|---:|---:|\n"
    lines = []
    for i, r in enumerate(res.rows, 1):
        e = r.eval
        lines.append(f"| {i} | {r.name} | {r.imatrix} | {e.kld_mean:.4f} ± {e.kld_mean_stderr:.4f} | "
                     f"{e.kld_median:.4f} | {e.kld_p99:.3f} | {e.same_top_pct:.2f} % | {e.rms_dp_pct:.2f} % | "
                     f"{e.ppl_ratio:.4f} |")
    ev = res.evaluation
    foot = (f"\n{res.qtype} quants of {res.model.name}, scored on {res.heldout.name}: {ev.chunks} chunks of "
            f"{ev.n_ctx} tokens, {ev.tokens_scored} tokens scored (base PPL {res.rows[0].eval.ppl_base:.3f}); "
            f"special tokens {'parsed' if ev.parse_special else 'as text'}.\n")
    return head + "\n".join(lines) + "\n" + foot


def check_heldout_unseen(heldout: Path, calibrations: Sequence[tuple[str, Path]]) -> None:
    """Refuse a calibration file that is the held-out file, or whose content equals or contains its text:
    a quant scored on text its calibration saw would look better than it is."""
    held = read_bytes_bounded(Path(heldout), "held-out text").strip()
    for name, cal in calibrations:
        cal = Path(cal)
        if same_file(cal, heldout):
            raise InputError(f"The held-out text {heldout} is also the calibration file {name}={cal}: a held-out "
                             "text must be text the calibration never saw. Choose another held-out file.")
        if held and held in read_bytes_bounded(cal, "calibration file"):
            raise InputError(f"The calibration file {name}={cal} contains the whole held-out text {heldout}: "
                             "a held-out text must be text the calibration never saw. Remove it from the "
                             "calibration text or hold out other records.")


def planned_outputs(out_dir: Path, qtype: str, names: Sequence[str], include_no_imatrix: bool,
                    plot: bool) -> list[Path]:
    """Every file compare_calibrations writes into `out_dir` (checked before any work starts)."""
    out: list[Path] = []
    quant_names = [f"{_safe_name(n)}-{qtype}.gguf" for n in names]
    out += [out_dir / f"{_safe_name(n)}.imatrix.gguf" for n in names]
    if include_no_imatrix:
        quant_names.append(f"{NO_IMATRIX}-{qtype}.gguf")
    for q in quant_names:
        out += [out_dir / q, out_dir / (q + ".sha256"), out_dir / (q + ".manifest.json")]
    out += [out_dir / "comparison.md", out_dir / "comparison.json"]
    if plot:
        out.append(out_dir / PLOT_NAME)
    return out


def compare_calibrations(model: Path, qtype: str, heldout: Path, calibrations: Sequence[tuple[str, Path]],
                         out_dir: Path, *, include_no_imatrix: bool = False, n_ctx: int = 512,
                         imatrix_chunks: int | None = None, eval_chunks: int | None = None,
                         threads: int | None = None, parse_special: bool = True, plot: bool = True,
                         progress: ProgressCallback = no_progress,
                         cancel: CancelToken | None = None) -> CompareResult:
    """Quantize `model` to `qtype` once per calibration file (NAME, FILE) and rank the quants on `heldout`.

    Writes into `out_dir`: `<name>.imatrix.gguf`, `<name>-<qtype>.gguf` per candidate, `comparison.md`,
    `comparison.json` (results first) and `comparison.svg`.
    """
    cancel = cancel or CancelToken()
    t0 = time.monotonic()
    model, heldout, out_dir = Path(model), Path(heldout), Path(out_dir)
    qt = get_quant_type(qtype)
    names = [n for n, _ in calibrations]
    if not calibrations and not include_no_imatrix:
        raise InputError("Give at least one calibration file (NAME=FILE), or --include-no-imatrix.")
    if len(set(names)) != len(names) or NO_IMATRIX in names:
        raise InputError(f"Calibration names must be unique and not {NO_IMATRIX!r}: got {', '.join(names)}.")
    safe = [_safe_name(n) for n in names]
    twins = sorted({f"{a!r} and {b!r}" for i, a in enumerate(names) for j, b in enumerate(names)
                    if i < j and safe[i].lower() == safe[j].lower()})
    if twins or NO_IMATRIX in safe:  # two names, one file name: the second would overwrite the first's quant
        raise InputError(f"The calibration names {twins[0] if twins else repr(NO_IMATRIX)} give the same file "
                         "names in the output folder; choose names that differ in letters or digits.")
    check_count(imatrix_chunks, "--imatrix-chunks")
    check_count(eval_chunks, "--eval-chunks")
    check_count(threads, "--threads", low=0)
    check_ctx(n_ctx)
    check_input_file(model, "model")
    check_input_file(heldout, "held-out text")
    for _, f in calibrations:
        check_input_file(Path(f), "calibration file")
    check_heldout_unseen(heldout, calibrations)
    inputs = [model, heldout, *(Path(f) for _, f in calibrations)]
    for out in planned_outputs(out_dir, qt.name, names, include_no_imatrix, plot):
        check_output_path(out, inputs)
    made = missing_folders(out_dir)
    ensure_dir(out_dir)
    try:
        return _compare(model, qt.name, heldout, calibrations, out_dir, include_no_imatrix, n_ctx, imatrix_chunks,
                        eval_chunks, threads, parse_special, plot, progress, cancel, t0)
    except BaseException:
        remove_made_folders(made, "")  # a folder this run created, when the run failed before writing into it
        raise


def _compare(model: Path, qtype: str, heldout: Path, calibrations: Sequence[tuple[str, Path]], out_dir: Path,
             include_no_imatrix: bool, n_ctx: int, imatrix_chunks: int | None, eval_chunks: int | None,
             threads: int | None, parse_special: bool, plot: bool, progress: ProgressCallback,
             cancel: CancelToken, t0: float) -> CompareResult:
    from medcal_gui.calibrate.imatrix import compute_imatrix
    from medcal_gui.quantize.quantize import quantize_model

    qt = get_quant_type(qtype)
    warnings: list[str] = []
    staged: list[tuple[str, str | None, str, Path, int]] = []
    first_data: ImatrixData | None = None
    steps = len(calibrations) * 2 + (1 if include_no_imatrix else 0) + 1
    step = 0

    def prefix(what: str) -> ProgressCallback:
        nonlocal step
        step += 1
        return _prefixed(progress, f"[{step}/{steps}] {what}:")

    for name, cal in calibrations:
        cancel.check()
        safe = _safe_name(name)
        imx = out_dir / f"{safe}.imatrix.gguf"
        quant = out_dir / f"{safe}-{qt.name}.gguf"
        ires = compute_imatrix(model, [Path(cal)], n_ctx=n_ctx, n_chunks=imatrix_chunks, threads=threads,
                               parse_special=parse_special, out=imx, progress=prefix(f"{name} imatrix"),
                               cancel=cancel)
        if first_data is None:
            first_data = ires.data
        quantize_model(model, quant, qt.name, imatrix=imx, threads=threads, progress=prefix(f"{name} quantize"),
                       provenance={"calibration.name": name}, cancel=cancel)
        staged.append((name, str(cal), "imatrix", quant, ires.chunks))

    if include_no_imatrix:
        cancel.check()
        quant = out_dir / f"{NO_IMATRIX}-{qt.name}.gguf"
        kind = "none"
        try:
            quantize_model(model, quant, qt.name, imatrix=None, threads=threads,
                           progress=prefix("baseline quantize"), provenance={"calibration.name": NO_IMATRIX},
                           cancel=cancel)
        except InputError:
            if qt.imatrix != "requires":
                raise
            # llama.cpp's dry run found tensors that really take the type: it refuses them without a matrix.
            if first_data is None:
                first_data = compute_imatrix(model, [heldout], n_ctx=n_ctx, n_chunks=1, threads=threads,
                                             progress=prefix("shapes for a uniform imatrix"), cancel=cancel).data
            assert first_data is not None
            kind = "uniform"
            warnings.append(f"llama.cpp refuses {qt.name} without an importance matrix on this model; the "
                            "baseline uses a uniform one (every column weighted equally).")
            quantize_model(model, quant, qt.name, imatrix=uniform_imatrix(first_data), threads=threads,
                           progress=prefix("baseline quantize"), provenance={"calibration.name": NO_IMATRIX},
                           cancel=cancel)
        staged.append((NO_IMATRIX, None, kind, quant, 0))

    ev = evaluate(model, [s[3] for s in staged], heldout, n_ctx=n_ctx, threads=threads,
                  parse_special=parse_special, n_chunks=eval_chunks, progress=prefix("evaluate"), cancel=cancel)
    rows = [CompareRow(name, cal, kind, quant, chunks, me)
            for (name, cal, kind, quant, chunks), me in zip(staged, ev.models, strict=True)]
    rows.sort(key=lambda r: r.eval.kld_mean)
    res = CompareResult(model=model, qtype=qt.name, heldout=heldout, n_ctx=n_ctx, rows=rows, evaluation=ev,
                        seconds=time.monotonic() - t0, warnings=warnings + ev.warnings)
    # Results first: the tables are written before any figure, so a plot that fails loses nothing.
    res.table_md = out_dir / "comparison.md"
    write_text_atomic(res.table_md, markdown_table(res))
    res.table_json = out_dir / "comparison.json"
    res.seconds = time.monotonic() - t0
    write_text_atomic(res.table_json, json.dumps(res.to_json(), indent=2, ensure_ascii=False) + "\n")
    if plot:
        from medcal_gui.core.svg_chart import plot_ranking

        try:
            res.plot = plot_ranking([r.name for r in rows], [r.eval.kld_mean for r in rows],
                                    [r.eval.kld_p99 for r in rows], out_dir / PLOT_NAME,
                                    title=f"{qt.name} of {model.name}: KLD on {heldout.name}")
        except (MedcalError, OSError) as exc:
            why = exc.message if isinstance(exc, MedcalError) else (exc.strerror or str(exc))
            res.warnings.append(f"The figure {PLOT_NAME} was not written ({why}); the tables were.")
        write_text_atomic(res.table_json, json.dumps(res.to_json(), indent=2, ensure_ascii=False) + "\n")
    return res
