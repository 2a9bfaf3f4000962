"""Guidance read from `resources/quant_types.toml` (through quant_types' one loader): the recommended type,
per-type caveats and the ladder's default rungs. How to read a KL divergence is `evaluate.kld_reading`."""

from __future__ import annotations

import functools

from medcal_gui.quantize.quant_types import get_quant_type, quant_types_doc


def default_ladder_types() -> list[str]:
    """The rungs `medcal ladder` sweeps when none are given, largest first."""
    return [get_quant_type(t).name for t in quant_types_doc().get("ladder", {}).get("default_types", [])]


def recommended_type() -> tuple[str, str]:
    """(type, why) to start with when nothing is measured yet."""
    adv = quant_types_doc().get("advice", {})
    return get_quant_type(str(adv.get("recommended", "Q4_K_M"))).name, str(adv.get("recommended_why", ""))


@functools.cache
def _caveats() -> dict[str, str]:
    return {str(t["name"]): str(t["caveat"]) for t in quant_types_doc().get("type", []) if t.get("caveat")}


def caveat(name: str) -> str | None:
    """A warning on a type that makes little sense for a dense model (MXFP4_MOE, TQ1_0 ...), or None."""
    return _caveats().get(get_quant_type(name).name)
