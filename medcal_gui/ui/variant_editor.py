"""A small dialog to create a prompt variant, or copy one, saved as a user variant file."""

from __future__ import annotations

import re

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from medcal_gui.core.errors import MedcalError
from medcal_gui.dataset.variants import Variant, save_user_variant
from medcal_gui.ui import error_dialog


def _copy_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "_", f"{name}_copy".lower())[:64]


class VariantEditor(QDialog):
    """Edit the fields of a variant; `accept()` saves it (errors keep the dialog open)."""

    def __init__(self, parent: QWidget | None = None, base: Variant | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Copy variant" if base else "New variant")
        self.saved: Variant | None = None
        self.saved_path: str | None = None
        self.name = QLineEdit(_copy_name(base.name) if base else "")
        self.name.setPlaceholderText("lower-case letters, digits, _ or -")
        self.title = QLineEdit(f"{base.title} (copy)" if base else "")
        self.description = QLineEdit(base.description if base else "")
        self.marker = QLineEdit(base.marker if base else "[CALIBRATION]")
        self.instruction = QLineEdit(base.instruction if base else "")
        self.response = QPlainTextEdit(base.response_text if base else "")
        self.response.setTabChangesFocus(True)
        self.response.setMinimumHeight(90)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Title", self.title)
        form.addRow("Description", self.description)
        form.addRow("System marker line", self.marker)
        form.addRow("Instruction line", self.instruction)
        form.addRow("Model response", self.response)
        hint = QLabel("The user turn is the marker line, the instruction line and the narrative; the model turn "
                      "is the response. Turn markers (<start_of_turn>, <end_of_turn>) are not allowed.")
        hint.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(hint)
        lay.addWidget(buttons)
        self.resize(640, 360)

    def variant(self) -> Variant:
        name = self.name.text().strip()
        return Variant(name=name, title=self.title.text().strip() or name, marker=self.marker.text().strip(),
                       instruction=self.instruction.text().strip(),
                       response=tuple(self.response.toPlainText().split("\n")),
                       description=self.description.text().strip())

    def accept(self) -> None:
        try:
            v = self.variant()
            path = save_user_variant(v)
        except MedcalError as exc:
            error_dialog.show_error(exc, parent=self)
            return
        self.saved, self.saved_path = v, str(path)
        super().accept()
