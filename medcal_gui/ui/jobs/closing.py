"""Closing the window while jobs run: ask, cancel, show "Stopping…", wait without blocking, then close.

The question follows the job: when the job ends while the user reads it, it says so and offers a plain quit.
While stopping, the event loop keeps running (progress, log and the final signals still arrive); the window
closes itself once every worker thread has returned, after every chat model has been freed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QMessageBox

from medcal_gui.ui.workbench import Workbench

LOG = logging.getLogger("medcal_gui.ui")
POLL_MS = 50


class QuitQuestion(QMessageBox):
    """“X is still running. Cancel it and quit?”, re-worded when X ends underneath it."""

    def __init__(self, parent: QMainWindow, bench: Workbench) -> None:
        super().__init__(parent)
        self.bench = bench
        self.title = bench.jobs.title
        self.setIcon(QMessageBox.Icon.Question)
        self.setWindowTitle("Quit medcal?")
        self.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        self.setDefaultButton(QMessageBox.StandardButton.No)
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.job_ended = False
        self._running_text()
        bench.jobs.busy_changed.connect(self.refresh)

    def _running_text(self) -> None:
        self.setText(f"“{self.title}” is still running. Cancel it and quit? Nothing partial is left behind; "
                     "finished outputs stay.")
        self.button(QMessageBox.StandardButton.Yes).setText("Cancel it and quit")
        self.button(QMessageBox.StandardButton.No).setText("Keep working")

    def refresh(self, *_: object) -> None:
        """Re-check the job: say it has ended (or that another one runs now)."""
        if self.bench.jobs.is_running():
            self.title = self.bench.jobs.title
            self.job_ended = False
            self._running_text()
            return
        self.job_ended = True
        self.setText(f"“{self.title}” has finished in the meantime: nothing needs cancelling. Quit medcal?")
        self.button(QMessageBox.StandardButton.Yes).setText("Quit")
        self.button(QMessageBox.StandardButton.No).setText("Stay")

    def done(self, result: int) -> None:
        try:
            self.bench.jobs.busy_changed.disconnect(self.refresh)
        except (RuntimeError, TypeError):
            pass
        super().done(result)


class CloseController(QObject):
    """Decides, on each close request, whether the window may close now; stops the jobs first."""

    def __init__(self, window: QMainWindow, bench: Workbench, *, show_stopping: Callable[[str], None],
                 save: Callable[[], None], before_close: Callable[[], None]) -> None:
        super().__init__(window)
        self.window = window
        self.bench = bench
        self.show_stopping = show_stopping
        self.save = save  # when the user has decided to quit (settings as they were then)
        self.before_close = before_close  # once every job has stopped, just before the window goes
        self.question: QuitQuestion | None = None
        self.stopping = False
        self.closed = False
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    def close_event(self, event: QCloseEvent) -> bool:
        """Called by closeEvent: True when the window closes now (the event is accepted), else ignored."""
        if self.closed:
            return True
        event.ignore()
        if self.stopping:
            return False  # already on the way out
        if self.question is not None:
            self.question.raise_()
            return False
        if self.bench.jobs.is_running():
            self._ask()
            return False
        self._stop()
        if self.bench.stopped():  # nothing was running: close at once
            return self._finish_now(event)
        return False

    def shut_down(self, timeout_ms: int = 60000) -> bool:
        """Close without asking (screenshots, scripted runs): stop every job, run the event loop until they
        have stopped, close. False when a job was still running after `timeout_ms`."""
        if self.closed:
            return True
        self._stop()
        if not self.bench.stopped():
            loop = QEventLoop()
            poll = QTimer()
            poll.setInterval(POLL_MS)
            poll.timeout.connect(lambda: loop.quit() if self.bench.stopped() else None)
            QTimer.singleShot(timeout_ms, loop.quit)
            poll.start()
            loop.exec()
            poll.stop()
            self._timer.stop()
        if not self.bench.stopped():
            LOG.warning("a job did not stop within %d s", timeout_ms // 1000)
            return False
        self._close()
        return True

    def _ask(self) -> None:
        self.question = box = QuitQuestion(self.window, self.bench)
        box.finished.connect(self._answered)
        box.open()

    def _answered(self, result: int) -> None:
        box, self.question = self.question, None
        if box is not None:
            box.deleteLater()
        if result == QMessageBox.StandardButton.Yes:
            self._stop()
            if self.bench.stopped():
                self._close()

    def _stop(self) -> None:
        title = self.bench.jobs.title if self.bench.jobs.is_running() else ""
        self.save()
        self.bench.close_down()
        if not self.bench.stopped():
            self.stopping = True
            LOG.info("stopping %s before quitting…", f"“{title}”" if title else "background work")
            self.show_stopping(title)
            self._timer.start()

    def _poll(self) -> None:
        if self.bench.stopped():
            self._timer.stop()
            self._close()

    def _finish_now(self, event: QCloseEvent) -> bool:
        self.before_close()
        self.closed = True
        event.accept()
        return True

    def _close(self) -> None:
        self.before_close()
        self.closed = True
        self.window.close()
