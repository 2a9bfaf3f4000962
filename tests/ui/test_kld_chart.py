"""The window's KLD histogram and `medcal eval --plot`'s draw the same bins of the same data (they did not:
the window binned from 1e-6 to 10 with a ≈0 bin, the SVG over the data's own range, leaving zeros out)."""

from __future__ import annotations

import re

import numpy as np

from medcal_gui.core.histogram import N_BINS, kld_bins
from medcal_gui.core.svg_chart import kld_histogram_svg
from medcal_gui.ui.views.kld_chart import KldHistogram


def svg_counts(svg: str) -> list[list[int]]:
    """The counts each model's polyline draws, read back through the y axis' ticks."""
    ticks = [(float(m.group(1)), float(m.group(2))) for m in
             re.finditer(r'<line x1="65.0" y1="([\d.]+)" x2="70.0" y2="[\d.]+" stroke="black"/>\s*'
                         r'<text x="62.0" y="[\d.]+" font-size="10" text-anchor="end">([\d.]+)</text>', svg)]
    (y_zero, zero), (y_top, top) = ticks[0], ticks[-1]
    out = []
    for m in re.finditer(r'<polyline points="([^"]+)"', svg):
        ys = [float(p.split(",")[1]) for p in m.group(1).split()][1:-1:2]
        out.append([round(zero + (y_zero - y) / (y_zero - y_top) * (top - zero)) for y in ys])
    return out


def test_the_window_and_the_svg_histogram_bin_alike(qtbot) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    a = np.concatenate([np.zeros(40), 10.0 ** rng.uniform(-7, 1.5, 400)])  # zeros, the tail past 10
    b = 10.0 ** rng.uniform(-4, 0, 100)
    drawn = svg_counts(kld_histogram_svg(["a", "b"], [a, b], [1.01, 1.2]))
    for values, svg in zip((a, b), drawn, strict=True):
        chart = KldHistogram()
        qtbot.addWidget(chart)
        chart.set_values(values)
        assert len(svg) == len(chart.counts) == N_BINS
        assert chart.counts.tolist() == svg == kld_bins(values)[1].tolist()
        assert chart.n == len(values) == sum(svg)
