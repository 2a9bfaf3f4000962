"""Preset chat prompts (resources/chat_presets.toml): check a quant on its own task in one click."""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from medcal_gui.core.errors import InputError
from medcal_gui.core.resources import resources_dir

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


# -- where a base model's reply ends ----------------------------------------------------------------------
# A base model (the demo) continues the text: after its answer it writes the next turn's role, as text
# ("…mendatanguser\n", "下一階model\n") or as the marker itself. A role word glued to what precedes it (not
# after a space) and ending its line, or a literal marker, is taken as that boundary.
BOUNDARY = re.compile(r"<start_of_turn>|<end_of_turn>|(?<![ \t])(?:user|model)[ \t]*\n")
_PARTIAL = re.compile(r"(?:<[a-z_]*|(?<![ \t])(?:u|us|use|user|m|mo|mod|mode|model)[ \t]*)$")


class TurnBoundary:
    """Feed a reply piece by piece; get back the text to show, held back where a boundary may be starting.
    `hit` turns True at the boundary; nothing after it is returned."""

    def __init__(self) -> None:
        self.shown = ""
        self._held = ""
        self.hit = False

    def feed(self, piece: str) -> str:
        if self.hit:
            return ""
        text = self._held + piece
        m = BOUNDARY.search(self.shown[-1:] + text)  # one shown character decides the glued-word rule
        if m is not None:
            start = max(0, m.start() - len(self.shown[-1:]))
            self.hit = True
            self._held = ""
            out = text[:start]
        else:
            p = _PARTIAL.search(text)
            cut = p.start() if p is not None else len(text)
            out, self._held = text[:cut], text[cut:]
        self.shown += out
        return out

    def flush(self) -> str:
        """The held-back text once the reply ended without a boundary."""
        out, self._held = ("" if self.hit else self._held), ""
        self.shown += out
        return out


def stream_to_boundary(session: Any, user_text: str, params: Any = None, stop: Any = None) -> Iterator[str]:
    """`session.stream(...)` for a base model: stops at the first turn boundary it writes, then the reply
    kept in the history is the text shown and `last_stats.finish_reason` is "turn"."""
    cut = TurnBoundary()
    gen = session.stream(user_text, params, stop)
    try:
        for piece in gen:
            out = cut.feed(piece)
            if out:
                yield out
            if cut.hit:
                break
    finally:
        gen.close()
    tail = cut.flush()
    if tail:
        yield tail
    if cut.hit:
        session.last_stats.finish_reason = "turn"
        session.last_stats.message = ""
        if session.history and session.history[-1].get("role") == "assistant":
            session.history[-1]["content"] = cut.shown.strip()
