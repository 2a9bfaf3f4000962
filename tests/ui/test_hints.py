"""The window phrases a core hint with its own controls, never with a CLI flag."""

from __future__ import annotations

import pytest

from medcal_gui.core.errors import OptionHint as Hint
from medcal_gui.ui.hints import gui_hint


@pytest.mark.parametrize(("hint", "text"), [
    (Hint("split", "paragraphs"), " Choose paragraphs in “Split .txt by” above the file list."),
    (Hint("encoding", "cp1252"), " Choose cp1252 in the file's “Decode as” cell."),
    (Hint("text_field", None, ("age", "body")),
     " Type the name of the field that holds the narrative (age, body) in “Text field (.jsonl, .csv)” above "
     "the file list."),
    (Hint("text_field", "body"), " Type body in “Text field (.jsonl, .csv)” above the file list."),
    (None, ""),
])
def test_gui_hint_names_the_window_control(hint, text) -> None:  # type: ignore[no-untyped-def]
    assert gui_hint(hint) == text
    assert "--" not in gui_hint(hint)


def test_the_named_controls_exist_with_those_labels(qtbot, bench) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QLabel

    from medcal_gui.ui.panes.narratives_pane import NarrativesPane

    pane = NarrativesPane(bench)
    qtbot.addWidget(pane)
    labels = {lab.text() for lab in pane.findChildren(QLabel)}
    assert {"Split .txt by", "Text field (.jsonl, .csv)"} <= labels
    assert "Decode as" in pane.files.COLUMNS


def test_error_dialog_text_carries_the_hint_in_the_window_words() -> None:
    from medcal_gui.core.errors import InputError
    from medcal_gui.ui import error_dialog

    exc = InputError("/data/notes.txt: this looks like UTF-16-LE text without a byte-order mark.")
    exc.hint = Hint("encoding", "utf-16-le")  # type: ignore[attr-defined]
    message, _details = error_dialog.describe(exc)
    assert message == ("/data/notes.txt: this looks like UTF-16-LE text without a byte-order mark. "
                       "Choose utf-16-le in the file's “Decode as” cell.")
    assert error_dialog.describe(InputError("plain"))[0] == "plain"
