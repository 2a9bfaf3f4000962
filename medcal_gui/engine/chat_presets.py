"""Preset chat prompts (resources/chat_presets.toml): check a quant on its own task in one click."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import asdict, dataclass
from typing import Any

from medcal_gui.errors import InputError
from medcal_gui.resources import resources_dir

PRESETS_FILE = "chat_presets.toml"


@dataclass(frozen=True)
class ChatPreset:
    name: str
    title: str
    prompt: str  # the user message, ready to send
    variant: str = ""  # the prompt variant it was built from ("" for a free prompt)
    system: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _build(item: dict[str, Any], where: str) -> ChatPreset:
    from medcal_gui.dataset.formatting import user_content
    from medcal_gui.dataset.variants import get_variant

    try:
        name = str(item["name"])
    except KeyError:
        raise InputError(f"{where}: a preset lacks its name.") from None
    title = str(item.get("title") or name)
    variant = str(item.get("variant", ""))
    if variant:
        narrative = str(item.get("narrative", "")).strip()
        if not narrative:
            raise InputError(f"{where}: preset {name!r} names a variant but has no narrative.")
        prompt = user_content(narrative, get_variant(variant))
    else:
        prompt = str(item.get("prompt", "")).strip()
        if not prompt:
            raise InputError(f"{where}: preset {name!r} has neither a variant and narrative nor a prompt.")
    return ChatPreset(name=name, title=title, prompt=prompt, variant=variant, system=str(item.get("system", "")))


@functools.cache
def load_presets() -> tuple[ChatPreset, ...]:
    """The shipped presets, in file order."""
    path = resources_dir() / PRESETS_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not a readable presets file ({exc}).") from None
    return tuple(_build(item, str(path)) for item in data.get("preset", []))


def get_preset(name: str) -> ChatPreset:
    for p in load_presets():
        if p.name == name:
            return p
    raise InputError(f"Unknown chat preset {name!r}: choose one of {', '.join(p.name for p in load_presets())}.")


def presets_for_variant(variant: str) -> list[ChatPreset]:
    """Presets built from `variant` (the task a quant was calibrated for), then the free ones."""
    ps = load_presets()
    return [p for p in ps if p.variant == variant] + [p for p in ps if not p.variant]
