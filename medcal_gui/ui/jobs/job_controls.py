"""A control group that starts one workbench job from a button and shows how it ended in a status line:
the button is disabled while the job runs, and failure or cancel say so in plain words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QLabel, QPushButton, QWidget

FAILED = "Failed: see the message and the log."


class JobControls(QWidget):
    """Subclasses set `bench`, `button` and `status`, and call `run_job`."""

    bench: Any
    button: QPushButton
    status: QLabel
    _running = False

    def run_job(self, job: Callable[..., Any], title: str, *, on_done: Callable[[Any], None], running: str,
                cancelled: str) -> bool:
        """Start `job(progress=, cancel=)` as the workbench's job; False (and the reason shown) when another
        job runs."""
        self._running = True
        if not self.bench.start_job(job, title, on_done=on_done, on_failed=lambda *_: self._ended(FAILED),
                                    on_cancelled=lambda: self._ended(cancelled)):
            self._running = False
            return False
        self.button.setEnabled(False)
        self.status.setText(running)
        return True

    def _ended(self, text: str) -> None:
        self._running = False
        self.button.setEnabled(True)
        self.status.setText(text)
