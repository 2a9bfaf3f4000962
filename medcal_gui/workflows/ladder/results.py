"""What a ladder run gives: each rung's figures, the constraints it was asked to meet, and the whole result.
Here, on their own, so the runner (`ladder`), its behaviour columns (`ladder_questions`) and its report
(`ladder_report`) import them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Constraints:
    max_kld: float | None = None
    max_size: int | None = None  # bytes
    min_tg: float | None = None  # tokens/s

    def to_json(self) -> dict[str, Any]:
        return {"max_kld": self.max_kld, "max_size": self.max_size, "min_tg": self.min_tg}


@dataclass
class Rung:
    type: str
    file: Path
    bytes: int
    bpw: float
    sha256: str
    kld_mean: float
    kld_median: float
    kld_p99: float
    same_top_pct: float
    rms_dp_pct: float
    ppl_ratio: float
    ppl_model: float
    pp_tokens_per_s: float
    pp_sd: float
    tg_tokens_per_s: float
    tg_sd: float
    speedup_tg: float = 0.0
    speedup_pp: float = 0.0
    pareto: bool = False
    reused: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    # with a question file (--questions): accuracy, and the questions lost/gained against the base
    mcq_accuracy_pct: float | None = None
    mcq_lost: int | None = None
    mcq_gained: int | None = None
    mcq_p: float | None = None

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["file"] = str(self.file)
        return d


@dataclass
class LadderResult:
    base: dict[str, Any]
    heldout: Path
    imatrix: dict[str, Any] | None
    rungs: list[Rung]  # largest first
    constraints: Constraints
    threads: int
    reps: int
    n_ctx: int
    chunks: int
    tokens_scored: int
    seconds: float
    recommendation: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "heldout": str(self.heldout), "imatrix": self.imatrix,
                "rungs": [r.to_json() for r in self.rungs], "constraints": self.constraints.to_json(),
                "recommendation": self.recommendation, "threads": self.threads, "reps": self.reps,
                "n_ctx": self.n_ctx, "chunks": self.chunks, "tokens_scored": self.tokens_scored,
                "seconds": self.seconds, "outputs": self.outputs, "warnings": self.warnings}
