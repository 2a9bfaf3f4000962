"""The per-token KLD histogram's bins: one binning for the window and `medcal eval --plot`."""

from __future__ import annotations

import numpy as np

from medcal_gui.core.histogram import EDGES, N_BINS, kld_bins, kld_slot


def test_histogram_bins_are_logarithmic() -> None:
    edges, counts = kld_bins(np.array([0.0, 1e-9, 2e-6, 0.5, 50.0, -1e-12]))
    assert edges is EDGES and len(counts) == N_BINS
    assert counts.sum() == 6 and counts[0] == 3 and counts[-1] == 1  # ≈0 takes 0, 1e-9 and a rounding negative
    assert EDGES[1] == 1e-6 and EDGES[-1] == 10.0 and np.allclose(np.diff(np.log10(EDGES[1:])), 0.5)


def test_slots_place_values_in_their_bins() -> None:
    assert kld_slot(0.0) == 0.5 and kld_slot(1e-6) == 1.0 and kld_slot(10.0) == N_BINS
    assert kld_slot(1e3) == N_BINS  # beyond the axis: at its end, as the last bin counts it
    for j in range(1, N_BINS):
        assert j <= kld_slot(float(np.sqrt(EDGES[j] * EDGES[j + 1]))) < j + 1
