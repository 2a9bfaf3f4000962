"""What validating a dataset found: the report (counts, errors, warnings, per-record figures) and the rows of
its checklist. Here, on their own, so the validator (`validate`), the checks that fill the report
(`narrative_checks`) and the checklist built from it (`checks`) all import them without importing each other."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from medcal_gui.dataset.validation import phi


@dataclass(frozen=True)
class Check:
    status: str  # pass | fail | warn | info
    title: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"status": self.status, "title": self.title, "detail": self.detail}


@dataclass
class RecordStat:
    id: str
    line: int
    population: str
    chars: int
    tokens_est: int


@dataclass
class ValidationReport:
    source: str | None = None
    kind: str = "chat"  # "chat" (formatted) or "narratives" (original format)
    layout: str | None = None  # seed | gemma | mixed
    records: int = 0
    expected_records: int | None = None
    start_turns: int = 0
    end_turns: int = 0
    user_turns: int = 0
    model_turns: int = 0
    marker: str | None = None
    file_size: int | None = None
    utf8_valid: bool = True
    latin1_ok: bool = True
    compared: int = 0  # narratives compared with their source (0: no source given)
    encoding_label: str | None = None  # how a narrative file was decoded
    populations: dict[str, int] = field(default_factory=dict)
    tokens_total_est: int = 0
    per_record: list[RecordStat] = field(default_factory=list)
    phi: list[phi.PhiHit] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    problems: dict[str, int] = field(default_factory=dict)  # count per kind (checks.PROBLEM_KINDS)
    first_changed: str | None = None  # the first "differs from its source" message

    def count(self, kind: str, n: int = 1) -> None:
        if n:
            self.problems[kind] = self.problems.get(kind, 0) + n

    @property
    def ok(self) -> bool:
        return not self.errors

    def token_stats(self) -> dict[str, float]:
        toks = [r.tokens_est for r in self.per_record]
        if not toks:
            return {"min": 0, "mean": 0, "max": 0, "total": 0}
        return {"min": min(toks), "mean": round(statistics.fmean(toks), 1), "max": max(toks),
                "total": self.tokens_total_est}

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "kind": self.kind, "layout": self.layout, "records": self.records,
            "expected_records": self.expected_records, "populations": dict(self.populations),
            "turns": {"start_of_turn": self.start_turns, "end_of_turn": self.end_turns,
                      "user": self.user_turns, "model": self.model_turns},
            "marker": self.marker, "file_size": self.file_size, "utf8_valid": self.utf8_valid,
            "latin1_ok": self.latin1_ok, "narratives_compared": self.compared, "tokens_est": self.token_stats(),
            "errors": list(self.errors), "warnings": list(self.warnings),
            "phi": [h.to_json() for h in self.phi], "checks": [c.to_json() for c in self.checks],
            "problems": dict(self.problems),
            "per_record": [vars(r) for r in self.per_record],
        }
