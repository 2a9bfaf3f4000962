"""What a finished ladder says: speed-ups, the Pareto front (size against mean KLD), the recommendation in
plain words, and the files `ladder.json`, `ladder.md`, `ladder.svg` (and `ladder.png` where matplotlib is)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medcal_gui.core.fsutil import atomic_path, write_text_atomic
from medcal_gui.core.svg_chart import Point, RefLine, scatter_svg
from medcal_gui.core.units import format_bytes
from medcal_gui.evaluate.kld_reading import kld_guide
from medcal_gui.quantize.quant_advice import caveat
from medcal_gui.workflows.ladder.results import Constraints, LadderResult, Rung


def mark_pareto(rungs: list[Rung]) -> None:
    """A rung is on the front when no other rung is at most as big and at most as far from the base, and
    strictly better in one of the two."""
    for r in rungs:
        r.pareto = not any(o is not r and o.bytes <= r.bytes and o.kld_mean <= r.kld_mean
                           and (o.bytes < r.bytes or o.kld_mean < r.kld_mean) for o in rungs)


def _meets(r: Rung, max_kld: float | None, c: Constraints) -> bool:
    return ((max_kld is None or r.kld_mean <= max_kld) and (c.max_size is None or r.bytes <= c.max_size)
            and (c.min_tg is None or r.tg_tokens_per_s >= c.min_tg))


def _limits(max_kld: float | None, c: Constraints) -> str:
    parts = []
    if max_kld is not None:
        parts.append(f"mean KLD ≤ {max_kld:g}")
    if c.max_size is not None:
        parts.append(f"size ≤ {format_bytes(c.max_size)}")
    if c.min_tg is not None:
        parts.append(f"generation ≥ {c.min_tg:g} tokens/s")
    return ", ".join(parts)


def recommend(rungs: list[Rung], c: Constraints) -> dict[str, Any]:
    """The smallest rung meeting the constraints (a near-lossless KLD when no --max-kld is given), or, with
    only a size limit, the best fidelity within it. Returns {type, text, rule}; type None when none meets."""
    g = kld_guide()
    by_size = sorted(rungs, key=lambda r: (r.bytes, r.kld_mean))
    if c.max_kld is None and c.max_size is not None:
        max_kld, rule = None, "best fidelity within the size"
        ok = [r for r in by_size if _meets(r, None, c)]
        pick = min(ok, key=lambda r: (r.kld_mean, r.bytes)) if ok else None
    else:
        max_kld = c.max_kld if c.max_kld is not None else g.default_max_kld
        rule = "smallest rung meeting the limits" + ("" if c.max_kld is not None else
                                                     f" (default: near-lossless, KLD ≤ {max_kld:g})")
        ok = [r for r in by_size if _meets(r, max_kld, c)]
        pick = ok[0] if ok else None
    limits = _limits(max_kld, c)
    if pick is None:
        best = min(rungs, key=lambda r: r.kld_mean)
        return {"type": None, "rule": rule, "limits": limits,
                "text": f"No rung meets {limits}. The closest to the base is {best.type} ({format_bytes(best.bytes)}, "
                        f"KLD {best.kld_mean:.4g}); loosen a limit or add larger types."}
    band = g.band(pick.kld_mean)
    text = (f"{pick.type}: {format_bytes(pick.bytes)}, {pick.speedup_tg:.1f}x the base's generation speed, "
            f"KLD {pick.kld_mean:.4g} ({band.label}: {band.reading}).")
    larger = [r for r in by_size if r.bytes > pick.bytes]
    if larger:
        nxt = larger[0]
        pct = 100 * (nxt.bytes / pick.bytes - 1)
        if nxt.kld_mean >= pick.kld_mean:
            text += f" {nxt.type} is {pct:.0f} % larger and no better on your text."
        else:
            text += (f" {nxt.type} is {pct:.0f} % larger for KLD {nxt.kld_mean:.4g} "
                     f"({100 * (1 - nxt.kld_mean / pick.kld_mean) if pick.kld_mean else 0:.0f} % lower).")
    smaller = [r for r in by_size if r.bytes < pick.bytes]
    if smaller:
        prv = smaller[-1]
        why = []
        if max_kld is not None and prv.kld_mean > max_kld:
            why.append(f"its KLD {prv.kld_mean:.4g} is over {max_kld:g}")
        if c.min_tg is not None and prv.tg_tokens_per_s < c.min_tg:
            why.append(f"it generates {prv.tg_tokens_per_s:.1f} tokens/s, under {c.min_tg:g}")
        if max_kld is None and prv.kld_mean > pick.kld_mean:
            why.append(f"its KLD is {prv.kld_mean:.4g}")
        if why:
            text += f" The next smaller, {prv.type}, is {100 * (1 - prv.bytes / pick.bytes):.0f} % smaller but " \
                    + " and ".join(why) + "."
    note = caveat(pick.type)
    if note:
        text += f" Note: {note}"
    return {"type": pick.type, "rule": rule, "limits": limits, "text": text}


def markdown(res: LadderResult) -> str:
    b = res.base
    head = ("| type | size | bits/wt | mean KLD | median KLD | KLD 99% | same top | RMS Δp | PPL ratio | "
            "pp512 t/s | tg128 t/s | tg speed-up | Pareto |\n")
    head += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n"
    rows = [f"| base ({Path(b['file']).name}) | {format_bytes(b['bytes'])} | {b['bpw']:.2f} | 0 | 0 | 0 | 100 % | "
            f"0 % | 1 | {b['pp_tokens_per_s']:.1f} ± {b['pp_sd']:.1f} | {b['tg_tokens_per_s']:.1f} ± {b['tg_sd']:.1f} "
            "| 1.00x | |"]
    mcq = b.get("mcq")
    if mcq:  # the behaviour columns, with a question file
        head = head.replace(" Pareto |\n", " Pareto | accuracy | lost / gained (McNemar p) |\n", 1)
        head = head.replace("|:---:|\n", "|:---:|---:|---:|\n", 1)
        rows[0] += f" {mcq['accuracy_pct']:.1f} % | |"
    for r in res.rungs:
        rows.append(f"| {r.type} | {format_bytes(r.bytes)} | {r.bpw:.2f} | {r.kld_mean:.5f} | {r.kld_median:.5f} | "
                    f"{r.kld_p99:.4f} | {r.same_top_pct:.2f} % | {r.rms_dp_pct:.2f} % | {r.ppl_ratio:.4f} | "
                    f"{r.pp_tokens_per_s:.1f} ± {r.pp_sd:.1f} | {r.tg_tokens_per_s:.1f} ± {r.tg_sd:.1f} | "
                    f"{r.speedup_tg:.2f}x | {'yes' if r.pareto else 'no'} |"
                    + (f" {r.mcq_accuracy_pct:.1f} % | {r.mcq_lost} / {r.mcq_gained} (p = {r.mcq_p:.3f}) |"
                       if mcq and r.mcq_accuracy_pct is not None else ""))
    g = kld_guide()
    rec = res.recommendation
    foot = [
        "",
        f"**Recommendation** ({rec.get('rule', '')}): {rec.get('text', '')}",
        "",
        f"Reading the KLD: {g.summary} (guidance, not a verdict.)",
        "",
        f"Scored on {res.heldout.name}: {res.chunks} chunks of {res.n_ctx} tokens, {res.tokens_scored} tokens "
        f"scored, base PPL {b['ppl']:.3f}. Speed as `llama-bench -p 512 -n 128 -r {res.reps} -t {res.threads}` "
        "(tokens/s, mean ± sd over the repetitions after a warm-up).",
    ]
    cav = [f"- {r.type}: {caveat(r.type)}" for r in res.rungs if caveat(r.type)]
    if cav:
        foot += ["", "Caveats:", *cav]
    foot += ["", "![size against mean KLD](ladder.svg)", ""]
    return head + "\n".join(rows) + "\n" + "\n".join(foot)


def chart_svg(res: LadderResult, extra: Sequence[tuple[str, int, float]] = ()) -> str:
    """Size against mean KLD of every rung; `extra` adds (label, bytes, mean KLD) points, e.g. a recipe."""
    g = kld_guide()
    pts = [Point(r.bytes / 1e6, r.kld_mean, r.type, muted=not r.pareto) for r in res.rungs]
    pts += [Point(b / 1e6, kld, label) for label, b, kld in extra]
    front = [(r.bytes / 1e6, r.kld_mean) for r in res.rungs if r.pareto]
    return scatter_svg(pts, title=f"Quant ladder of {Path(res.base['file']).name} on {res.heldout.name}",
                       x_label="file size (MB)", y_label="mean KL divergence against the base (log)", log_y=True,
                       front=front, ref_lines=[RefLine(g.near_lossless, f"near-lossless < {g.near_lossless:g}"),
                                               RefLine(g.noticeable, f"noticeable > {g.noticeable:g}")],
                       note="blue: the Pareto front (nothing smaller is closer to the base); grey: dominated rungs")


def _png(res: LadderResult, out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # optional: the bundle has no matplotlib
        return None
    fig, ax = plt.subplots(figsize=(7.6, 4.6), dpi=100)
    front = sorted((r.bytes / 1e6, r.kld_mean) for r in res.rungs if r.pareto)
    if len(front) > 1:
        ax.plot(*zip(*front, strict=True), color="#1565c0")
    for r in res.rungs:
        ax.scatter([r.bytes / 1e6], [max(r.kld_mean, 1e-9)], color="#1565c0" if r.pareto else "#9aa5b1")
        ax.annotate(r.type, (r.bytes / 1e6, max(r.kld_mean, 1e-9)), textcoords="offset points", xytext=(5, 5))
    ax.set_yscale("log")
    ax.set_xlabel("file size (MB)")
    ax.set_ylabel("mean KLD (log)")
    ax.set_title(f"Quant ladder of {Path(res.base['file']).name}")
    fig.tight_layout()
    try:
        with atomic_path(out) as tmp:  # a temporary file of ours: removed if the figure fails or is cancelled
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return out


def finish(res: LadderResult, out_dir: Path, t0: float, png: bool = True) -> None:
    b = res.base
    for r in res.rungs:
        r.speedup_tg = r.tg_tokens_per_s / b["tg_tokens_per_s"] if b["tg_tokens_per_s"] else 0.0
        r.speedup_pp = r.pp_tokens_per_s / b["pp_tokens_per_s"] if b["pp_tokens_per_s"] else 0.0
    res.rungs.sort(key=lambda r: -r.bytes)
    mark_pareto(res.rungs)
    res.recommendation = recommend(res.rungs, res.constraints)
    svg = out_dir / "ladder.svg"
    write_text_atomic(svg, chart_svg(res))
    md = out_dir / "ladder.md"
    write_text_atomic(md, markdown(res))
    res.outputs = {"json": str(out_dir / "ladder.json"), "md": str(md), "svg": str(svg)}
    if png:
        p = _png(res, out_dir / "ladder.png")
        if p is not None:
            res.outputs["png"] = str(p)
    res.seconds = time.monotonic() - t0
    write_text_atomic(out_dir / "ladder.json", json.dumps(res.to_json(), indent=2, ensure_ascii=False) + "\n")
