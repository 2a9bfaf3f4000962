"""How much a unit of each tensor's error costs in KL divergence, by tensor class and depth: measured.

Every probe is the high-type candidate (all tensors at `high_type`, e.g. Q8_0) with one tensor class, or one
band of layers, dropped to `low_type` through per-tensor overrides; all probes and the reference are scored
in one `evaluate` call on a few held-out chunks (one base pass). With dE_t the error a tensor gains between
the two types, the model is dKLD(probe) = sum over its tensors of w_class(t) * w_band(t) * dE_t; the class
and band factors are fitted by alternating the two sets of equations (each an exact solve given the other).
Probes cost one quantize and one scoring pass each: len(classes) + bands of them.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.workflows.recipe.candidates import TensorOptions, check_owned, exact_pattern, recipe_settings

_LAYER = re.compile(r"^blk\.(\d+)\.")
FITS = 4


def tensor_class(name: str, classes: Mapping[str, Sequence[str]]) -> str:
    stem = name.rsplit(".", 1)[0].split(".")[-1] if name.startswith("blk.") else name.rsplit(".", 1)[0]
    for cls, parts in classes.items():
        if stem in parts:
            return cls
    return "other"


def layer_of(name: str) -> int | None:
    m = _LAYER.match(name)
    return int(m.group(1)) if m else None


@dataclass
class ProbeFit:
    class_weight: dict[str, float]
    band_weight: list[float]
    n_layer: int
    bands: int
    low_type: str
    high_type: str
    kld_ref: float
    probes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    chunks: int = 0

    def band(self, name: str) -> int | None:
        layer = layer_of(name)
        return None if layer is None else min(self.bands - 1, layer * self.bands // max(1, self.n_layer))

    def weight(self, name: str, classes: Mapping[str, Sequence[str]]) -> float:
        cls = tensor_class(name, classes)
        w = self.class_weight.get(cls, statistics.median(self.class_weight.values()))
        b = self.band(name)
        return w * (self.band_weight[b] if b is not None else 1.0)

    def to_json(self) -> dict[str, Any]:
        return {"class_weight": self.class_weight, "band_weight": self.band_weight, "n_layer": self.n_layer,
                "bands": self.bands, "low_type": self.low_type, "high_type": self.high_type,
                "kld_ref": self.kld_ref, "probes": self.probes, "seconds": self.seconds, "chunks": self.chunks}


def _delta(t: TensorOptions, low: str, high: str) -> float:
    return t.options[t.took[low]][1] - t.options[t.took[high]][1]


def run_probes(base: Path, imatrix: Path, heldout: Path, tensors: Sequence[TensorOptions], ref_file: Path,
               folder: Path, *, low_type: str, high_type: str, threads: int | None, n_ctx: int,
               chunks: int | None = None, parse_special: bool = True, progress: ProgressCallback = no_progress,
               cancel: CancelToken | None = None) -> ProbeFit:
    from medcal_gui.evaluate.evaluate import evaluate
    from medcal_gui.quantize.quantize import quantize_model
    from medcal_gui.quantize.tensor_types import TensorTypeRule

    cancel = cancel or CancelToken()
    check_owned(folder)  # its probe files are replaced and deleted by name
    t0 = time.monotonic()
    cfg = recipe_settings()["probes"]
    classes: dict[str, list[str]] = {k: list(v) for k, v in cfg["classes"].items()}
    bands = int(cfg["bands"])
    chunks = chunks or int(cfg["chunks"])
    layers = [x for x in (layer_of(t.name) for t in tensors) if x is not None]
    n_layer = max(layers) + 1 if layers else 1
    bands = max(1, min(bands, n_layer))
    fit = ProbeFit({}, [1.0] * bands, n_layer, bands, low_type, high_type, 0.0, chunks=chunks)
    groups: list[tuple[str, str, list[TensorOptions]]] = []
    for cls in classes:
        members = [t for t in tensors if tensor_class(t.name, classes) == cls]
        if members:
            groups.append(("class", cls, members))
    for b in range(bands):
        members = [t for t in tensors if fit.band(t.name) == b]
        if members and bands > 1:
            groups.append(("band", str(b), members))
    files: list[Path] = []
    for i, (kind, label, members) in enumerate(groups):
        cancel.check()
        progress(Progress("probes", i, len(groups), unit="probes", message=f"{kind} {label}: quantizing"))
        out = folder / f"probe-{kind}-{label}.gguf"
        for stale in (out, out.with_name(out.name + ".sha256"), out.with_name(out.name + ".manifest.json")):
            stale.unlink(missing_ok=True)
        rules = [TensorTypeRule(exact_pattern(t.name), t.took[low_type].lower()) for t in members]
        quantize_model(base, out, high_type, imatrix=imatrix, threads=threads, pure=True, tensor_types=rules,
                       provenance={"recipe.probe": f"{kind}:{label}"}, cancel=cancel)
        files.append(out)
    progress(Progress("probes", len(groups), len(groups), unit="probes", message="scoring"))
    ev = evaluate(base, [ref_file, *files], heldout, n_ctx=n_ctx, threads=threads, parse_special=parse_special,
                  n_chunks=chunks, progress=progress, cancel=cancel)
    fit.kld_ref = ev.models[0].kld_mean
    dk = [max(0.0, m.kld_mean - fit.kld_ref) for m in ev.models[1:]]
    for (kind, label, members), d, f in zip(groups, dk, files, strict=True):
        fit.probes.append({"kind": kind, "label": label, "tensors": len(members), "file": str(f),
                           "kld_mean": d + fit.kld_ref, "delta_kld": d,
                           "delta_error": sum(_delta(t, low_type, high_type) for t in members)})
    _fit(fit, groups, dk, classes)
    fit.seconds = time.monotonic() - t0
    for f in files:  # the probes served their purpose; keep only the figures
        for p in (f, f.with_name(f.name + ".sha256"), f.with_name(f.name + ".manifest.json")):
            p.unlink(missing_ok=True)
    return fit


def _fit(fit: ProbeFit, groups: Sequence[tuple[str, str, Sequence[TensorOptions]]], dk: Sequence[float],
         classes: Mapping[str, Sequence[str]]) -> None:
    """Alternate: class weights given band weights, then band weights given class weights."""
    floor = 1e-3 * max(max(dk, default=0.0), 1e-12)
    for _ in range(FITS):
        for (kind, label, members), d in zip(groups, dk, strict=True):
            if kind != "class":
                continue
            de = sum(_delta(t, fit.low_type, fit.high_type) *
                     (fit.band_weight[b] if (b := fit.band(t.name)) is not None else 1.0) for t in members)
            fit.class_weight[label] = max(d, floor) / de if de > 0 else 0.0
        for (kind, label, members), d in zip(groups, dk, strict=True):
            if kind != "band":
                continue
            de = sum(_delta(t, fit.low_type, fit.high_type) *
                     fit.class_weight.get(tensor_class(t.name, classes), 0.0) for t in members)
            fit.band_weight[int(label)] = max(d, floor) / de if de > 0 else 1.0
