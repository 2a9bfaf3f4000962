"""The bins of a per-token KL divergence histogram: the one binning that the window (QPainter, ui/views/kld_chart)
and `medcal eval --plot` (SVG, core/svg_chart) both draw, so the two show the same counts for the same data.

KLD values span many decades (most tokens near 0, a tail of badly predicted ones), so the bins are fixed and
logarithmic: one bin for values below 1e-6 ("≈0"), then two bins per decade up to 10; the last bin also takes
anything above. Fixed edges let two models' histograms (and two runs) be compared bin for bin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LOW, HIGH, PER_DECADE = -6, 1, 2
EDGES = np.array([0.0] + [10.0 ** (LOW + i / PER_DECADE) for i in range((HIGH - LOW) * PER_DECADE + 1)])
N_BINS = len(EDGES) - 1


def kld_bins(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edges, counts): EDGES and the count of `values` in each bin; negatives count as 0, above 10 as the last."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, EDGES[-1] * 0.999999)
    counts, _ = np.histogram(v, bins=EDGES)
    return EDGES, counts


def kld_slot(value: float) -> float:
    """Where `value` falls on the histogram's axis, in bins from its left end (0 .. N_BINS): the ≈0 bin takes
    the first slot, whose middle it marks; the log bins follow."""
    if value < EDGES[1]:
        return 0.5
    return min(1 + (math.log10(value) - LOW) * PER_DECADE, N_BINS)


def kld_ticks() -> list[tuple[float, str]]:
    """The axis' labels: (value, text), "≈0" first, then every other decade."""
    return [(EDGES[1] / 10, "≈0")] + [(10.0 ** d, f"1e{d}" if d < -2 else f"{10.0 ** d:g}")
                                      for d in range(LOW + 1, HIGH + 1, 2)]
