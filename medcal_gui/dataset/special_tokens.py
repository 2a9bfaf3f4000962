"""The model's special-token texts (resources/special_tokens.toml): none may appear inside a narrative."""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache

from medcal_gui.core.resources import resources_dir


@lru_cache(maxsize=1)
def special_tokens() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(literal token texts, regular expressions for token families)."""
    data = tomllib.loads((resources_dir() / "special_tokens.toml").read_text(encoding="utf-8"))
    literals = tuple(data["turn_markers"]) + tuple(data["control"]) + tuple(data["user_defined"])
    return literals, tuple(data.get("patterns", ()))


@lru_cache(maxsize=1)
def _regex() -> re.Pattern[str]:
    literals, patterns = special_tokens()
    return re.compile("|".join([re.escape(t) for t in literals] + list(patterns)))


def find_special_token(text: str) -> tuple[str, int] | None:
    """The first special-token text in `text` and its offset, or None."""
    if "<" not in text:
        return None
    m = _regex().search(text)
    return (m.group(0), m.start()) if m else None
