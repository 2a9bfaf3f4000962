"""The ladder's behaviour columns: each rung's multiple-choice accuracy on the user's question file, and the
questions it lost and gained against the base with the exact McNemar p (issue 15 on the ladder)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from medcal_gui.behaviour.mcq import Question, flips_between, load_questions, score_model
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.workflows.ladder.results import LadderResult


def score_ladder_questions(res: LadderResult, questions: Path, *, threads: int = 1, n_ctx: int = 2048,
                           progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
                           loaded: list[Question] | None = None) -> None:
    """Score the base once and every rung on `questions`; fills `res.base["mcq"]` and each rung's mcq_* fields.
    `loaded`: the questions as read before the ladder started (a bad file is refused before any work)."""
    cancel = cancel or CancelToken()
    qs = loaded if loaded is not None else load_questions(Path(questions))
    models = [Path(res.base["file"])] + [r.file for r in res.rungs]
    scored = []
    for i, path in enumerate(models):
        def tag(p: Progress, i: int = i, name: str = path.name) -> None:
            progress(replace(p, stage=f"questions {i + 1}/{len(models)} ({name})"))

        scored.append(score_model(path, qs, n_ctx=n_ctx, threads=threads, progress=tag, cancel=cancel,
                                  label=path.name))
    base = scored[0]
    res.base["mcq"] = {"questions": str(questions), "n": len(qs), "accuracy_pct": 100 * base.accuracy.value}
    for rung, acc in zip(res.rungs, scored[1:], strict=True):
        f = flips_between(base, acc)
        rung.mcq_accuracy_pct = 100 * acc.accuracy.value
        rung.mcq_lost, rung.mcq_gained, rung.mcq_p = len(f.lost), len(f.gained), f.p_value
