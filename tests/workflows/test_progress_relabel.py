"""A step that passes on another step's progress under its own label keeps every figure of it: the
questions' progress lost its rate and ETA, the ladder pane's its extra figures (rebuilt field by field)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from medcal_gui.core.jobs import Progress

FULL = Progress("eval", 3, 10, "chunk 3", "chunks", 12.5, "tokens", 4.0, {"ppl": 9.0})


def _figures(p: Progress) -> tuple[object, ...]:
    return p.done, p.total, p.unit, p.rate, p.rate_unit, p.eta_s


def test_the_ladder_tags_a_rung_and_keeps_every_figure() -> None:
    from medcal_gui.workflows.ladder.ladder import _tag

    seen: list[Progress] = []
    _tag(seen.append, 2, "Q4_K_M")(FULL)
    assert _figures(seen[0]) == _figures(FULL) and seen[0].stage == "eval"
    assert seen[0].message == "Q4_K_M: chunk 3" and seen[0].extra == {"ppl": 9.0, "rung": 2.0}


def test_compare_calibrations_prefixes_and_keeps_every_figure() -> None:
    from medcal_gui.workflows.compare_calibrations import _prefixed

    seen: list[Progress] = []
    _prefixed(seen.append, "[2/3]")(FULL)
    assert _figures(seen[0]) == _figures(FULL) and seen[0].extra == FULL.extra
    assert seen[0].message == "[2/3] chunk 3"


def test_the_ladder_questions_keep_rate_and_eta(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from medcal_gui.workflows.ladder import ladder_questions

    class Stop(Exception):
        pass

    def fake_score(path: Path, qs: object, **kw: object) -> None:
        kw["progress"](FULL)  # type: ignore[operator]
        raise Stop

    monkeypatch.setattr(ladder_questions, "score_model", fake_score)
    seen: list[Progress] = []
    res = SimpleNamespace(base={"file": str(tmp_path / "base.gguf")}, rungs=[])
    with pytest.raises(Stop):
        ladder_questions.score_ladder_questions(res, tmp_path / "q.jsonl", progress=seen.append,  # type: ignore[arg-type]
                                                loaded=[])
    assert _figures(seen[0]) == _figures(FULL) and seen[0].extra == FULL.extra
    assert seen[0].stage == "questions 1/1 (base.gguf)"


def test_no_module_rebuilds_a_progress_field_by_field() -> None:
    pkg = Path(__file__).resolve().parents[2] / "medcal_gui"
    rebuilt = re.compile(r"Progress\([^()]*\bp\.done\b")
    offenders = [str(f.relative_to(pkg)) for f in sorted(pkg.rglob("*.py"))
                 if rebuilt.search(f.read_text(encoding="utf-8"))]
    assert offenders == []  # dataclasses.replace(p, message=...) keeps what a new field would otherwise drop
