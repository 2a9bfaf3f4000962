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

from medcal_gui.resources import resources_dir


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
def _patterns() -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    data = tomllib.loads((resources_dir() / "phi_patterns.toml").read_text(encoding="utf-8"))
    return tuple((p["kind"], p["label"], re.compile(p["regex"])) for p in data["pattern"])


def scan(text: str, record_id: str, first_line: int) -> list[PhiHit]:
    hits = []
    for kind, label, rx in _patterns():
        for m in rx.finditer(text):
            line = first_line + text.count("\n", 0, m.start())
            hits.append(PhiHit(record_id, kind, label, m.group(0), line))
    return hits
