"""Small modal questions, as module functions so tests can answer them (monkeypatch `ask_yes_no`)."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from medcal_gui.core.jobs import Progress
from medcal_gui.core.progress_text import duration_text, is_long_job


def ask_yes_no(parent: QWidget | None, title: str, text: str) -> bool:
    """A yes/no question; No is the default (Esc or Enter answers No)."""
    answer = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes
                                  | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


ADD, REPLACE = "add", "replace"


def ask_add_or_replace(parent: QWidget | None, loaded: str, new: str) -> str | None:
    """Whether files being opened join the loaded ones or replace them: ADD, REPLACE, or None (cancelled)."""
    box = QMessageBox(QMessageBox.Icon.Question, "Open files", f"Loaded now: {loaded}. Add {new} to the loaded "
                      f"narratives, or replace them with {new}?", QMessageBox.StandardButton.Cancel, parent)
    add = box.addButton("&Add", QMessageBox.ButtonRole.AcceptRole)
    replace = box.addButton("&Replace", QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(add)
    box.exec()
    clicked = box.clickedButton()
    return ADD if clicked is add else REPLACE if clicked is replace else None
def confirm_cancel(parent: QWidget | None, title: str, elapsed_s: float, last: Progress | None) -> bool:
    """True when the job may be cancelled: a short one at once, a long one only when the user says so."""
    if not is_long_job(elapsed_s, last):
        return True
    return ask_yes_no(parent, "Cancel the job?",
                      f"“{title}” has run for {duration_text(elapsed_s)}. Cancelling stops it and loses the "
                      "unfinished stage's work (finished stages' outputs are kept). Cancel it?")
