"""A lightweight PHI scan that warns (never blocks): dates, phones, e-mails, record numbers, titled names.

The patterns are data (resources/phi_patterns.toml). It is a safety net for obvious identifiers, not a
de-identification tool.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from medcal_gui.core.resources import resources_dir


@dataclass(frozen=True)
class PhiHit:
    record_id: str
    kind: str  # date | phone | email | identifier | name
    label: str
    text: str  # what matched (shown to the user, who owns the data)
    line: int  # source line of the match

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=1)
def _patterns() -> tuple[_Pattern, ...]:
    data = tomllib.loads((resources_dir() / "phi_patterns.toml").read_text(encoding="utf-8"))
    return tuple(_Pattern(p["kind"], p["label"], re.compile(p["regex"]),
                          re.compile(p["prefilter"]) if p.get("prefilter") else None,
                          tuple(p.get("contains", ()))) for p in data["pattern"])


@dataclass(frozen=True)
class _Pattern:
    kind: str
    label: str
    regex: re.Pattern[str]
    prefilter: re.Pattern[str] | None
    contains: tuple[str, ...]

    def worth_trying(self, text: str, lower: str) -> bool:
        if self.prefilter is None and not self.contains:
            return True
        return bool((self.prefilter is not None and self.prefilter.search(text))
                    or any(c in lower for c in self.contains))


def scan(text: str, record_id: str, first_line: int) -> list[PhiHit]:
    hits = []
    lower = text.lower()
    for p in _patterns():
        if not p.worth_trying(text, lower):
            continue
        for m in p.regex.finditer(text):
            line = first_line + text.count("\n", 0, m.start())
            hits.append(PhiHit(record_id, p.kind, p.label, m.group(0), line))
    return hits
