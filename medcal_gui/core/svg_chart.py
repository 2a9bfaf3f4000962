"""medcal's one SVG chart writer, Qt-free: labelled scatter charts (linear or log axes, a front line, reference
lines; the ladder), the per-token KLD histogram beside the perplexity ratios (`medcal eval --plot`) and the
KLD ranking (the hand-over report). The histogram's bins are core.histogram's, which the window draws too.

The bundle carries no matplotlib; SVG is plain text that the Qt window (QtSvg), a browser and a Markdown
viewer all show. Values that a log axis cannot place (<= 0) are drawn at the axis' lower end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from medcal_gui.core.fsutil import write_text_atomic
from medcal_gui.core.histogram import N_BINS, kld_bins, kld_slot, kld_ticks

INK = "#1f2933"
ACCENT = "#1565c0"
MUTED = "#9aa5b1"
GRID = "#e4e7eb"
REF = "#c62828"
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    muted: bool = False  # drawn grey (e.g. a dominated rung)
    marker: str = "circle"  # "circle" or "square"


@dataclass(frozen=True)
class RefLine:
    y: float
    label: str


class _Axis:
    def __init__(self, lo: float, hi: float, log: bool, a: float, b: float) -> None:
        self.log = log
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return self.a + (t - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self) -> list[float]:
        if self.log:
            return [10.0 ** e for e in range(math.ceil(self.lo - 1e-9), math.floor(self.hi + 1e-9) + 1)]
        span = self.hi - self.lo
        step = 10 ** math.floor(math.log10(span / 5))
        for m in (1, 2, 5, 10):
            if span / (step * m) <= 6:
                step *= m
                break
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]


def _fmt(v: float, log: bool) -> str:
    if log:
        return f"{v:g}"
    return f"{v:,.0f}" if abs(v) >= 10 else f"{v:g}"


def _range(vals: Sequence[float], log: bool) -> tuple[float, float, float]:
    """(lo, hi, floor): padded data range; `floor` stands in for values a log axis cannot show."""
    if log:
        pos = [v for v in vals if v > 0] or [1.0]
        lo, hi = min(pos), max(pos)
        floor = lo / 3 if any(v <= 0 for v in vals) else lo
        return 10 ** math.floor(math.log10(floor)), 10 ** math.ceil(math.log10(hi)), floor
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    return lo - pad, hi + pad, lo


def _open(width: int, height: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
            f'<rect width="{width}" height="{height}" fill="white"/>')


def _t(x: float, y: float, s: str, size: int = 11, anchor: str = "start", extra: str = "") -> str:
    extra = f" {extra}" if extra else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>{escape(s)}</text>'


def _document(width: int, height: int, body: list[str]) -> str:
    return "\n".join([_open(width, height), *body, "</svg>"]) + "\n"


def scatter_svg(points: Sequence[Point], *, title: str, x_label: str, y_label: str, log_x: bool = False,
                log_y: bool = False, front: Sequence[tuple[float, float]] = (), ref_lines: Sequence[RefLine] = (),
                width: int = 760, height: int = 460, note: str = "") -> str:
    """An SVG document: the points (labelled), `front` joined by a line, dashed horizontal `ref_lines`."""
    if not points:
        raise ValueError("a chart needs at least one point")
    left, right, top, bottom = 78, 24, 44, 58 + (16 if note else 0)
    xs = [p.x for p in points]
    ys = [p.y for p in points] + [r.y for r in ref_lines]
    x_lo, x_hi, x_floor = _range(xs, log_x)
    y_lo, y_hi, y_floor = _range(ys, log_y)
    ax = _Axis(x_lo, x_hi, log_x, left, width - right)
    ay = _Axis(y_lo, y_hi, log_y, height - bottom, top)

    def px(v: float) -> float:
        return ax(v if not log_x or v > 0 else x_floor)

    def py(v: float) -> float:
        return ay(v if not log_y or v > 0 else y_floor)

    out = [f'<text x="{width / 2:.1f}" y="24" text-anchor="middle" font-size="15" fill="{INK}">'
           f'{escape(title)}</text>']
    x0, x1, y0, y1 = left, width - right, height - bottom, top
    for t in ax.ticks():
        x = ax(t)
        out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="{GRID}"/>')
        out.append(f'<text x="{x:.1f}" y="{y0 + 16}" text-anchor="middle" fill="{INK}">{_fmt(t, log_x)}</text>')
    for t in ay.ticks():
        y = ay(t)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{INK}">{_fmt(t, log_y)}</text>')
    out.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="{INK}"/>')
    out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{y0 + 36}" text-anchor="middle" fill="{INK}">'
               f'{escape(x_label)}</text>')
    out.append(f'<text transform="translate(18 {(y0 + y1) / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'fill="{INK}">{escape(y_label)}</text>')
    for r in ref_lines:
        y = py(r.y)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="{REF}" stroke-dasharray="5 4" '
                   'stroke-width="1"/>')
        out.append(f'<text x="{x1 - 4}" y="{y - 4:.1f}" text-anchor="end" fill="{REF}" font-size="11">'
                   f'{escape(r.label)}</text>')
    if len(front) > 1:
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(front))
        out.append(f'<polyline points="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
    for p in sorted(points, key=lambda q: not q.muted):  # muted first, so live points draw on top
        x, y = px(p.x), py(p.y)
        fill = MUTED if p.muted else ACCENT
        if p.marker == "square":
            out.append(f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{fill}"/>')
        else:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{fill}"/>')
        anchor = "end" if x > (x0 + x1) / 2 else "start"
        dx = -8 if anchor == "end" else 8
        colour = MUTED if p.muted else INK
        out.append(f'<text x="{x + dx:.1f}" y="{y - 7:.1f}" text-anchor="{anchor}" fill="{colour}">'
                   f'{escape(p.label)}</text>')
    if note:
        out.append(f'<text x="{x0}" y="{height - 10}" fill="{MUTED}" font-size="11">{escape(note)}</text>')
    return _document(width, height, out)


def kld_histogram_svg(names: Sequence[str], kld_values: Sequence[np.ndarray], ppl_ratios: Sequence[float],
                      title: str = "") -> str:
    """KLD histograms per model (core.histogram's bins, the window's) beside a bar chart of PPL(model)/PPL(base)."""
    w, h = 1100, 460
    body: list[str] = []
    if title:
        body.append(_t(w / 2, 22, title, 14, "middle", 'font-weight="bold"'))
    vals = [np.asarray(v, dtype=np.float64) for v in kld_values]
    counts = [kld_bins(v)[1] for v in vals]
    x0, x1, y0, y1 = 70.0, 700.0, 50.0, 400.0
    ay = _Axis(0, max([int(c.max()) for c in counts if c.size] + [1]), False, y1, y0)

    def xp(slot: float) -> float:
        return x0 + slot / N_BINS * (x1 - x0)

    body.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" stroke="black"/>')
    for value, label in kld_ticks():
        x = xp(kld_slot(value))
        body.append(f'<line x1="{x:.1f}" y1="{y1}" x2="{x:.1f}" y2="{y1 + 5}" stroke="black"/>')
        body.append(_t(x, y1 + 18, label, 10, "middle"))
    for tick in ay.ticks():
        y = ay(tick)
        body.append(f'<line x1="{x0 - 5}" y1="{y:.1f}" x2="{x0}" y2="{y:.1f}" stroke="black"/>')
        body.append(_t(x0 - 8, y + 4, f"{tick:g}", 10, "end"))
    body.append(_t((x0 + x1) / 2, y1 + 38, "KL divergence per token (nats, log scale; ≈0: below 1e-6)", 11,
                   "middle"))
    body.append(_t(18, (y0 + y1) / 2, "tokens", 11, "middle", f'transform="rotate(-90 18 {(y0 + y1) / 2})"'))
    body.append(_t((x0 + x1) / 2, y0 - 8, "KLD against the base", 12, "middle"))
    for i, (name, v, hist) in enumerate(zip(names, vals, counts, strict=True)):
        color = COLORS[i % len(COLORS)]
        pts = [f"{xp(0):.1f},{y1}"]
        for j, n in enumerate(hist.tolist()):
            pts += [f"{xp(j):.1f},{ay(n):.1f}", f"{xp(j + 1):.1f},{ay(n):.1f}"]
        pts.append(f"{xp(N_BINS):.1f},{y1}")
        body.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        label = (f"{name} (mean {float(v.mean()):.4g})" if (v > 0).any()
                 else f"{name} (identical to the base: KLD 0)")
        ly = y0 + 16 + 16 * i
        body.append(f'<line x1="{x1 - 250}" y1="{ly - 4}" x2="{x1 - 230}" y2="{ly - 4}" stroke="{color}" '
                    'stroke-width="2"/>')
        body.append(_t(x1 - 225, ly, label, 10))
    # right panel: perplexity ratios
    bx0, bx1 = 860.0, 1070.0
    ratios = [float(r) for r in ppl_ratios]
    rmin = min([1.0] + ratios)
    span = max(max([1.0] + ratios) - rmin, 1e-6) * 1.15

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
    return _document(w, h, body)


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
    ax = _Axis(0, max(means + p99 + [1e-9]) * 1.1, False, x0, x1)
    body: list[str] = []
    if title:
        body.append(_t(w / 2, 24, title, 13, "middle", 'font-weight="bold"'))
    body.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>')
    body.append(f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="black"/>')
    for t in ax.ticks():
        body.append(f'<line x1="{ax(t):.1f}" y1="{y1}" x2="{ax(t):.1f}" y2="{y1 + 5}" stroke="black"/>')
        body.append(_t(ax(t), y1 + 18, f"{t:g}", 10, "middle"))
    for i, (lab, m, p) in enumerate(zip(labels, means, p99, strict=True)):
        y = y0 + i * row + row / 2
        body.append(f'<rect x="{x0}" y="{y - 9:.1f}" width="{max(ax(m) - x0, 0.5):.1f}" height="18" '
                    'fill="#1f77b4"/>')
        body.append(_t(ax(m) + 4, y + 4, f"{m:.4f}", 10))
        body.append(f'<line x1="{ax(p):.1f}" y1="{y - 12:.1f}" x2="{ax(p):.1f}" y2="{y + 12:.1f}" '
                    'stroke="black" stroke-width="2"/>')
        body.append(_t(x0 - 8, y + 4, lab[:28], 10, "end"))
    body.append(_t((x0 + x1) / 2, y1 + 38, "KL divergence against the base (nats; lower is better); "
                   "bar: mean, tick: 99th percentile", 11, "middle"))
    return _document(w, h, body)


def plot_eval(names: Sequence[str], kld_values: Sequence[np.ndarray], ppl_ratios: Sequence[float],
              out: Path, title: str = "") -> Path:
    write_text_atomic(Path(out), kld_histogram_svg(names, kld_values, ppl_ratios, title))
    return Path(out)


def plot_ranking(names: Sequence[str], kld_means: Sequence[float], kld_p99: Sequence[float], out: Path,
                 title: str = "") -> Path:
    write_text_atomic(Path(out), ranking_svg(names, kld_means, kld_p99, title))
    return Path(out)
