"""Prompt variants: data files (TOML) in resources/variants/ and in the user's variants folder."""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medcal_gui.dataset.records import TURN_MARKERS
from medcal_gui.errors import InputError
from medcal_gui.fsutil import write_text_atomic
from medcal_gui.resources import user_variants_dir, variants_dir

DEFAULT_VARIANT = "quantization_calibration"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    marker: str  # the system marker line, e.g. "[QUANTIZATION CALIBRATION]" (may be empty)
    instruction: str
    response: tuple[str, ...]  # the model turn's lines, trailing spaces kept
    description: str = ""
    filename: str = ""
    builtin: bool = False
    path: str = ""

    @property
    def response_text(self) -> str:
        return "\n".join(self.response)

    @property
    def output_name(self) -> str:
        return self.filename or f"medgemma_calibration_{self.name}.txt"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["response"] = list(self.response)
        return d


def _check(v: Variant, where: str) -> None:
    if not _NAME_RE.match(v.name):
        raise InputError(f"{where}: variant name {v.name!r} must be lower-case letters, digits, _ or -.")
    for field_name in ("marker", "instruction", "response_text"):
        value = getattr(v, field_name)
        if "\n" in value and field_name != "response_text":
            raise InputError(f"{where}: the variant's {field_name} must be a single line.")
        for m in TURN_MARKERS:
            if m in value:
                raise InputError(f"{where}: the variant's {field_name.replace('_text', '')} contains {m}, "
                                 "which would break the chat turn structure.")
    if not v.instruction.strip():
        raise InputError(f"{where}: the variant has no instruction line.")
    if not v.response_text.strip():
        raise InputError(f"{where}: the variant has no model response.")


def parse_variant(data: dict[str, Any], where: str, builtin: bool = False) -> Variant:
    try:
        resp = data["response"]
        if isinstance(resp, str):
            resp = resp.split("\n")
        v = Variant(name=str(data["name"]), title=str(data.get("title") or data["name"]),
                    marker=str(data.get("marker", "")), instruction=str(data["instruction"]),
                    response=tuple(str(x) for x in resp), description=str(data.get("description", "")),
                    filename=str(data.get("filename", "")), builtin=builtin, path=where)
    except KeyError as exc:
        raise InputError(f"{where}: the variant file lacks the field {exc.args[0]!r} (needs name, "
                         "instruction and response).") from None
    _check(v, where)
    return v


def load_variant_file(path: Path, builtin: bool = False) -> Variant:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not a readable variant file ({exc}).") from None
    return parse_variant(data, str(path), builtin)


def load_variants(extra_dir: Path | None = None) -> dict[str, Variant]:
    """Shipped variants first, then the user's; a user file cannot shadow a shipped name."""
    out: dict[str, Variant] = {}
    for p in sorted(variants_dir().glob("*.toml")):
        v = load_variant_file(p, builtin=True)
        out[v.name] = v
    udir = extra_dir or user_variants_dir()
    if udir.is_dir():
        for p in sorted(udir.glob("*.toml")):
            try:
                v = load_variant_file(p)
            except InputError:
                continue  # a broken user file must not hide the shipped variants
            out.setdefault(v.name, v)
    # The default first, then by name.
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != DEFAULT_VARIANT, not kv[1].builtin, kv[0])))


def get_variant(name: str) -> Variant:
    variants = load_variants()
    if name not in variants:
        raise InputError(f"Unknown variant {name!r}: choose one of {', '.join(variants)}.")
    return variants[name]


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"'


def variant_to_toml(v: Variant) -> str:
    lines = [f"name = {_toml_str(v.name)}", f"title = {_toml_str(v.title)}",
             f"description = {_toml_str(v.description)}", f"marker = {_toml_str(v.marker)}",
             f"instruction = {_toml_str(v.instruction)}", "response = ["]
    lines += [f"    {_toml_str(r)}," for r in v.response]
    lines += ["]", f"filename = {_toml_str(v.output_name)}", ""]
    return "\n".join(lines)


def save_user_variant(v: Variant, folder: Path | None = None) -> Path:
    """Write a user variant file (atomically); shipped names are refused."""
    _check(v, f"variant {v.name!r}")
    shipped = {p.stem for p in variants_dir().glob("*.toml")}
    if v.name in shipped:
        raise InputError(f"{v.name!r} is a shipped variant; save your copy under another name.")
    folder = folder or user_variants_dir()
    path = folder / f"{v.name}.toml"
    write_text_atomic(path, variant_to_toml(v))
    return path
