"""SVG figures of evaluation results, drawn as plain SVG text: no matplotlib, no Qt, nothing to bundle.

A browser, an image viewer or the GUI (QSvgRenderer) shows them; they are small and diff well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from medcal_gui.core.fsutil import write_text_atomic

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


def _t(x: float, y: float, s: str, size: int = 11, anchor: str = "start", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {FONT} {extra}>'
            f"{escape(s)}</text>")


def _svg(width: int, height: int, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(body) + "\n</svg>\n")


def _nice_ticks(hi: float, n: int = 5) -> list[float]:
    if hi <= 0:
        return [0.0]
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(hi / step) + 2) if i * step <= hi * 1.0001 + step * 0.5]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def kld_histogram_svg(names: Sequence[str], kld_values: Sequence[np.ndarray], ppl_ratios: Sequence[float],
                      title: str = "") -> str:
    """KLD histograms per model (log x axis) beside a bar chart of PPL(model)/PPL(base)."""
    w, h = 1100, 460
    body: list[str] = []
    if title:
        body.append(_t(w / 2, 22, title, 14, "middle", 'font-weight="bold"'))
    vals = [np.asarray(v, dtype=np.float64) for v in kld_values]
    pos = np.concatenate([v[v > 0] for v in vals]) if vals else np.empty(0)
    lo = max(float(pos.min()), 1e-7) if pos.size else 1e-7
    hi = max(float(pos.max()) if pos.size else 1.0, lo * 10)
    edges = np.geomspace(lo, hi, 41)
    counts: list[np.ndarray] = [np.histogram(np.clip(v[v > 0], lo, hi), bins=edges)[0] for v in vals]
    cmax = max([int(c.max()) for c in counts if c.size] + [1])
    # left panel: histogram
    x0, x1, y0, y1 = 70.0, 700.0, 50.0, 400.0
    lx0, lx1 = math.log10(lo), math.log10(hi)

    def xp(v: float) -> float:
        return x0 + (math.log10(v) - lx0) / (lx1 - lx0) * (x1 - x0)

    def yp(c: float) -> float:
        return y1 - c / cmax * (y1 - y0)

    body.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" stroke="black"/>')
    for e in range(math.ceil(lx0), math.floor(lx1) + 1):
        x = xp(10.0 ** e)
        body.append(f'<line x1="{x:.1f}" y1="{y1}" x2="{x:.1f}" y2="{y1 + 5}" stroke="black"/>')
        body.append(_t(x, y1 + 18, f"1e{e}", 10, "middle"))
    for tick in _nice_ticks(cmax):
        y = yp(tick)
        body.append(f'<line x1="{x0 - 5}" y1="{y:.1f}" x2="{x0}" y2="{y:.1f}" stroke="black"/>')
        body.append(_t(x0 - 8, y + 4, f"{tick:g}", 10, "end"))
    body.append(_t((x0 + x1) / 2, y1 + 38, "KL divergence per token (nats, log scale)", 11, "middle"))
    body.append(_t(18, (y0 + y1) / 2, "tokens", 11, "middle", f'transform="rotate(-90 18 {(y0 + y1) / 2})"'))
    body.append(_t((x0 + x1) / 2, y0 - 8, "KLD against the base", 12, "middle"))
    for i, (name, v, hist) in enumerate(zip(names, vals, counts, strict=True)):
        color = COLORS[i % len(COLORS)]
        if (v > 0).any():
            pts = [f"{xp(edges[0]):.1f},{y1}"]
            for j, n in enumerate(hist.tolist()):
                pts += [f"{xp(edges[j]):.1f},{yp(n):.1f}", f"{xp(edges[j + 1]):.1f},{yp(n):.1f}"]
            pts.append(f"{xp(edges[-1]):.1f},{y1}")
            body.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" stroke-width="1.5"/>')
            label = f"{name} (mean {_fmt(float(v.mean()))})"
        else:
            label = f"{name} (identical to the base: KLD 0)"
        ly = y0 + 16 + 16 * i
        body.append(f'<line x1="{x1 - 250}" y1="{ly - 4}" x2="{x1 - 230}" y2="{ly - 4}" stroke="{color}" '
                    'stroke-width="2"/>')
        body.append(_t(x1 - 225, ly, label, 10))
    # right panel: perplexity ratios
    bx0, bx1 = 860.0, 1070.0
    ratios = [float(r) for r in ppl_ratios]
    rmin = min([1.0] + ratios)
    rmax = max([1.0] + ratios)
    span = max(rmax - rmin, 1e-6) * 1.15

    def rx(r: float) -> float:
        return bx0 + (r - rmin) / span * (bx1 - bx0)

    bar_h = min(28.0, (y1 - y0) / max(1, len(names)) * 0.7)
    body.append(_t((bx0 + bx1) / 2, y0 - 8, "Perplexity ratio", 12, "middle"))
    for i, (name, r) in enumerate(zip(names, ratios, strict=True)):
        y = y0 + (i + 0.5) * (y1 - y0) / max(1, len(names))
        a, b = sorted((rx(1.0), rx(r)))
        body.append(f'<rect x="{a:.1f}" y="{y - bar_h / 2:.1f}" width="{max(b - a, 1):.1f}" height="{bar_h:.1f}" '
                    'fill="#ff7f0e"/>')
        body.append(_t(bx0 - 6, y + 4, str(name)[:22], 10, "end"))
        body.append(_t(b + 3, y + 4, f"{r:.4f}", 9))
    body.append(f'<line x1="{rx(1.0):.1f}" y1="{y0}" x2="{rx(1.0):.1f}" y2="{y1}" stroke="black"/>')
    body.append(_t((bx0 + bx1) / 2, y1 + 38, "PPL(model) / PPL(base)", 11, "middle"))
    return _svg(w, h, body)


def ranking_svg(names: Sequence[str], kld_means: Sequence[float], kld_p99: Sequence[float],
                title: str = "") -> str:
    """Horizontal bars of mean KLD (best first), the 99th percentile marked."""
    order = np.argsort(np.asarray(kld_means, dtype=np.float64), kind="stable")
    means = [float(kld_means[i]) for i in order]
    p99 = [float(kld_p99[i]) for i in order]
    labels = [str(names[i]) for i in order]
    row = 30.0
    x0, x1, y0 = 190.0, 860.0, 50.0
    y1 = y0 + row * len(labels)
    w, h = 900, int(y1 + 70)
    hi = max(means + p99 + [1e-9]) * 1.1
    body: list[str] = []
    if title:
        body.append(_t(w / 2, 24, title, 13, "middle", 'font-weight="bold"'))

    def xp(v: float) -> float:
        return x0 + v / hi * (x1 - x0)

    body.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>')
    body.append(f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="black"/>')
    for t in _nice_ticks(hi):
        body.append(f'<line x1="{xp(t):.1f}" y1="{y1}" x2="{xp(t):.1f}" y2="{y1 + 5}" stroke="black"/>')
        body.append(_t(xp(t), y1 + 18, f"{t:g}", 10, "middle"))
    for i, (lab, m, p) in enumerate(zip(labels, means, p99, strict=True)):
        y = y0 + i * row + row / 2
        body.append(f'<rect x="{x0}" y="{y - 9:.1f}" width="{max(xp(m) - x0, 0.5):.1f}" height="18" '
                    'fill="#1f77b4"/>')
        body.append(_t(xp(m) + 4, y + 4, f"{m:.4f}", 10))
        body.append(f'<line x1="{xp(p):.1f}" y1="{y - 12:.1f}" x2="{xp(p):.1f}" y2="{y + 12:.1f}" '
                    'stroke="black" stroke-width="2"/>')
        body.append(_t(x0 - 8, y + 4, lab[:28], 10, "end"))
    body.append(_t((x0 + x1) / 2, y1 + 38, "KL divergence against the base (nats; lower is better); "
                   "bar: mean, tick: 99th percentile", 11, "middle"))
    return _svg(w, h, body)


def plot_eval(names: Sequence[str], kld_values: Sequence[np.ndarray], ppl_ratios: Sequence[float],
              out: Path, title: str = "") -> Path:
    write_text_atomic(Path(out), kld_histogram_svg(names, kld_values, ppl_ratios, title))
    return Path(out)


def plot_ranking(names: Sequence[str], kld_means: Sequence[float], kld_p99: Sequence[float], out: Path,
                 title: str = "") -> Path:
    write_text_atomic(Path(out), ranking_svg(names, kld_means, kld_p99, title))
    return Path(out)
