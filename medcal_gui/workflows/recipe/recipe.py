"""`medcal recipe`: one quant type per tensor, chosen to minimise the measured error under an exact byte budget.

Steps: candidate files (one per type, `candidates`), each tensor's bytes and importance-weighted error per
type, with `heldout` text the class/depth weights of those errors (`probes`), the allocation (`allocate`,
exact), the output's size predicted from the GGUF layout (`layout`) and checked against the written file,
the GGUF through `quantize_model` with one anchored exact-name rule per quantizable tensor, the rules as a
llama-quantize `--tensor-type-file`, and the report (`recipe_report`). The work folder beside the output
(`BASE.recipe-work/`, one per base model) keeps the measured errors, the probe figures and the reference
candidate (the others are deleted once measured), so another target on the same model and imatrix costs only
the allocation and the final quantize. It carries medcal's ownership marker: files are replaced and deleted by
name only there, and a folder of that name that medcal did not mark is refused (`checks`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medcal_gui.calibrate.imatrix_io import ImatrixData
from medcal_gui.core.errors import InputError, ModelError
from medcal_gui.core.file_hashes import file_sha256
from medcal_gui.core.fsutil import check_input_file, check_output_path, write_text_atomic
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.core.ownership import mark_folder
from medcal_gui.core.units import format_bytes
from medcal_gui.evaluate.eval_cache import text_sha256
from medcal_gui.quantize.quantize_process import warm_children
from medcal_gui.workflows.preflight import (
    check_count,
    check_ctx,
    missing_folders,
    remove_made_folders,
)
from medcal_gui.workflows.recipe.allocate import BudgetTooSmall, Option, allocate
from medcal_gui.workflows.recipe.candidates import (
    FLOAT,
    WORK_KIND,
    OptionsMeter,
    TensorOptions,
    check_candidate_types,
    default_candidate_types,
    exact_pattern,
    make_candidates,
    recipe_settings,
)
from medcal_gui.workflows.recipe.checks import check_target, check_work_folder, file_id, smallest_tensor_bytes
from medcal_gui.workflows.recipe.layout import pad, read_layout, tensor_bytes
from medcal_gui.workflows.recipe.probes import ProbeFit, layer_of, run_probes, tensor_class
from medcal_gui.workflows.recipe.results import RecipeResult

CANDIDATE_KEY = "medcal.recipe.candidate"
TARGET_KEY = "recipe.target"  # medcal.recipe.target in the output


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def reference_type(names: Sequence[str]) -> str:
    """The candidate kept whole: the probes' reference and the header the size is predicted from."""
    from medcal_gui.quantize.quant_types import get_quant_type

    high = str(recipe_settings()["probes"]["high_type"])
    quantized = [t for t in names if t != FLOAT]
    return high if high in quantized else max(quantized, key=lambda t: get_quant_type(t).bpw)


def _options(base: Path, imatrix: Path, names: Sequence[str], work: Path, *, base_sha: str, imx_sha: str,
             threads: int, progress: ProgressCallback,
             cancel: CancelToken) -> tuple[list[TensorOptions], Path, list[str]]:
    """The measured options (read back when this base, imatrix and type list were measured before), the
    reference candidate's file, and warnings. The other candidate files are deleted once measured."""
    high = reference_type(names)
    key = {"base_sha256": base_sha, "imatrix_sha256": imx_sha, "types": list(names)}
    record = work / "errors.json"
    prev = _read_json(record)
    folder = work / "candidates"
    kw: dict[str, Any] = dict(base_sha=base_sha, imatrix_sha=imx_sha, threads=threads, keep=[high],
                              progress=progress, cancel=cancel)
    if isinstance(prev, dict) and prev.get("key") == key:
        opts = [TensorOptions(t["name"], tuple(t["shape"]), t["base_type"],
                              {k: (int(v["bytes"]), float(v["error"])) for k, v in t["options"].items()},
                              bool(t["weighted_by_imatrix"]), dict(t["took"])) for t in prev["tensors"]]
        ref = make_candidates(base, imatrix, [high], folder, **kw)  # reused when still there
        notes = list(prev.get("warnings", []))
    else:
        meter = OptionsMeter(base, ImatrixData.load(imatrix).importance(), with_float=FLOAT in names,
                             progress=progress, cancel=cancel)
        ref = make_candidates(base, imatrix, names, folder, on_file=meter.add, **kw)
        if not ref.took:
            raise ModelError(f"No candidate type could be made from {base}: {'; '.join(ref.warnings)}")
        opts = meter.result(ref)
        notes = ref.warnings
        write_text_atomic(record, json.dumps({"key": key, "tensors": [o.to_json() for o in opts],
                                              "warnings": notes}) + "\n")
    if high not in ref.files:
        raise ModelError(f"The reference candidate {high} could not be made from {base}: {'; '.join(ref.warnings)}")
    return opts, ref.files[high], notes


def _probes(base: Path, imatrix: Path, heldout: Path, opts: list[TensorOptions], ref: Path, high: str,
            work: Path, threads: int, n_ctx: int, chunks: int | None, progress: ProgressCallback,
            cancel: CancelToken) -> tuple[ProbeFit | None, list[str]]:
    cfg = recipe_settings()["probes"]
    quantized = sorted((t for t in opts[0].took if t != FLOAT),
                       key=lambda t: sum(o.options[o.took[t]][0] for o in opts))
    low = cfg["low_type"] if cfg["low_type"] in quantized else quantized[0]
    if low == high:
        return None, ["Only one quantized candidate type: no probes, every tensor's error weighs the same."]
    key = {"base": file_sha256(base), "imatrix": file_sha256(imatrix), "heldout": text_sha256(
        heldout.read_text(encoding="utf-8", errors="replace")), "ref": file_sha256(ref),
        "low": low, "high": high, "n_ctx": n_ctx, "chunks": chunks, "settings": cfg}
    record = work / "probes.json"
    prev = _read_json(record)
    if isinstance(prev, dict) and prev.get("key") == key:
        f = prev["fit"]
        return ProbeFit(f["class_weight"], f["band_weight"], f["n_layer"], f["bands"], f["low_type"],
                        f["high_type"], f["kld_ref"], f["probes"], f["seconds"], f["chunks"]), []
    fit = run_probes(base, imatrix, heldout, opts, ref, work, low_type=low, high_type=high,
                     threads=threads, n_ctx=n_ctx, chunks=chunks, progress=progress, cancel=cancel)
    write_text_atomic(record, json.dumps({"key": key, "fit": fit.to_json()}) + "\n")
    return fit, []



@warm_children()  # its quantizations find their child started
def run_recipe(base: Path, imatrix: Path, out: Path, *, target_bytes: int | None = None,
               target_bpw: float | None = None, heldout: Path | None = None, types: Sequence[str] | None = None,
               threads: int | None = None, n_ctx: int = 512, probe_chunks: int | None = None,
               eval_chunks: int | None = None, compare: Sequence[str] | None = None, ladder: Path | None = None,
               progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> RecipeResult:
    """Write the recipe's GGUF to `out` (+ .sha256, manifest), `OUT.tensor-types.txt` and the report.

    Every setting and output path is checked before anything is created (a refusal leaves the folder as it
    was). The tensor-type file and the report are written after the GGUF; a failure or cancel after the GGUF
    replaced `out` removes it and every file beside it that describes it, so nothing describes a GGUF that is
    not there. The work folder keeps only whole measurements (removed again when this run made it and failed
    before measuring anything)."""
    from medcal_gui.inspection.model_info import inspect_model
    from medcal_gui.quantize.quant_types import get_quant_type
    from medcal_gui.quantize.quantize import SIDECARS
    from medcal_gui.workflows.recipe.recipe_report import ladder_inputs, report_paths

    cancel = cancel or CancelToken()
    t0 = time.monotonic()
    base, imatrix, out = Path(base), Path(imatrix), Path(out)
    heldout = Path(heldout) if heldout is not None else None
    ladder = Path(ladder) if ladder is not None else None
    check_target(target_bytes, target_bpw)
    check_input_file(base, "model")
    check_input_file(imatrix, "importance matrix")
    if heldout is not None:
        check_input_file(heldout, "held-out text")
    names = check_candidate_types(default_candidate_types() if types is None else types)
    if compare is not None:
        if heldout is None:
            raise InputError("--compare scores stock types on the held-out text: give --heldout FILE too, or "
                             "leave --compare out.")
        if not [t for t in compare if str(t).strip()]:
            raise InputError("--compare names no type (an empty list, or an unset shell variable): give at least "
                             "one stock type, e.g. --compare Q4_K_M, or leave --compare out for the types near "
                             "the recipe's size.")
        compare = [get_quant_type(t).name for t in compare if str(t).strip()]
    if ladder is not None and heldout is None:
        raise InputError("--ladder serves the comparison on the held-out text: give --heldout FILE too, or leave "
                         "--ladder out.")
    check_count(threads, "--threads", low=0)
    check_count(probe_chunks, "--probe-chunks")
    check_count(eval_chunks, "--eval-chunks")
    if heldout is not None:
        check_ctx(n_ctx)
    inputs = [base, imatrix, *([heldout] if heldout else []), *ladder_inputs(ladder)]
    recipe_file = out.with_name(out.stem + ".tensor-types.txt")
    reports = report_paths(out)
    check_output_path(out, inputs, sidecars=SIDECARS, what="recipe's model")
    for target in (recipe_file, *reports.values()):
        check_output_path(target, inputs, what="recipe file")
    work = out.parent / f"{base.stem}.recipe-work"
    check_work_folder(work, inputs, [out, recipe_file, *reports.values()])
    n_params = int(inspect_model(base).parameter_count)
    if target_bpw is not None:
        target_bytes = int(target_bpw * n_params / 8)
    assert target_bytes is not None
    floor = smallest_tensor_bytes(base, names)
    if floor is not None and target_bytes < floor:
        raise InputError(f"The target {format_bytes(target_bytes)} ({target_bytes} bytes) is below the smallest file "
                         f"these types can make: the tensors alone take at least {format_bytes(floor)} ({floor} bytes, "
                         f"{8 * floor / n_params:.2f} bits per weight). Give a larger target or add smaller types "
                         "to --types.")

    made = missing_folders(work)
    mark_folder(work, WORK_KIND)
    before = file_id(out)
    describing = [out, *(out.with_name(out.name + s) for s in SIDECARS), recipe_file, *reports.values()]
    try:
        return _build(base, imatrix, out, recipe_file, work, names, target_bytes, heldout, threads or os.cpu_count()
                      or 1, n_ctx, probe_chunks, eval_chunks, compare, ladder, n_params, progress, cancel, t0)
    except BaseException:
        if file_id(out) != before:  # this run replaced the GGUF: nothing may describe it now, nor the old one
            for p in describing:
                with contextlib.suppress(OSError):
                    p.unlink(missing_ok=True)
        remove_made_folders(made, WORK_KIND)
        raise


def _build(base: Path, imatrix: Path, out: Path, recipe_file: Path, work: Path, names: list[str],
           target_bytes: int, heldout: Path | None, threads: int, n_ctx: int, probe_chunks: int | None,
           eval_chunks: int | None, compare: Sequence[str] | None, ladder: Path | None, n_params: int,
           progress: ProgressCallback, cancel: CancelToken, t0: float) -> RecipeResult:
    from medcal_gui.quantize.quant_types import get_quant_type
    from medcal_gui.quantize.quantize import quantize_model
    from medcal_gui.quantize.tensor_types import TensorTypeRule, canonical_type, write_tensor_type_file
    from medcal_gui.workflows.recipe.recipe_report import finish, stock_near

    seconds: dict[str, float] = {}
    warnings: list[str] = []

    progress(Progress("hash", 0, None, message=f"hashing {base.name}"))
    base_sha, imx_sha = file_sha256(base), file_sha256(imatrix)
    tc = time.monotonic()
    opts, ref, notes = _options(base, imatrix, names, work, base_sha=base_sha, imx_sha=imx_sha, threads=threads,
                                progress=progress, cancel=cancel)
    warnings += notes
    seconds["candidates_and_errors"] = time.monotonic() - tc
    fit: ProbeFit | None = None
    if heldout is not None:
        tp = time.monotonic()
        fit, notes = _probes(base, imatrix, heldout, opts, ref, reference_type(names), work, threads, n_ctx,
                             probe_chunks, progress, cancel)
        warnings += notes
        seconds["probes"] = time.monotonic() - tp
    classes = recipe_settings()["probes"]["classes"]
    weight = {o.name: (fit.weight(o.name, classes) if fit else 1.0) for o in opts}

    # the exact size: a candidate's header with its one own key swapped for the output's, plus the tensors
    layout = read_layout(ref)
    add_keys = {"medcal." + TARGET_KEY: str(target_bytes)}
    names_q = {o.name for o in opts}
    fixed = layout.size({}, drop_keys=[CANDIDATE_KEY], add_keys=add_keys) - sum(
        pad(tensor_bytes(t.type, t.shape), layout.alignment) for t in layout.tensors if t.name in names_q)
    items = [[Option(t, pad(b, layout.alignment), weight[o.name] * e) for t, (b, e) in o.options.items()]
             for o in opts]
    try:
        alloc = allocate(items, target_bytes - fixed)
    except BudgetTooSmall as exc:
        smallest = fixed + exc.smallest
        raise InputError(f"The target {format_bytes(target_bytes)} ({target_bytes} bytes) is below the smallest "
                         f"file these types can make: {format_bytes(smallest)} ({smallest} bytes, "
                         f"{8 * smallest / n_params:.2f} bits per weight). Give a larger target or add smaller "
                         f"types to --types (the measurements are kept in {work} for the next run).") from None
    choice = {o.name: items[i][c].label for i, (o, c) in enumerate(zip(opts, alloc.choice, strict=True))}
    predicted = layout.size(choice, drop_keys=[CANDIDATE_KEY], add_keys=add_keys)
    assert predicted <= target_bytes

    by_bytes: dict[str, int] = {}
    for o in opts:
        if choice[o.name] != FLOAT:
            by_bytes[choice[o.name]] = by_bytes.get(choice[o.name], 0) + o.options[choice[o.name]][0]
    main_type = max(by_bytes, key=lambda t: by_bytes[t]) if by_bytes else reference_type(names)
    file_type = get_quant_type(main_type).name
    rules = [TensorTypeRule(exact_pattern(o.name), canonical_type(choice[o.name])) for o in opts]
    tq = time.monotonic()
    q = quantize_model(base, out, file_type, imatrix=imatrix, threads=threads, pure=True, tensor_types=rules,
                       provenance={TARGET_KEY: str(target_bytes)}, progress=progress, cancel=cancel)
    seconds["quantize"] = time.monotonic() - tq
    if q.output_bytes != predicted:
        warnings.append(f"The file is {q.output_bytes} bytes, {q.output_bytes - predicted:+d} from the "
                        f"{predicted} predicted from its layout.")
    wrote = {t.name: t.type for t in read_layout(out).tensors}
    off = [n for n, t in choice.items() if wrote.get(n) != t]
    if off:
        raise ModelError(f"llama.cpp wrote {len(off)} tensors in other types than the recipe's (first: {off[0]} "
                         f"is {wrote.get(off[0])}, not {choice[off[0]]}).")

    kld: dict[str, Any] | None = None
    predicted_kld: float | None = None
    if fit is not None:
        predicted_kld = fit.kld_ref + sum(
            weight[o.name] * (o.options[choice[o.name]][1] - o.options[o.took[fit.high_type]][1]) for o in opts)
    tensors = [{"name": o.name, "type": choice[o.name], "bytes": o.options[choice[o.name]][0],
                "parameters": math.prod(o.shape), "error": o.options[choice[o.name]][1], "weight": weight[o.name],
                "class": tensor_class(o.name, classes), "layer": layer_of(o.name)} for o in opts]
    res = RecipeResult(model=base, out=out, recipe_file=recipe_file, budget=target_bytes,
                       predicted_bytes=predicted, bytes=q.output_bytes, bpw=8 * q.output_bytes / n_params,
                       parameters=n_params, file_type=file_type, sha256=q.sha256 or "", choice=choice,
                       tensors=tensors, weighted_error=alloc.error, bound=alloc.bound, optimal=alloc.optimal,
                       predicted_kld=predicted_kld, kld=kld, probes=fit, seconds=seconds,
                       warnings=warnings + q.warnings)
    res.rebuild_command = (f"llama-quantize --pure --imatrix {imatrix} --tensor-type-file {recipe_file} "
                           f"{base} {out.name} {file_type}")
    if heldout is not None:
        tv = time.monotonic()
        stock_near(res, heldout, imatrix, work, compare, threads=threads, n_ctx=n_ctx, eval_chunks=eval_chunks,
                   ladder=ladder, progress=progress, cancel=cancel)
        seconds["compare"] = time.monotonic() - tv
    seconds["total"] = time.monotonic() - t0
    # The files that describe the GGUF come last, after the last cancel point: a cancel up to here removes the
    # GGUF (run_recipe), and nothing describes a file that is not there.
    cancel.check()
    progress(Progress("write", 0, 1, unit="files", message=f"writing {recipe_file.name} and the report"))
    write_tensor_type_file(recipe_file, rules)
    finish(res)
    progress(Progress("write", 1, 1, unit="files", message="done"))
    return res
