"""The pane protocol: one step of the workflow, shown in the main window's stack.

A pane subclasses `Pane`, sets `key` and `title`, builds itself from the `Workbench` it is given, and calls
`self.set_done(True)` when its step is complete. `activated()` runs each time it is shown.
"""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from medcal_gui.ui.workbench import Workbench


class Pane(QWidget):
    key = ""
    title = ""

    def __init__(self, bench: Workbench, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bench = bench
        self.setObjectName(f"pane_{self.key}")

    def set_done(self, done: bool) -> None:
        self.bench.set_step_done(self.key, done)

    def is_done(self) -> bool:
        return self.bench.is_step_done(self.key)

    def activated(self) -> None:
        """Called when the pane becomes the current one."""

    def ready(self) -> bool:
        """True once the pane shows what it should (the screenshot command waits for it)."""
        return True
