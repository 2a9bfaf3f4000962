"""Step 3: Quantize. A placeholder until the quantize pane is written."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from medcal_gui.ui.panes.base import Pane
from medcal_gui.ui.workbench import Workbench


class QuantizePane(Pane):
    key = "quantize"
    title = "Quantize"

    def __init__(self, bench: Workbench, parent: QWidget | None = None) -> None:
        super().__init__(bench, parent)
        label = QLabel("Quantize: coming")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay = QVBoxLayout(self)
        lay.addWidget(label)
