"""The quantization types llama-quantize offers, read from `resources/quant_types.toml`."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from medcal_gui.core.errors import InputError
from medcal_gui.core.resources import resources_dir

ImatrixUse = Literal["ignores", "benefits", "requires"]
_IMATRIX_USES = ("ignores", "benefits", "requires")
# Types that are plain float conversions: "quantizing" to them loses nothing worth measuring.
FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})


@dataclass(frozen=True)
class QuantType:
    name: str
    ftype: int  # llama_ftype from llama.h
    bpw: float  # bits per weight
    imatrix: str  # one of "ignores", "benefits", "requires"
    description: str

    @property
    def is_float(self) -> bool:
        return self.name in FLOAT_TYPES

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _table_path() -> Path:
    return resources_dir() / "quant_types.toml"


@functools.cache
def quant_types_doc() -> dict[str, Any]:
    """quant_types.toml as parsed, once per process: the types, aliases, rules, advice and ladder read from it."""
    with open(_table_path(), "rb") as fh:
        return tomllib.load(fh)


@functools.cache
def _load() -> tuple[tuple[QuantType, ...], dict[str, str]]:
    path = _table_path()
    data = quant_types_doc()
    types: list[QuantType] = []
    for entry in data.get("type", []):
        qt = QuantType(
            name=str(entry["name"]),
            ftype=int(entry["ftype"]),
            bpw=float(entry["bpw"]),
            imatrix=str(entry["imatrix"]),
            description=str(entry["description"]),
        )
        if qt.imatrix not in _IMATRIX_USES:
            raise ValueError(f"{path}: {qt.name} has imatrix = {qt.imatrix!r}; expected one of {_IMATRIX_USES}")
        types.append(qt)
    aliases = {str(k).upper(): str(v).upper() for k, v in data.get("aliases", {}).items()}
    return tuple(types), aliases


@dataclass(frozen=True)
class QuantRules:
    """The thresholds of `[rules]` in quant_types.toml."""

    suggest_imatrix_below_bpw: float
    refuse_without_imatrix: frozenset[str]


@functools.cache
def quant_rules() -> QuantRules:
    rules = quant_types_doc().get("rules", {})
    return QuantRules(float(rules.get("suggest_imatrix_below_bpw", 4.5)),
                      frozenset(str(n).upper() for n in rules.get("refuse_without_imatrix", [])))


def all_quant_types() -> list[QuantType]:
    """Every type, in llama-quantize's order."""
    return list(_load()[0])


def get_quant_type(name: str) -> QuantType:
    """Look a type up by name (case-insensitive; llama-quantize's aliases such as Q4_K accepted)."""
    types, aliases = _load()
    key = name.strip().upper()
    key = aliases.get(key, key)
    for qt in types:
        if qt.name == key:
            return qt
    valid = ", ".join(qt.name for qt in types)
    raise InputError(f"Unknown quantization type {name!r}. Valid types: {valid}.")


def quant_type_for_ftype(ftype: int) -> QuantType | None:
    """The type whose llama_ftype is `ftype` (a GGUF's general.file_type), or None when not a known one."""
    for qt in _load()[0]:
        if qt.ftype == ftype:
            return qt
    return None


def imatrix_advice(qt: QuantType, has_imatrix: bool) -> str | None:
    """A plain-words note on how the importance matrix relates to `qt`, or None when nothing needs saying."""
    if qt.imatrix == "requires" and not has_imatrix:
        return (f"{qt.name} requires an importance matrix: llama.cpp refuses to quantize to it without one. "
                "Compute one from calibration text first, or choose a type such as Q4_K_M.")
    if qt.imatrix == "ignores" and has_imatrix:
        return f"{qt.name} ignores the importance matrix: the result is the same with or without it."
    if qt.imatrix == "benefits" and not has_imatrix and qt.bpw < quant_rules().suggest_imatrix_below_bpw:
        return (f"{qt.name} is a low-bit type: an importance matrix from calibration text usually improves it "
                "noticeably.")
    return None
