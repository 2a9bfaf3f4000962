"""The Verify pane's Answers and Questions tabs, run as jobs on the tiny real model against itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcal_gui.core.jobs import CancelToken, no_progress
from medcal_gui.dataset.reading.loader import LoadOptions
from medcal_gui.ui.panes.narratives_pane import load_inputs
from medcal_gui.ui.panes.verify_pane import VerifyPane
from medcal_gui.ui.workbench import Workbench


@pytest.fixture
def pane(qtbot, bench: Workbench, sample_file: Path, tiny_model: Path) -> VerifyPane:  # type: ignore[no-untyped-def]
    bench.set_loaded(load_inputs([sample_file], LoadOptions(), no_progress, CancelToken()))
    p = VerifyPane(bench)
    qtbot.addWidget(p)
    p.set_models(tiny_model, tiny_model)
    return p


def test_tabs_are_there(pane: VerifyPane) -> None:
    tabs = [pane.behaviour.tabText(i) for i in range(pane.behaviour.count())]
    assert tabs == ["Figures", "Answers", "Questions"]


def test_answers_of_a_model_against_itself_are_identical(qtbot, pane: VerifyPane) -> None:  # type: ignore[no-untyped-def]
    view = pane.answers
    view.tokens.setValue(8)
    view.limit.setValue(2)
    assert view.run()
    qtbot.waitUntil(lambda: view.result is not None, timeout=120000)
    assert view.list.count() == 2 and view.list.item(0).text().startswith("= ")
    assert "identical 100.0 % (2/2" in view.summary.text()
    assert view.facts.text().startswith("identical; facts kept")
    a = view.base_view.toPlainText().split("\n", 1)[1]
    b = view.quant_view.toPlainText().split("\n", 1)[1]
    assert a == b
    assert view.result is not None and all(p.base.tokens == p.other.tokens and p.base.tokens
                                           for p in view.result.models[0].prompts)
    assert "#fbd3d3" not in view.base_view.toHtml() and "#cdeccd" not in view.quant_view.toHtml()


def test_differing_spans_are_coloured(pane: VerifyPane) -> None:
    from medcal_gui.behaviour.agree import AgreeResult, Answer, ModelAgreement, Prompt, compare_answers

    p = Prompt("r1", (("user", "x"),))
    pa = compare_answers(p, Answer([1, 2], "sinus rhythm at 80 bpm", "stop"),
                         Answer([1, 3], "sinus tachycardia at 80 bpm", "stop"))
    res = AgreeResult(Path("base.gguf"), 8, 1, None, [ModelAgreement(Path("q.gguf"), "q.gguf", [pa], 2, 1.0)])
    pane.answers.set_result(res)
    assert pane.answers.list.item(0).text() == "≠ r1"
    assert "#fbd3d3" in pane.answers.base_view.toHtml() and "#cdeccd" in pane.answers.quant_view.toHtml()
    assert "they part at token 1" in pane.answers.facts.text()
    assert "missing: term:sinus rhythm" in pane.answers.facts.text()


def test_questions_against_itself_flip_nothing(qtbot, pane: VerifyPane, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "q.jsonl"
    rows = [{"id": f"q{i}", "question": f"Question {i}?", "options": ["sinus rhythm", "atrial fibrillation"],
             "answer": i % 2} for i in range(3)]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    view = pane.questions
    view.file_edit.setText(str(f))
    assert view.run()
    qtbot.waitUntil(lambda: view.result is not None, timeout=120000)
    assert "lost 0, gained 0" in view.summary.text() and "p = 1 " in view.summary.text()
    assert view.table.rowCount() == 0
    f.write_text(json.dumps({"id": "x", "question": "Q?", "options": ["a", "b"], "answer": "C"}) + "\n",
                 encoding="utf-8")
    assert not view.run()
    assert view.summary.text() == (f"{f}, line 1: the answer 'C' is not among the options (A, B); write the "
                                   "right option's letter (A, B) or its index (0 to 1).")
