"""Clinical facts in an answer: numbers with units, lexicon terms and negated findings.

The lexicon is data (`resources/clinical_lexicon.toml`). Facts are normalised strings, so two answers can be
compared as sets: "120 bpm" (a number's value as written, without trailing zeros, and its unit as the lexicon
spells it), "term:atrial fibrillation", "neg:st depression" (a term after a negation within a few words).
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass

from medcal_gui.core.errors import InputError
from medcal_gui.core.resources import resources_dir

LEXICON_FILE = "clinical_lexicon.toml"


@dataclass(frozen=True)
class Lexicon:
    units: tuple[str, ...]
    negations: tuple[str, ...]
    negation_window: int
    terms: tuple[str, ...]  # lower case, longest first

    @functools.cached_property
    def number_re(self) -> re.Pattern[str]:
        units = "|".join(re.escape(u) for u in sorted(self.units, key=len, reverse=True))
        return re.compile(rf"(?<![\w.])(\d+(?:[.,]\d+)?(?:/\d+)?)\s?({units})(?![^\W\d_])", re.IGNORECASE)

    @functools.cached_property
    def term_re(self) -> re.Pattern[str]:
        return re.compile(r"(?<!\w)(" + "|".join(re.escape(t) for t in self.terms) + r")(?!\w)", re.IGNORECASE)

    @functools.cached_property
    def negation_re(self) -> re.Pattern[str]:
        negs = "|".join(re.escape(n) for n in sorted(self.negations, key=len, reverse=True))
        terms = "|".join(re.escape(t) for t in self.terms)
        gap = rf"(?:[\w'-]+[\s,]+){{0,{self.negation_window}}}?"
        return re.compile(rf"(?<!\w)(?:{negs})[\s,]+{gap}({terms})(?!\w)", re.IGNORECASE)

    def unit_spelling(self, unit: str) -> str:
        for u in self.units:
            if u.lower() == unit.lower():
                return u
        return unit


def parse_lexicon(text: str, where: str) -> Lexicon:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not a readable lexicon ({exc}).") from None
    terms = {str(t).strip().lower() for group in dict(data.get("terms", {})).values() for t in group}
    terms.discard("")
    if not terms:
        raise InputError(f"{where}: the lexicon lists no terms.")
    return Lexicon(tuple(str(u) for u in data.get("units", [])), tuple(str(n) for n in data.get("negations", [])),
                   int(data.get("negation_window", 3)), tuple(sorted(terms, key=len, reverse=True)))


@functools.cache
def load_lexicon() -> Lexicon:
    path = resources_dir() / LEXICON_FILE
    return parse_lexicon(path.read_text(encoding="utf-8"), str(path))


def _number(value: str) -> str:
    v = value.replace(",", ".")
    if "." in v:
        v = v.rstrip("0").rstrip(".")
    return v


def extract_facts(text: str, lexicon: Lexicon | None = None) -> list[str]:
    """The facts in `text`, each once, in order of first appearance."""
    lx = lexicon or load_lexicon()
    found: dict[str, int] = {}
    for m in lx.number_re.finditer(text):
        found.setdefault(f"{_number(m.group(1))} {lx.unit_spelling(m.group(2))}", m.start())
    for m in lx.term_re.finditer(text):
        found.setdefault(f"term:{m.group(1).lower()}", m.start())
    for m in lx.negation_re.finditer(text):
        found.setdefault(f"neg:{m.group(1).lower()}", m.start())
    return sorted(found, key=lambda k: found[k])


@dataclass(frozen=True)
class FactCheck:
    base: list[str]
    kept: list[str]
    missing: list[str]

    @property
    def kept_fraction(self) -> float | None:
        return len(self.kept) / len(self.base) if self.base else None


def compare_facts(base_text: str, other_text: str, lexicon: Lexicon | None = None) -> FactCheck:
    """Facts of the base's answer, split into those the other answer also states and those it lacks."""
    base = extract_facts(base_text, lexicon)
    other = set(extract_facts(other_text, lexicon))
    return FactCheck(base, [f for f in base if f in other], [f for f in base if f not in other])


def count_kept(checks: Iterable[FactCheck]) -> tuple[int, int]:
    """(kept, total) over several answers."""
    kept = total = 0
    for c in checks:
        kept += len(c.kept)
        total += len(c.base)
    return kept, total
