"""Prompt variants: data files (TOML) in resources/variants/ and in the user's variants folder."""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import tomli_w

from medcal_gui.core.errors import InputError
from medcal_gui.core.fsutil import write_text_atomic
from medcal_gui.core.resources import user_variants_dir, variants_dir
from medcal_gui.dataset.special_tokens import find_special_token

LOG = logging.getLogger(__name__)
DEFAULT_VARIANT = "quantization_calibration"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_logged: set[str] = set()  # broken user files already reported in the log (the GUI reloads variants often)


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


def check_filename(name: str, where: str) -> None:
    """A variant's output file name is a plain name inside the output folder: no folder, no `..`."""
    if not name:
        return
    bad = (PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or "/" in name
           or "\\" in name or ":" in name or name in (".", "..") or ".." in name or name.startswith(".")
           or any(ord(c) < 32 for c in name))
    if bad:
        raise InputError(f"{where}: the variant's filename {name!r} must be a plain file name (no folder, no "
                         "'..', not hidden), because it is written inside the chosen output folder.")


def _check(v: Variant, where: str) -> None:
    if not _NAME_RE.match(v.name):
        raise InputError(f"{where}: variant name {v.name!r} must be lower-case letters, digits, _ or -.")
    check_filename(v.filename, where)
    for field_name in ("marker", "instruction", "response_text"):
        value = getattr(v, field_name)
        if "\n" in value and field_name != "response_text":
            raise InputError(f"{where}: the variant's {field_name} must be a single line.")
        ctrl = next((c for c in value if (ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F), None)
        if ctrl is not None:
            raise InputError(f"{where}: the variant's {field_name.replace('_text', '')} contains the control "
                             f"character U+{ord(ctrl):04X}, which does not belong in a prompt.")
        hit = find_special_token(value)
        if hit:
            raise InputError(f"{where}: the variant's {field_name.replace('_text', '')} contains {hit[0]}, "
                             "a special token of the model, which would break the chat turn structure.")
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


def load_variants(extra_dir: Path | None = None, problems: list[str] | None = None) -> dict[str, Variant]:
    """Shipped variants first, then the user's; a user file cannot shadow a shipped name.

    A broken user file (unreadable, invalid TOML, bad fields) is skipped, so it cannot hide the shipped
    variants, but never silently: its message (file and TOML's line) goes to `problems` and to the log.
    """
    out: dict[str, Variant] = {}
    for p in sorted(variants_dir().glob("*.toml")):
        v = load_variant_file(p, builtin=True)
        out[v.name] = v
    udir = extra_dir or user_variants_dir()
    if udir.is_dir():
        for p in sorted(udir.glob("*.toml")):
            try:
                v = load_variant_file(p)
            except InputError as exc:
                _report(f"User variant skipped: {exc.message}", problems)
                continue
            if v.name in out:
                _report(f"User variant skipped: {p} is named {v.name!r}, like the variant in "
                        f"{out[v.name].path}; rename it.", problems)
                continue
            out[v.name] = v
    # The default first, then by name.
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != DEFAULT_VARIANT, not kv[1].builtin, kv[0])))


def _report(msg: str, problems: list[str] | None) -> None:
    if problems is not None:
        problems.append(msg)
    if msg not in _logged:
        _logged.add(msg)
        LOG.warning("%s", msg)


def check_unique_outputs(variants: list[Variant], reserved: dict[str, str]) -> None:
    """Refuse two variants (or a variant and one of the set's fixed files) writing the same file name."""
    used = {name.casefold(): what for name, what in reserved.items()}
    for v in variants:
        key = v.output_name.casefold()
        if key in used:
            raise InputError(f"Variant {v.name!r} ({v.path or 'built in'}) writes {v.output_name!r}, which is "
                             f"also {used[key]}: give it another filename.")
        used[key] = f"the file of variant {v.name!r}"


def get_variant(name: str) -> Variant:
    variants = load_variants()
    if name not in variants:
        raise InputError(f"Unknown variant {name!r}: choose one of {', '.join(variants)}.")
    return variants[name]


def variant_to_toml(v: Variant) -> str:
    """The variant as TOML (tomli-w escapes every control character, so the file always loads back)."""
    return tomli_w.dumps({"name": v.name, "title": v.title, "description": v.description, "marker": v.marker,
                          "instruction": v.instruction, "response": list(v.response),
                          "filename": v.output_name}, multiline_strings=False)


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
