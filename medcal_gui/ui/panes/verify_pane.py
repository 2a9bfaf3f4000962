"""Step 4: Verify & chat. A placeholder until the verify pane is written."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from medcal_gui.ui.panes.base import Pane
from medcal_gui.ui.workbench import Workbench


class VerifyPane(Pane):
    key = "verify"
    title = "Verify & chat"

    def __init__(self, bench: Workbench, parent: QWidget | None = None) -> None:
        super().__init__(bench, parent)
        label = QLabel("Verify & chat: coming")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay = QVBoxLayout(self)
        lay.addWidget(label)
