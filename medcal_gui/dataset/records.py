"""The `Record`: one narrative with where it came from and what we know about it."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from medcal_gui.core.markers import TURN_END, TURN_START
from medcal_gui.dataset.special_tokens import find_special_token

START_TURN, END_TURN = TURN_START, TURN_END  # the names this package uses
TURN_MARKERS = (START_TURN, END_TURN)

POPULATIONS = ("adolescent", "adult", "neonate", "other")
_POPULATION_RE = re.compile(r"^\W*(adolescent|adult|neonat(?:e|al)|newborn)\b", re.IGNORECASE)

# Characters per token for clinical English with Gemma 3's tokenizer, measured on the sample narratives
# (6,483 tokens for 24,298 characters); an estimate only: `medcal tokens` counts exactly.
CHARS_PER_TOKEN = 3.75

# The largest record medcal reads: 1,000,000 characters (about 267,000 tokens, over 500 imatrix chunks of
# 512). A clinical narrative is a few thousand characters; a bigger "record" is a file that was not split,
# and reading it whole would take gigabytes. Lines are read at most MAX_LINE_CHARS at a time (a JSONL line
# may spell its text with escapes), so memory stays bounded whatever the input.
MAX_RECORD_CHARS = 1_000_000
MAX_LINE_CHARS = 4 * MAX_RECORD_CHARS


def population_of(narrative: str) -> str:
    """Population read from the narrative's opening words: adolescent, adult, neonate or other."""
    m = _POPULATION_RE.match(narrative[:64])
    if not m:
        return "other"
    word = m.group(1).lower()
    if word.startswith("neonat") or word == "newborn":
        return "neonate"
    return word


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


@dataclass(frozen=True)
class Record:
    id: str  # stable: "<file stem>-<n>" with n counting records of that file from 1
    source: str  # path of the file it came from
    line: int  # line of the narrative's first line in the source (1-based)
    text: str  # narrative, surrounding whitespace stripped, inner line breaks kept
    topic: str | None = None  # the header's topic word ("cardiology"), None without headers

    @property
    def population(self) -> str:
        return population_of(self.text)

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def tokens_est(self) -> int:
        return estimate_tokens(self.text)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def marker_position(self) -> tuple[str, int] | None:
        """The first special-token text (a turn marker, <bos>, <eos>, <pad>, ...: resources/special_tokens.toml)
        inside the narrative and the source line it is on, if any."""
        hit = find_special_token(self.text)
        if hit is None:
            return None
        token, idx = hit
        return token, self.line + self.text.count("\n", 0, idx)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(population=self.population, chars=self.chars, tokens_est=self.tokens_est)
        return d
