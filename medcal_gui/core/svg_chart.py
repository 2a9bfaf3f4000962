"""A small Qt-free SVG writer for labelled scatter charts (linear or log axes, a front line, reference lines).

The bundle carries no matplotlib; SVG is plain text that the Qt window (QtSvg), a browser and a Markdown
viewer all show. Values that a log axis cannot place (<= 0) are drawn at the axis' lower end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

INK = "#1f2933"
ACCENT = "#1565c0"
MUTED = "#9aa5b1"
GRID = "#e4e7eb"
REF = "#c62828"


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

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2:.1f}" y="24" text-anchor="middle" font-size="15" fill="{INK}">'
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
    out.append("</svg>")
    return "\n".join(out) + "\n"
