"""Guidance read from the data files: the recommended type and per-type caveats and the ladder's default
rungs (`resources/quant_types.toml`), and how to read a KL divergence (`resources/kld_guidance.toml`)."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcal_gui.core.resources import resources_dir
from medcal_gui.quantize.quant_types import get_quant_type


def _read(name: str) -> dict[str, Any]:
    path: Path = resources_dir() / name
    with open(path, "rb") as fh:
        return tomllib.load(fh)


@functools.cache
def _types_doc() -> dict[str, Any]:
    return _read("quant_types.toml")


def default_ladder_types() -> list[str]:
    """The rungs `medcal ladder` sweeps when none are given, largest first."""
    return [get_quant_type(t).name for t in _types_doc().get("ladder", {}).get("default_types", [])]


def recommended_type() -> tuple[str, str]:
    """(type, why) to start with when nothing is measured yet."""
    adv = _types_doc().get("advice", {})
    return get_quant_type(str(adv.get("recommended", "Q4_K_M"))).name, str(adv.get("recommended_why", ""))


@functools.cache
def _caveats() -> dict[str, str]:
    return {str(t["name"]): str(t["caveat"]) for t in _types_doc().get("type", []) if t.get("caveat")}


def caveat(name: str) -> str | None:
    """A warning on a type that makes little sense for a dense model (MXFP4_MOE, TQ1_0 ...), or None."""
    return _caveats().get(get_quant_type(name).name)


@dataclass(frozen=True)
class KldLevel:
    label: str
    words: str
    below: float | None


@dataclass(frozen=True)
class KldGuidance:
    near_lossless: float
    noticeable: float
    default_max_kld: float
    summary: str
    levels: tuple[KldLevel, ...]

    def reading(self, kld: float) -> KldLevel:
        """The level a mean KLD falls in (guidance, not a verdict)."""
        for lv in self.levels:
            if lv.below is None or kld < lv.below:
                return lv
        return self.levels[-1]


@functools.cache
def kld_guidance() -> KldGuidance:
    d = _read("kld_guidance.toml")
    levels = tuple(KldLevel(str(x["label"]), str(x["words"]), float(x["below"]) if "below" in x else None)
                   for x in d.get("level", []))
    return KldGuidance(float(d["near_lossless"]), float(d["noticeable"]), float(d["default_max_kld"]),
                       str(d.get("summary", "")), levels)
