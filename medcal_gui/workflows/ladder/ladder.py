"""The quant ladder: which type should I ship? One importance matrix and one base pass serve every rung; per
rung the quant file, its size, the `medcal eval` figures against the base and llama-bench-style speed.

Outputs in OUTDIR: `<base>-<TYPE>.gguf` (+ `.sha256`, `.manifest.json`) per rung, `imatrix.gguf` when computed
from calibration text, `rungs/<TYPE>.json` (a finished rung with the hashes of its inputs, so a re-run reuses
it), `ladder.json`, `ladder.md` and `ladder.svg` (size against mean KLD). Reporting, Pareto front and the
recommendation live in `ladder_report`.

Every setting and every output path is checked before anything is created: no output may be one of the inputs
(model, held-out text, imatrix, calibration texts, questions), and a refused run leaves OUTDIR as it was. The
`rungs/` folder a run creates carries medcal's ownership marker; a run that fails before it finished anything
removes the folders it created (only those, and only when they hold nothing else).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import InputError
from medcal_gui.core.file_hashes import file_sha256
from medcal_gui.core.fsutil import check_input_file, check_output_path, ensure_dir, write_text_atomic
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.core.ownership import mark_folder
from medcal_gui.core.units import finite_float
from medcal_gui.evaluate.eval_cache import text_sha256
from medcal_gui.evaluate.evaluate import evaluate, read_text
from medcal_gui.evaluate.speed import REPS, SpeedResult, measure_speed
from medcal_gui.quantize.quant_advice import default_ladder_types
from medcal_gui.quantize.quant_types import get_quant_type
from medcal_gui.quantize.quantize_process import warm_children
from medcal_gui.workflows.ladder.results import Constraints, LadderResult, Rung
from medcal_gui.workflows.preflight import (
    check_count,
    check_ctx,
    missing_folders,
    remove_made_folders,
)

log = logging.getLogger(__name__)

SHARED = 0  # progress row of the shared stages (imatrix, base pass, base speed); rungs are 1..n
RUNGS_KIND = "ladder rungs"  # the ownership marker of OUTDIR/rungs
MAX_REPS = 1000  # speed repetitions: more is hours of timing, not a better figure


def _tag(progress: ProgressCallback, row: int, label: str) -> ProgressCallback:
    def inner(p: Progress) -> None:
        progress(replace(p, message=f"{label}: {p.message}".rstrip(": "), extra={**p.extra, "rung": float(row)}))

    return inner


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def _complete(file: Path, sha: str | None) -> bool:
    """The quant is there whole: its .sha256 sidecar names the hash the rung record holds, and so does the file."""
    side = file.with_name(file.name + ".sha256")
    if sha is None or not file.is_file() or not side.is_file():
        return False
    try:
        if side.read_text(encoding="utf-8").split()[0] != sha:
            return False
    except (OSError, IndexError):
        return False
    return file_sha256(file) == sha


def _earlier_rung(prev: dict[str, Any] | None, key: dict[str, Any], out: Path) -> Rung | None:
    """The rung an earlier run finished with the same inputs, when its record and file are whole; a record of
    another shape (edited, or from another version) is not reused, and the rung is made again."""
    r = prev.get("rung") if prev and prev.get("key") == key else None
    if not isinstance(r, dict) or not _complete(out, r.get("sha256") if isinstance(r.get("sha256"), str) else None):
        return None
    try:
        return Rung(**{**r, "file": out, "reused": True})
    except TypeError:
        return None


def _parameters(path: Path) -> int:
    from medcal_gui.inspection.model_info import inspect_model

    return int(inspect_model(path).parameter_count)


def _speed_json(s: SpeedResult) -> dict[str, Any]:
    return {"pp_tokens_per_s": s.pp_tokens_per_s, "pp_sd": s.pp_sd, "tg_tokens_per_s": s.tg_tokens_per_s,
            "tg_sd": s.tg_sd, "speed_seconds": s.seconds, "pp_samples_ns": s.pp_samples_ns,
            "tg_samples_ns": s.tg_samples_ns}


def _imatrix(base: Path, base_sha: str, imatrix: Path | None, calibration: Sequence[Path], out_dir: Path,
             n_ctx: int, imatrix_chunks: int | None, threads: int, parse_special: bool,
             progress: ProgressCallback, cancel: CancelToken) -> tuple[Path, dict[str, Any]]:
    """The one importance matrix: the given file, or computed once from the calibration text (reused when
    an earlier run computed it from the same model and text)."""
    if imatrix is not None:
        if not imatrix.is_file():
            raise InputError(f"The importance matrix {imatrix} does not exist.")
        return imatrix, {"path": str(imatrix), "sha256": file_sha256(imatrix), "computed": False}
    from medcal_gui.calibrate.imatrix import compute_imatrix

    out = out_dir / "imatrix.gguf"
    record = out_dir / "imatrix.json"
    key = {"base_sha256": base_sha, "calibration_sha256": [file_sha256(c) for c in calibration],
           "n_ctx": n_ctx, "chunks": imatrix_chunks, "parse_special": parse_special}
    prev = _read_json(record)
    if prev and prev.get("key") == key and out.is_file() and file_sha256(out) == prev.get("sha256"):
        progress(Progress("imatrix", 1, 1, unit="files", message=f"reused {out.name}"))
        return out, {"path": str(out), "sha256": prev["sha256"], "computed": True, "reused": True,
                     "calibration": [str(c) for c in calibration]}
    t0 = time.monotonic()
    res = compute_imatrix(base, list(calibration), n_ctx=n_ctx, n_chunks=imatrix_chunks, threads=threads,
                          parse_special=parse_special, out=out, progress=progress, cancel=cancel)
    seconds = time.monotonic() - t0
    sha = file_sha256(out)
    _write_json(record, {"key": key, "sha256": sha, "chunks": res.chunks})
    return out, {"path": str(out), "sha256": sha, "computed": True, "reused": False, "chunks": res.chunks,
                 "seconds": seconds, "calibration": [str(c) for c in calibration]}


def rung_file(out_dir: Path, base: Path, qtype: str) -> Path:
    return out_dir / f"{base.stem}-{qtype}.gguf"


def planned_outputs(out_dir: Path, base: Path, names: Sequence[str],
                    computes_imatrix: bool) -> list[tuple[Path, tuple[str, ...], str]]:
    """Every file a ladder writes into `out_dir`: (path, sidecar suffixes, what it is), checked up front."""
    from medcal_gui.quantize.quantize import SIDECARS

    out: list[tuple[Path, tuple[str, ...], str]] = [(rung_file(out_dir, base, n), SIDECARS, f"{n} rung")
                                                      for n in names]
    if computes_imatrix:
        out += [(out_dir / "imatrix.gguf", (), "importance matrix"), (out_dir / "imatrix.json", (), "imatrix record")]
    out += [(out_dir / "rungs" / f"{n}.json", (), "rung record") for n in [*names, "base"]]
    out += [(out_dir / f"ladder.{ext}", (), "ladder report") for ext in ("json", "md", "svg", "png")]
    return out


def check_ladder_settings(constraints: Constraints, *, reps: int, n_ctx: int, eval_chunks: int | None,
                          imatrix_chunks: int | None, threads: int | None) -> None:
    """Every number a ladder uses, before anything is created: finite limits (no nan, inf or 1e400), counts
    within range. The GUI and the command line meet the same checks."""
    if constraints.max_kld is not None:
        finite_float(str(constraints.max_kld), "--max-kld", low=0)
    if constraints.min_tg is not None:
        finite_float(str(constraints.min_tg), "--min-tg", low=0)
    if constraints.max_size is not None:
        check_count(constraints.max_size, "--max-size (bytes)")
    check_count(reps, "--reps", high=MAX_REPS)
    check_ctx(n_ctx)
    check_count(eval_chunks, "--eval-chunks")
    check_count(imatrix_chunks, "--imatrix-chunks")
    check_count(threads, "--threads", low=0)


@warm_children()  # its quantizations find their child started
def run_ladder(base: Path, heldout: Path, *, imatrix: Path | None = None, calibration: Sequence[Path] = (),
               types: Sequence[str] | None = None, threads: int | None = None,
               constraints: Constraints | None = None, out_dir: Path, n_ctx: int = 512,
               eval_chunks: int | None = None, imatrix_chunks: int | None = None, reps: int = REPS,
               parse_special: bool = True, questions: Path | None = None,
               progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> LadderResult:
    """Quantize `base` to each of `types`, score every rung on `heldout` against one base pass, time it.

    Give `imatrix` (a file) or `calibration` (text files, one matrix computed from them); types that ignore
    an importance matrix are made without it. Cancel stops within the running rung's stage; finished rungs
    stay and a re-run reuses them when the hashes of their inputs match.
    """
    cancel = cancel or CancelToken()
    t0 = time.monotonic()
    base, heldout, out_dir = Path(base), Path(heldout), Path(out_dir)
    imatrix = Path(imatrix) if imatrix is not None else None
    calibration = [Path(c) for c in calibration]
    constraints = constraints or Constraints()
    # Everything is checked before anything is created: a refused ladder leaves OUTDIR as it was.
    if types is not None and not [t for t in types if str(t).strip()]:
        raise InputError("--types names no type (an empty list, or an unset shell variable): give at least one "
                         "quantization type, e.g. --types Q8_0,Q4_K_M, or leave --types out for the default "
                         "ladder.")
    names = [get_quant_type(t).name for t in (default_ladder_types() if types is None else
                                              [t for t in types if str(t).strip()])]
    if len(set(names)) != len(names):
        raise InputError(f"A type is listed twice: {', '.join(names)}.")
    floats = [n for n in names if get_quant_type(n).is_float]
    if floats:
        raise InputError(f"{', '.join(floats)} is a plain float conversion, not a rung of a quant ladder.")
    check_ladder_settings(constraints, reps=reps, n_ctx=n_ctx, eval_chunks=eval_chunks,
                          imatrix_chunks=imatrix_chunks, threads=threads)
    if imatrix is not None and calibration:
        raise InputError("Give either an importance matrix (--imatrix) or calibration text (--calibration), "
                         "not both.")
    needs = [n for n in names if get_quant_type(n).imatrix != "ignores"]
    if needs and imatrix is None and not calibration:
        raise InputError(f"{', '.join(needs)} use an importance matrix: give --imatrix FILE or "
                         "--calibration FILE.")
    check_input_file(base, "model")
    check_input_file(heldout, "held-out text")
    for c in calibration:
        check_input_file(c, "calibration text")
    if imatrix is not None and needs:
        check_input_file(imatrix, "importance matrix")
    for c in calibration:
        if c.resolve() == heldout.resolve():
            raise InputError(f"The held-out text {heldout} is also a calibration file: a held-out text must be "
                             "text the calibration never saw.")
    inputs = [base, heldout, *calibration, *([imatrix] if imatrix else []), *([Path(questions)] if questions else [])]
    for out, sidecars, what in planned_outputs(out_dir, base, names, bool(needs and imatrix is None)):
        check_output_path(out, inputs, sidecars=sidecars, what=what)
    content, _ = read_text(heldout)
    qs = None
    if questions is not None:  # read now: a bad question file is found before the hours of work, not after
        from medcal_gui.behaviour.mcq import load_questions

        qs = load_questions(Path(questions))
    made = missing_folders(out_dir / "rungs")
    ensure_dir(out_dir)
    if not (out_dir / "rungs").exists():  # an existing one (an earlier ladder's) is used as it is, never removed
        mark_folder(out_dir / "rungs", RUNGS_KIND)
    try:
        return _run(base, heldout, content, imatrix, calibration, names, needs, threads or os.cpu_count() or 1,
                    constraints, out_dir, n_ctx, eval_chunks, imatrix_chunks, reps, parse_special, questions, qs,
                    progress, cancel, t0)
    except BaseException:
        remove_made_folders(made, RUNGS_KIND)
        raise


def _run(base: Path, heldout: Path, content: str, imatrix: Path | None, calibration: list[Path], names: list[str],
         needs: list[str], threads: int, constraints: Constraints, out_dir: Path, n_ctx: int,
         eval_chunks: int | None, imatrix_chunks: int | None, reps: int, parse_special: bool,
         questions: Path | None, qs: Any, progress: ProgressCallback, cancel: CancelToken,
         t0: float) -> LadderResult:
    from medcal_gui.quantize.quantize import quantize_model
    from medcal_gui.workflows.ladder.ladder_report import finish

    shared = _tag(progress, SHARED, "shared")

    shared(Progress("hash", 0, None, message=f"hashing {base.name}"))
    base_sha = file_sha256(base)
    imx_path: Path | None = None
    imx_info: dict[str, Any] | None = None
    if needs:
        imx_path, imx_info = _imatrix(base, base_sha, imatrix, list(calibration), out_dir, n_ctx, imatrix_chunks,
                                      threads, parse_special, shared, cancel)
    cancel.check()
    t_base = time.monotonic()
    ev0 = evaluate(base, [], heldout, n_ctx=n_ctx, threads=threads, parse_special=parse_special,
                   n_chunks=eval_chunks, progress=shared, cancel=cancel)
    base_pass_s = time.monotonic() - t_base
    eval_key = {"base_sha256": base_sha, "heldout_sha256": text_sha256(content), "n_ctx": n_ctx,
                "chunks": eval_chunks, "parse_special": parse_special}
    speed_key = {"threads": threads, "reps": reps}

    base_record = out_dir / "rungs" / "base.json"
    prev = _read_json(base_record)
    if prev and prev.get("key") == {"base_sha256": base_sha, **speed_key} and isinstance(prev.get("speed"), dict):
        base_speed = prev["speed"]
    else:
        s = measure_speed(base, threads=threads, reps=reps, progress=shared, cancel=cancel)
        base_speed = _speed_json(s)
        _write_json(base_record, {"key": {"base_sha256": base_sha, **speed_key}, "speed": base_speed})
    n_params = _parameters(base)
    base_bytes = base.stat().st_size
    base_info: dict[str, Any] = {"file": str(base), "sha256": base_sha, "bytes": base_bytes,
                                 "parameters": n_params, "bpw": 8 * base_bytes / n_params,
                                 "ppl": 0.0, "base_pass_seconds": base_pass_s,
                                 "base_pass_from_cache": ev0.base_from_cache, **base_speed}

    rungs: list[Rung] = []
    for i, name in enumerate(names, 1):
        cancel.check()
        tag = _tag(progress, i, f"[{i}/{len(names)}] {name}")
        uses = get_quant_type(name).imatrix != "ignores"
        key = {"type": name, "imatrix_sha256": imx_info["sha256"] if (uses and imx_info) else None,
               **eval_key, **speed_key}
        out = rung_file(out_dir, base, name)
        record = out_dir / "rungs" / f"{name}.json"
        earlier = _earlier_rung(_read_json(record), key, out)
        if earlier is not None:
            rungs.append(earlier)
            tag(Progress("reuse", 1, 1, unit="rungs", message=f"finished earlier ({out.name})"))
            continue
        tq = time.monotonic()
        q = quantize_model(base, out, name, imatrix=imx_path if uses else None, threads=threads,
                           provenance={"ladder.type": name}, progress=tag, cancel=cancel)
        quantize_s = time.monotonic() - tq
        assert q.sha256 is not None
        te = time.monotonic()
        ev = evaluate(base, [out], heldout, n_ctx=n_ctx, threads=threads, parse_special=parse_special,
                      n_chunks=eval_chunks, progress=tag, cancel=cancel)
        eval_s = time.monotonic() - te
        m = ev.models[0]
        base_info["ppl"] = m.ppl_base
        sp = measure_speed(out, threads=threads, reps=reps, progress=tag, cancel=cancel)
        rung = Rung(type=name, file=out, bytes=q.output_bytes, bpw=8 * q.output_bytes / n_params, sha256=q.sha256,
                    kld_mean=m.kld_mean, kld_median=m.kld_median, kld_p99=m.kld_p99, same_top_pct=m.same_top_pct,
                    rms_dp_pct=m.rms_dp_pct, ppl_ratio=m.ppl_ratio, ppl_model=m.ppl_model,
                    pp_tokens_per_s=sp.pp_tokens_per_s, pp_sd=sp.pp_sd, tg_tokens_per_s=sp.tg_tokens_per_s,
                    tg_sd=sp.tg_sd, seconds={"quantize": quantize_s, "eval": eval_s, "speed": sp.seconds})
        _write_json(record, {"key": key, "rung": {k: v for k, v in rung.to_json().items()
                                                  if k not in ("reused", "pareto", "speedup_tg", "speedup_pp")},
                             "speed_samples": _speed_json(sp)})
        rungs.append(rung)

    res = LadderResult(base=base_info, heldout=heldout, imatrix=imx_info, rungs=rungs, constraints=constraints,
                       threads=threads, reps=reps, n_ctx=n_ctx, chunks=ev0.chunks, tokens_scored=ev0.tokens_scored,
                       seconds=0.0, warnings=list(ev0.warnings))
    if not base_info["ppl"]:
        base_info["ppl"] = _base_ppl(out_dir, rungs)
    if questions is not None:
        from medcal_gui.workflows.ladder.ladder_questions import score_ladder_questions

        score_ladder_questions(res, questions, threads=threads or 1, progress=progress, cancel=cancel,
                               loaded=qs)
    finish(res, out_dir, t0)
    return res


def _base_ppl(out_dir: Path, rungs: list[Rung]) -> float:
    """The base perplexity when every rung was reused: PPL_model / ratio of any rung."""
    for r in rungs:
        if r.ppl_ratio:
            return r.ppl_model / r.ppl_ratio
    return 0.0
