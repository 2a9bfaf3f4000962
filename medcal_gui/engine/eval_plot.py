"""PNG figures of evaluation results (matplotlib, Agg backend: no display, no Qt)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medcal_gui.errors import OutputError
from medcal_gui.fsutil import atomic_output


def _pyplot() -> object:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise OutputError("Writing a plot needs matplotlib, which is not installed "
                          "(pip install matplotlib).") from exc
    return plt


def plot_eval(names: Sequence[str], kld_values: Sequence[np.ndarray], ppl_ratios: Sequence[float],
              out: Path, title: str = "") -> Path:
    """KLD histograms per model (log x axis) beside a bar chart of PPL(model)/PPL(base); writes `out`."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [2, 1]})  # type: ignore[attr-defined]
    finite = [np.asarray(v, dtype=np.float64) for v in kld_values]
    pos = np.concatenate([v[v > 0] for v in finite]) if finite else np.empty(0)
    lo = max(float(pos.min()), 1e-7) if pos.size else 1e-7
    hi = max(float(pos.max()) if pos.size else 1.0, lo * 10)
    bins = np.geomspace(lo, hi, 60)
    for name, v in zip(names, finite, strict=True):
        if not (v > 0).any():
            ax1.plot([], [], " ", label=f"{name} (identical to the base: KLD 0)")
            continue
        ax1.hist(np.clip(v, lo, hi), bins=bins, histtype="step", linewidth=1.5,
                 label=f"{name} (mean {v.mean():.4g})")
    ax1.set_xscale("log")
    ax1.set_xlabel("KL divergence per token (nats)")
    ax1.set_ylabel("tokens")
    ax1.set_title("KLD against the base")
    ax1.legend(fontsize=8)
    y = np.arange(len(names))
    ax2.barh(y, [r - 1.0 for r in ppl_ratios], left=1.0, color="tab:orange")
    ax2.axvline(1.0, color="black", linewidth=0.8)
    ax2.set_yticks(y, [str(n) for n in names], fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("PPL(model) / PPL(base)")
    ax2.set_title("Perplexity ratio")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(Path(out), "wb", encoding=None, newline=None) as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)  # type: ignore[attr-defined]
    return Path(out)


def plot_ranking(names: Sequence[str], kld_means: Sequence[float], kld_p99: Sequence[float], out: Path,
                 title: str = "") -> Path:
    """Horizontal bars of mean KLD (best first), the 99th percentile marked; writes `out`."""
    plt = _pyplot()
    order = np.argsort(np.asarray(kld_means))
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(names) + 1.6))  # type: ignore[attr-defined]
    y = np.arange(len(names))
    means = np.asarray(kld_means)[order]
    ax.barh(y, means, color="tab:blue", label="mean KLD")
    ax.plot(np.asarray(kld_p99)[order], y, "k|", markersize=14, label="99th percentile")
    for yi, m in zip(y, means, strict=True):
        ax.text(m, yi, f" {m:.4f}", va="center", fontsize=8)
    ax.set_yticks(y, [str(names[i]) for i in order], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    ax.set_xlabel("KL divergence against the base (nats; lower is better)")
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_output(Path(out), "wb", encoding=None, newline=None) as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)  # type: ignore[attr-defined]
    return Path(out)
