"""The recipe's report: the stock types near its size scored on the same text (`stock_near`), and
`OUT.recipe.json`, `OUT.recipe.md` and `OUT.recipe.svg` (where the bytes went: a grid of tensor kind by
layer, each cell the type chosen, coloured by its bits per weight)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from medcal_gui.core.file_hashes import file_sha256
from medcal_gui.core.fsutil import write_text_atomic
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.core.units import format_bytes
from medcal_gui.workflows.recipe.candidates import check_owned
from medcal_gui.workflows.recipe.results import RecipeResult

NEAR = 0.15  # stock types within 15 % of the recipe's size are compared by default
KLD_FIELDS = ("kld_mean", "kld_median", "kld_p99", "same_top_pct", "rms_dp_pct", "ppl_ratio")


def _stock_file(work: Path, base: Path, qtype: str) -> Path:
    return work / "stock" / f"{base.stem}-{qtype}.gguf"


def stock_types_near(base: Path, size: int, imatrix: Path) -> list[str]:
    """The ladder's stock types whose file (llama.cpp's dry-run estimate) is within NEAR of `size`, and at
    least the nearest one below and the nearest above."""
    from medcal_gui.quantize.quant_advice import default_ladder_types
    from medcal_gui.quantize.quantize import quantize_model

    est = {t: quantize_model(base, base.with_suffix(".dry"), t, imatrix=imatrix, dry_run=True).output_bytes
           for t in default_ladder_types()}
    near = {t for t, b in est.items() if abs(b - size) <= NEAR * size}
    below = [t for t in est if est[t] <= size]
    above = [t for t in est if est[t] > size]
    if below:
        near.add(max(below, key=lambda t: est[t]))
    if above:
        near.add(min(above, key=lambda t: est[t]))
    return sorted(near, key=lambda t: -est[t])


def read_ladder(ladder: Path) -> tuple[Path, dict[str, Any]]:
    """The document `--ladder` names (a `medcal ladder` folder or its ladder.json), with the shape the recipe
    reads checked: a missing file is an InputError, a file of another shape a DataError naming the key and
    what to pass instead (never a traceback, never silently no ladder)."""
    from medcal_gui.core.errors import DataError, InputError
    from medcal_gui.core.text_files import loads_json, read_utf8

    ladder = Path(ladder)
    path = ladder / "ladder.json" if ladder.is_dir() else ladder
    if not os.path.lexists(path):
        raise InputError(f"--ladder {ladder}: there is no {path.name if ladder.is_dir() else 'such file'} there. "
                         "Give the folder `medcal ladder -d` wrote, or its ladder.json.")
    doc = loads_json(read_utf8(path, "ladder file"), "ladder file", path)

    def bad(key: str, want: str) -> DataError:
        return DataError(f"the ladder file's {key} is not {want}; pass the ladder.json `medcal ladder` wrote.",
                         str(path))

    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not isinstance(doc, dict):
        raise bad("top level", "an object")
    base = doc.get("base")
    if not isinstance(base, dict) or not isinstance(base.get("sha256"), str):
        raise bad('"base"', "an object with the base model's sha256")
    if doc.get("imatrix") is not None and not isinstance(doc["imatrix"], dict):
        raise bad('"imatrix"', "an object (or null)")
    for key in ("heldout",):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise bad(f'"{key}"', "a file name")
    for key in ("n_ctx", "chunks"):
        if doc.get(key) is not None and (not isinstance(doc[key], int) or isinstance(doc[key], bool)):
            raise bad(f'"{key}"', "a whole number")
    rungs = doc.get("rungs")
    if not isinstance(rungs, list):
        raise bad('"rungs"', "a list of rungs")
    from medcal_gui.core.errors import MedcalError
    from medcal_gui.quantize.quant_types import get_quant_type

    for i, r in enumerate(rungs):
        if not isinstance(r, dict) or not isinstance(r.get("type"), str) or not isinstance(r.get("file"), str):
            raise bad(f'"rungs"[{i}]', "an object with a \"type\" and a \"file\"")
        try:
            get_quant_type(r["type"])
        except MedcalError:
            raise bad(f'"rungs"[{i}]["type"] {r["type"][:40]!r}', "a quantization type") from None
        for k in KLD_FIELDS:
            if k in r and not number(r[k]):
                raise bad(f'"rungs"[{i}]["{k}"]', "a finite number")
    return path, doc


def ladder_inputs(ladder: Path | None) -> list[Path]:
    """The files a `--ladder` brings in (its ladder.json and the rung files it names): inputs no output of the
    recipe may be written over."""
    if ladder is None:
        return []
    path, doc = read_ladder(ladder)
    return [path, *(Path(r["file"]) for r in doc["rungs"])]


def ladder_rungs(ladder: Path | None, base_sha: str, imx_sha: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The rungs of a ladder (its folder or ladder.json) made from the same base, each with the imatrix given
    here when its type uses one, and the ladder's own document."""
    if ladder is None:
        return {}, {}
    _, doc = read_ladder(ladder)
    from medcal_gui.quantize.quant_types import get_quant_type

    if doc["base"]["sha256"] != base_sha:
        return {}, {}
    same_imx = (doc.get("imatrix") or {}).get("sha256") == imx_sha
    rungs = {r["type"]: r for r in doc["rungs"] if Path(r["file"]).is_file()
             and (same_imx or get_quant_type(r["type"]).imatrix == "ignores")}
    return rungs, doc


def _same_text(doc: dict[str, Any], heldout: Path, n_ctx: int) -> bool:
    """Whether the ladder scored the same held-out text with the same context. Its text is read bounded (the
    document names the file: a device or a FIFO there is no text, not a hang)."""
    from medcal_gui.core.errors import MedcalError
    from medcal_gui.core.text_files import read_bytes_bounded
    from medcal_gui.evaluate.eval_cache import text_sha256

    if not doc or doc.get("n_ctx") != n_ctx or not doc.get("heldout"):
        return False
    try:
        theirs = read_bytes_bounded(Path(doc["heldout"]), "ladder's held-out text")
        mine = read_bytes_bounded(heldout, "held-out text")
    except MedcalError:
        return False
    return text_sha256(theirs.decode("utf-8", errors="replace")) == text_sha256(mine.decode("utf-8", errors="replace"))


def stock_near(res: RecipeResult, heldout: Path, imatrix: Path, work: Path, compare: Sequence[str] | None, *,
               threads: int, n_ctx: int, eval_chunks: int | None, ladder: Path | None = None,
               progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> None:
    """Score the recipe and the stock types near its size (or `compare`) on `heldout`, in one base pass. A
    ladder's rung of the same base and imatrix serves as the stock file; its figures are taken as they are
    when the ladder scored the same text with the same chunks."""
    from medcal_gui.evaluate.evaluate import evaluate
    from medcal_gui.quantize.quant_types import get_quant_type
    from medcal_gui.quantize.quantize import quantize_model

    cancel = cancel or CancelToken()
    check_owned(work / "stock")  # stale stock files there are deleted by name
    names = [get_quant_type(t).name for t in compare] if compare is not None else \
        stock_types_near(res.model, res.bytes, imatrix)
    files: list[Path] = []
    base_sha, imx_sha = file_sha256(res.model), file_sha256(imatrix)
    rungs, doc = ladder_rungs(ladder, base_sha, imx_sha)
    for i, t in enumerate(names):
        cancel.check()
        if t in rungs:
            files.append(Path(rungs[t]["file"]))
            continue
        uses = get_quant_type(t).imatrix != "ignores"
        out = _stock_file(work, res.model, t)
        record = out.with_name(out.name + ".recipe.json")
        key = {"base_sha256": base_sha, "imatrix_sha256": imx_sha if uses else None, "type": t}
        try:
            prev = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            prev = None
        if not (isinstance(prev, dict) and prev.get("key") == key and out.is_file()
                and file_sha256(out) == prev.get("sha256")):
            progress(Progress("stock", i, len(names), unit="files", message=f"{t}: quantizing"))
            for p in (out, out.with_name(out.name + ".sha256"), out.with_name(out.name + ".manifest.json")):
                p.unlink(missing_ok=True)
            q = quantize_model(res.model, out, t, imatrix=imatrix if uses else None, threads=threads,
                               cancel=cancel)
            write_text_atomic(record, json.dumps({"key": key, "sha256": q.sha256}) + "\n")
        files.append(out)
    same_text = _same_text(doc, heldout, n_ctx)
    from_ladder = {t for t in names if t in rungs and same_text}
    scored = [f for t, f in zip(names, files, strict=True) if t not in from_ladder]
    ev = evaluate(res.model, [res.out, *scored], heldout, n_ctx=n_ctx, threads=threads, n_chunks=eval_chunks,
                  progress=progress, cancel=cancel)
    if from_ladder and doc.get("chunks") != ev.chunks:  # the ladder scored other chunks: score its files too
        from_ladder = set()
        scored = files
        ev = evaluate(res.model, [res.out, *scored], heldout, n_ctx=n_ctx, threads=threads,
                      n_chunks=eval_chunks, progress=progress, cancel=cancel)
    mine = ev.models[0]
    res.kld = {k: getattr(mine, k) for k in KLD_FIELDS} | {"chunks": ev.chunks, "tokens_scored": ev.tokens_scored,
                                                          "heldout": str(heldout)}
    figures = iter(ev.models[1:])
    for t, f in zip(names, files, strict=True):
        if t in from_ladder:
            fig = {k: rungs[t][k] for k in KLD_FIELDS if k in rungs[t]}
        else:
            m = next(figures)
            fig = {k: getattr(m, k) for k in KLD_FIELDS}
        size = f.stat().st_size
        kld = fig.get("kld_mean") or 0.0
        res.stock.append({"type": t, "file": str(f), "bytes": size, "bpw": 8 * size / res.parameters, **fig,
                          "from_ladder": t in from_ladder,
                          "recipe_kld_change_pct": 100 * (mine.kld_mean / kld - 1) if kld else None,
                          "recipe_not_larger": res.bytes <= size})



def by_class(res: RecipeResult) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for t in res.tensors:
        r = rows.setdefault(t["class"], {"class": t["class"], "tensors": 0, "parameters": 0, "bytes": 0,
                                         "types": {}, "weight": t["weight"]})
        r["tensors"] += 1
        r["parameters"] += t["parameters"]
        r["bytes"] += t["bytes"]
        r["types"][t["type"]] = r["types"].get(t["type"], 0) + 1
    for r in rows.values():
        r["bpw"] = 8 * r["bytes"] / r["parameters"]
    return sorted(rows.values(), key=lambda r: -r["bytes"])


def markdown(res: RecipeResult) -> str:
    lines = [f"# Recipe for {res.model.name}: {format_bytes(res.bytes)} ({res.bpw:.3f} bits per weight)", "",
             f"- budget {res.budget} bytes; predicted from the layout {res.predicted_bytes}; written "
             f"{res.bytes} ({'equal' if res.bytes == res.predicted_bytes else 'DIFFERENT'})",
             f"- weighted error {res.weighted_error:.6g}; "
             + ("optimal (search finished)" if res.optimal else f"within {res.weighted_error - res.bound:.3g} "
                "of the optimum (node limit)"),
             f"- file type {res.file_type}; recipe `{res.recipe_file.name}`; rebuild with stock tools: "
             f"`{res.rebuild_command}`"]
    if res.predicted_kld is not None:
        lines.append(f"- predicted mean KLD {res.predicted_kld:.5f}" + (
            f", measured {res.kld['kld_mean']:.5f} ({res.kld['chunks']} chunks)" if res.kld else ""))
    if res.stock:
        lines += ["", "| file | size | bpw | mean KLD | p99 KLD | same top % | recipe's KLD vs it |",
                  "|---|---|---|---|---|---|---|"]
        assert res.kld is not None
        lines.append(f"| **recipe** | {format_bytes(res.bytes)} | {res.bpw:.3f} | {res.kld['kld_mean']:.5f} | "
                     f"{res.kld['kld_p99']:.4f} | {res.kld['same_top_pct']:.2f} | |")
        for s in res.stock:
            ch = s["recipe_kld_change_pct"]
            name = s["type"] + (" (ladder)" if s.get("from_ladder") else "")
            lines.append(f"| {name} | {format_bytes(s['bytes'])} | {s['bpw']:.3f} | {s['kld_mean']:.5f} | "
                         f"{s['kld_p99']:.4f} | {s['same_top_pct']:.2f} | "
                         f"{'' if ch is None else f'{ch:+.1f} %'}{'' if s['recipe_not_larger'] else ' (larger)'} |")
    lines += ["", "| class | tensors | parameters | bytes | bpw | types | error weight |",
              "|---|---|---|---|---|---|---|"]
    for r in by_class(res):
        types = ", ".join(f"{k}x{v}" for k, v in sorted(r["types"].items()))
        lines.append(f"| {r['class']} | {r['tensors']} | {r['parameters']:,} | {r['bytes']:,} | {r['bpw']:.2f} | "
                     f"{types} | {r['weight']:.3g} |")
    if res.probes:
        p = res.probes
        lines += ["", f"Probes ({len(p.probes)}, {p.chunks} chunks each, {p.seconds:.0f} s): {p.high_type} "
                  f"everywhere (KLD {p.kld_ref:.5f}) with one group at {p.low_type}.", "",
                  "| probe | tensors | KLD | dKLD | d error |", "|---|---|---|---|---|"]
        for q in p.probes:
            lines.append(f"| {q['kind']} {q['label']} | {q['tensors']} | {q['kld_mean']:.5f} | {q['delta_kld']:.5f} "
                         f"| {q['delta_error']:.4g} |")
        lines.append("")
        lines.append("Band weights (early to late): " + ", ".join(f"{b:.3g}" for b in p.band_weight))
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in res.seconds.items())]
    lines += [f"- warning: {w}" for w in res.warnings]
    return "\n".join(lines) + "\n"


def _colour(bpw: float) -> str:
    lo, hi = 2.0, 9.0
    t = min(1.0, max(0.0, (bpw - lo) / (hi - lo)))
    r, g, b = int(198 + (21 - 198) * t), int(40 + (101 - 40) * t), int(40 + (192 - 40) * t)
    return f"#{r:02x}{g:02x}{b:02x}"


def chart_svg(res: RecipeResult) -> str:
    """Tensor kind (rows) by layer (columns); each cell the chosen type, coloured by its bits per weight."""
    kinds: list[str] = []
    layers = sorted({t["layer"] for t in res.tensors if t["layer"] is not None})
    for t in res.tensors:
        kind = t["name"].split(".")[-2] if t["layer"] is not None else t["name"].rsplit(".", 1)[0]
        if kind not in kinds:
            kinds.append(kind)
    cell_w, cell_h, left, top = 44, 24, 110, 56
    width = left + cell_w * max(1, len(layers)) + 20
    height = top + cell_h * len(kinds) + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="10">',
           f'<text x="{left}" y="18" font-size="13">{escape(res.model.name)}: recipe at {format_bytes(res.bytes)} '
           f'({res.bpw:.2f} bpw), type per tensor</text>',
           f'<text x="{left}" y="34" fill="#52606d">colour: bits per weight of the type (red 2, blue 9)</text>']
    for j, layer in enumerate(layers):
        out.append(f'<text x="{left + j * cell_w + cell_w / 2}" y="{top - 6}" text-anchor="middle">{layer}</text>')
    for i, kind in enumerate(kinds):
        y = top + i * cell_h
        out.append(f'<text x="{left - 6}" y="{y + cell_h / 2 + 4}" text-anchor="end">{escape(kind)}</text>')
        for t in res.tensors:
            tk = t["name"].split(".")[-2] if t["layer"] is not None else t["name"].rsplit(".", 1)[0]
            if tk != kind:
                continue
            j = layers.index(t["layer"]) if t["layer"] is not None else 0
            w = cell_w if t["layer"] is not None else cell_w * max(1, len(layers))
            bpw = 8 * t["bytes"] / t["parameters"]
            x = left + j * cell_w
            out.append(f'<rect x="{x}" y="{y}" width="{w - 2}" height="{cell_h - 2}" fill="{_colour(bpw)}">'
                       f'<title>{escape(t["name"])}: {t["type"]}, {t["bytes"]:,} bytes</title></rect>')
            out.append(f'<text x="{x + (w - 2) / 2}" y="{y + cell_h / 2 + 3}" text-anchor="middle" '
                       f'fill="white">{escape(t["type"])}</text>')
    y = top + cell_h * len(kinds) + 20
    shares = ", ".join(f"{r['class']} {100 * r['bytes'] / max(1, sum(x['bytes'] for x in by_class(res))):.0f} %"
                       for r in by_class(res))
    out.append(f'<text x="{left}" y="{y}" fill="#52606d">bytes by class: {escape(shares)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def report_paths(out: Path) -> dict[str, Path]:
    """The report files beside the recipe's GGUF `out` (checked before any work, written after the GGUF)."""
    stem = out.with_name(out.stem)
    return {"json": Path(f"{stem}.recipe.json"), "markdown": Path(f"{stem}.recipe.md"),
            "svg": Path(f"{stem}.recipe.svg")}


def finish(res: RecipeResult) -> None:
    paths = report_paths(res.out)
    res.outputs = {"gguf": str(res.out), "tensor_type_file": str(res.recipe_file),
                   **{k: str(v) for k, v in paths.items()}}
    write_text_atomic(paths["svg"], chart_svg(res))
    write_text_atomic(paths["markdown"], markdown(res))
    write_text_atomic(paths["json"], json.dumps(res.to_json(), indent=2, ensure_ascii=False) + "\n")
