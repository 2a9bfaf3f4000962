"""Per quantizable tensor and candidate type: the bytes it takes and its error, measured exactly.

One candidate file per type, made once with the importance matrix and `pure=True` (every quantizable tensor
takes the type; llama.cpp's block-size fallback still applies, so the type a tensor really gets is read from
the file). A tensor quantizes the same way whatever the others take (its bytes depend on its values, its
type and its own imatrix entry only), so a candidate's tensor is exactly the tensor a recipe will hold. The
error: dequantize it (gguf's dequantizers) and sum the squared difference to the base tensor, each column
weighted by its importance (the imatrix's mean squared activation), which is E||dW x||^2 per token.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from medcal_gui.core.errors import InputError, MedcalError, OutputError
from medcal_gui.core.file_hashes import file_sha256
from medcal_gui.core.fsutil import ensure_dir, write_text_atomic
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.core.ownership import MARKER, is_marked
from medcal_gui.core.resources import resources_dir
from medcal_gui.workflows.recipe.layout import tensor_bytes

log = logging.getLogger(__name__)

ROWS_VALUES = 1 << 22  # values dequantized at a time
FLOAT = "F16"
WORK_KIND = "recipe work"  # the ownership marker of BASE.recipe-work/


def check_owned(folder: Path) -> None:
    """Candidates, probes and stock files are replaced and deleted by name: only in medcal's own recipe work
    folder (one carrying its marker) or a folder directly inside it, never in a folder of the user's."""
    folder = Path(folder)
    if not (is_marked(folder, WORK_KIND) or is_marked(folder.parent, WORK_KIND)):
        raise OutputError(f"{folder} is not a recipe work folder medcal made (it lacks medcal's {MARKER} "
                          "marker): medcal replaces and deletes files in its work folder, so it uses only one of "
                          "its own.")


@functools.cache
def recipe_settings() -> dict[str, Any]:
    with open(resources_dir() / "recipe.toml", "rb") as fh:
        return tomllib.load(fh)


def default_candidate_types() -> list[str]:
    return [str(t).upper() for t in recipe_settings()["candidates"]["default"]]


def check_candidate_types(types: Sequence[str]) -> list[str]:
    from medcal_gui.quantize.quant_types import get_quant_type

    names = [t.strip().upper() for t in types if t.strip()]
    if not names:
        raise InputError("--types names no type (an empty list, or an unset shell variable): give at least one "
                         "tensor type, e.g. --types Q4_K,Q6_K,Q8_0, or leave --types out for the default "
                         "candidates.")
    for t in names:
        if t not in gguf.GGMLQuantizationType.__members__:
            raise InputError(f"Unknown tensor type {t!r} in --types: give ggml tensor types such as Q4_K, Q5_0, "
                             "IQ4_XS, Q8_0, F16.")
        if t != FLOAT:
            get_quant_type(t)  # a type llama-quantize can make a whole file of
    if len(set(names)) != len(names):
        raise InputError(f"A type is listed twice in --types: {', '.join(names)}.")
    if not [t for t in names if t != FLOAT]:
        raise InputError("Give at least one quantized type in --types (F16 alone is no recipe).")
    return names


@dataclass
class TensorOptions:
    name: str
    shape: tuple[int, ...]
    base_type: str
    options: dict[str, tuple[int, float]] = field(default_factory=dict)  # type -> (bytes, error)
    weighted_by_imatrix: bool = True
    took: dict[str, str] = field(default_factory=dict)  # candidate type -> the type the tensor really took

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "base_type": self.base_type,
                "weighted_by_imatrix": self.weighted_by_imatrix, "took": self.took,
                "options": {k: {"bytes": b, "error": e} for k, (b, e) in self.options.items()}}


def _rows(t: gguf.ReaderTensor) -> np.ndarray:
    """The tensor's data as (rows, bytes or values per row)."""
    data = np.asarray(t.data)
    return data.reshape(-1, data.shape[-1])


def _dequant_rows(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    if qtype == gguf.GGMLQuantizationType.F32:
        return data.astype(np.float32, copy=False)
    return gguf.quants.dequantize(data, qtype).astype(np.float32, copy=False)


def weighted_error(base: gguf.ReaderTensor, quant_rows: np.ndarray, quant_type: gguf.GGMLQuantizationType,
                   importance: np.ndarray | None, cancel: CancelToken) -> float:
    """sum over rows and columns of importance[col] * (dequant(quant) - base)^2, row block by row block."""
    brows = _rows(base)
    ne0 = int(base.shape[0])
    n = brows.shape[0]
    imp = None if importance is None else importance.reshape(-1, ne0).astype(np.float64)
    per_mat = n // (1 if imp is None else imp.shape[0])
    step = max(1, ROWS_VALUES // ne0)
    total = 0.0
    for r0 in range(0, n, step):
        cancel.check()
        r1 = min(n, r0 + step)
        b = _dequant_rows(brows[r0:r1], base.tensor_type).reshape(r1 - r0, ne0)
        q = _dequant_rows(quant_rows[r0:r1], quant_type).reshape(r1 - r0, ne0)
        d2 = np.square(q.astype(np.float64) - b)
        if imp is None:
            total += float(d2.sum())
        else:  # rows of expert e use imp[e]; r0..r1 may span experts
            mats = np.arange(r0, r1) // per_mat
            total += float(np.einsum("rc,rc->", d2, imp[mats]))
    return total


def float_error(base: gguf.ReaderTensor, importance: np.ndarray | None, cancel: CancelToken) -> float:
    """The error of storing the base tensor as F16 (zero when it is F16 already)."""
    if base.tensor_type == gguf.GGMLQuantizationType.F16:
        return 0.0
    f16 = _dequant_rows(_rows(base), base.tensor_type).astype(np.float16)
    return weighted_error(base, f16, gguf.GGMLQuantizationType.F16, importance, cancel)


def candidate_file(folder: Path, base: Path, qtype: str) -> Path:
    return folder / f"{base.stem}-pure-{qtype}.gguf"


def exact_pattern(name: str) -> str:
    """An anchored regex that matches this tensor name only (llama-quantize lowercases patterns: names are
    lowercase already, and re.escape's escapes survive it)."""
    return "^" + re.escape(name) + "$"


@dataclass
class Candidates:
    files: dict[str, Path]  # type -> candidate file (a type that taught nothing new has none)
    took: dict[str, dict[str, str]]  # type -> quantizable tensor -> the type it really takes (fallback)
    copied: dict[str, list[str]]  # type -> tensors its file holds as F16 copies (measured in another file)
    warnings: list[str] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)  # types whose file was measured, then deleted


def make_candidates(base: Path, imatrix: Path, types: Sequence[str], folder: Path, *, base_sha: str,
                    imatrix_sha: str, threads: int | None, keep: Sequence[str] = (),
                    on_file: Callable[[str, Path, Candidates], None] | None = None,
                    progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> Candidates:
    """The candidate file of each quantized type in `types` (reused when an earlier run made it from the
    same base and imatrix); the types llama.cpp cannot make here are left out, with a warning each.

    32-value block types come first; a later type whose fallback gives a tensor a type already made (Q4_K on
    rows of 640 values is Q5_0) copies that tensor as F16 instead of quantizing it again (an override), so
    each (tensor, type) is quantized once. `on_file(type, file, so_far)` is called as each file is ready; then
    the file is deleted unless its type is in `keep` (kept types are whole files, without copies), so at
    most one candidate besides those is on disk at a time."""
    from medcal_gui.quantize.quantize import quantize_model
    from medcal_gui.quantize.tensor_types import (
        TensorTypeRule,
        canonical_type,
        fallback_type,
        model_tensors,
        quantizable,
    )

    cancel = cancel or CancelToken()
    check_owned(folder)
    ensure_dir(folder)
    res = Candidates({}, {}, {})
    tensors = [t for t in model_tensors(base) if quantizable(t.name, t.ne)]
    covered: dict[str, set[str]] = {t.name: set() for t in tensors}
    block = {t: gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[t]][0] for t in types}
    wanted = sorted((t for t in types if t != FLOAT), key=lambda t: block[t])
    for i, t in enumerate(wanted):
        cancel.check()
        took = {m.name: fallback_type(canonical_type(t), m.ne[0]).upper() for m in tensors}
        res.took[t] = took
        copies = [] if t in keep else sorted(n for n, eff in took.items() if eff in covered[n])
        res.copied[t] = copies
        if len(copies) == len(tensors):
            progress(Progress("candidates", i + 1, len(wanted), unit="files", message=f"{t}: nothing new"))
            continue
        out = candidate_file(folder, base, t)
        record = out.with_name(out.name + ".recipe.json")
        key = {"base_sha256": base_sha, "imatrix_sha256": imatrix_sha, "type": t, "pure": True,
               "copied": copies}
        try:
            prev = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            prev = None
        if isinstance(prev, dict) and prev.get("key") == key and out.is_file() and \
                file_sha256(out) == prev.get("sha256"):
            progress(Progress("candidates", i + 1, len(wanted), unit="files", message=f"{t}: reused"))
        else:
            progress(Progress("candidates", i, len(wanted), unit="files", message=f"{t}: quantizing"))
            for stale in (out, out.with_name(out.name + ".sha256"), out.with_name(out.name + ".manifest.json")):
                stale.unlink(missing_ok=True)  # this run's own earlier candidate, no longer matching
            rules = [TensorTypeRule(exact_pattern(n), "f16") for n in copies]
            try:
                q = quantize_model(base, out, t, imatrix=imatrix, threads=threads, pure=True, tensor_types=rules,
                                   provenance={"recipe.candidate": t}, cancel=cancel)
            except MedcalError as exc:
                if isinstance(exc, InputError) and "exist" in exc.message:
                    raise
                res.warnings.append(f"The candidate type {t} was left out: {exc.message}")
                del res.took[t], res.copied[t]
                continue
            write_text_atomic(record, json.dumps({"key": key, "sha256": q.sha256}) + "\n")
        res.files[t] = out
        for n, eff in took.items():
            covered[n].add(eff)
        if on_file is not None:
            on_file(t, out, res)
        if t not in keep:
            for p in (out, out.with_name(out.name + ".sha256"), out.with_name(out.name + ".manifest.json"),
                      record):
                p.unlink(missing_ok=True)
            del res.files[t]
            res.measured.append(t)
    progress(Progress("candidates", len(wanted), len(wanted), unit="files", message="done"))
    return res


class OptionsMeter:
    """Per quantizable tensor, its options: the types it really takes, each with its bytes and its
    importance-weighted error measured in the candidate file that quantized it (`add`, file by file); F16
    too when asked for (`result`)."""

    def __init__(self, base: Path, importance: Mapping[str, np.ndarray], *, with_float: bool,
                 progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> None:
        self.reader = gguf.GGUFReader(base)
        self.base_t = {t.name: t for t in self.reader.tensors}
        self.importance = importance
        self.with_float = with_float
        self.progress = progress
        self.cancel = cancel or CancelToken()
        self.out: dict[str, TensorOptions] = {}

    def _opt(self, name: str) -> TensorOptions:
        if name not in self.out:
            b = self.base_t[name]
            self.out[name] = TensorOptions(name, tuple(int(x) for x in b.shape), b.tensor_type.name,
                                           weighted_by_imatrix=name in self.importance)
        return self.out[name]

    def add(self, k: str, path: Path, cands: Candidates) -> None:
        by_name = {t.name: t for t in gguf.GGUFReader(path).tensors}
        copied = set(cands.copied[k])
        todo = [n for n in cands.took[k] if n not in copied]
        for i, name in enumerate(todo):
            self.cancel.check()
            t, opt = by_name[name], self._opt(name)
            eff = t.tensor_type.name
            if eff != cands.took[k][name]:
                raise MedcalError(f"{path.name}: {name} is {eff}, not the {cands.took[k][name]} llama.cpp's "
                                  "rules give.")
            if eff not in opt.options:
                err = weighted_error(self.base_t[name], _rows(t), t.tensor_type, self.importance.get(name),
                                     self.cancel)
                opt.options[eff] = (int(t.n_bytes), err)
            self.progress(Progress("errors", i + 1, len(todo), unit="tensors", message=f"{k}: {name}"))

    def result(self, cands: Candidates) -> list[TensorOptions]:
        names = [t.name for t in self.reader.tensors if any(t.name in took for took in cands.took.values())]
        for k, took in cands.took.items():
            for n, eff in took.items():
                self._opt(n).took[k] = eff
        if self.with_float:
            for name in names:
                opt = self._opt(name)
                opt.took[FLOAT] = FLOAT
                if FLOAT not in opt.options:
                    opt.options[FLOAT] = (tensor_bytes(FLOAT, opt.shape),
                                          float_error(self.base_t[name], self.importance.get(name), self.cancel))
        return [self.out[n] for n in names]
