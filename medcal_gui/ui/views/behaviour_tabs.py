"""The Verify pane's right side as tabs: the evaluation figures, then the Answers and Questions checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QTabWidget, QWidget

from medcal_gui.behaviour.agree import Prompt
from medcal_gui.dataset.holdout import split_records
from medcal_gui.ui.views.answers_view import AnswersView
from medcal_gui.ui.views.questions_view import QuestionsView


def behaviour_tabs(pane: Any, figures: QWidget) -> tuple[QTabWidget, AnswersView, QuestionsView]:
    """Tabs for `pane` (the Verify pane: its base_path(), quant_path() and bench): Figures, Answers, Questions.
    The Answers check runs on the held-out records through the selected prompt variant."""

    def models() -> tuple[Path | None, Path | None]:
        return pane.base_path(), pane.quant_path()

    def prompts() -> list[Prompt]:
        from medcal_gui.dataset.formatting import user_content
        from medcal_gui.dataset.variants import get_variant, load_variants

        variants = load_variants()
        name = pane.bench.settings.variant
        v = get_variant(name) if name in variants else next(iter(variants.values()))
        held = split_records(pane.bench.records)[1]
        return [Prompt(r.id, (("user", user_content(r.text, v)),)) for r in held]

    tabs = QTabWidget()
    tabs.addTab(figures, "Figures")
    answers = AnswersView(pane.bench, models, prompts)
    questions = QuestionsView(pane.bench, models)
    tabs.addTab(answers, "Answers")
    tabs.addTab(questions, "Questions")
    return tabs, answers, questions
