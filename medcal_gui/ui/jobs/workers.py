"""The one job protocol, turned into Qt signals.

A job is a core function `fn(progress=..., cancel=...)` (see `medcal_gui.core.jobs`). `JobRunner.start` runs it in
a QThread; the worker's `Progress` records reach the GUI thread as queued signals, throttled so a chatty job
never floods the event loop. One job at a time per runner.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from medcal_gui.core.errors import Cancelled
from medcal_gui.core.jobs import CancelToken, Progress

LOG = logging.getLogger(__name__)

JobFn = Callable[..., Any]  # fn(progress=ProgressCallback, cancel=CancelToken) -> result
MIN_INTERVAL_S = 0.05  # at most ~20 progress signals a second


class _JobThread(QThread):
    """Runs one job; every signal is emitted from the worker thread and delivered queued."""

    reported = Signal(object)  # Progress
    succeeded = Signal(object)  # result
    raised = Signal(object, str)  # exception, traceback text
    stopped = Signal()  # cancelled

    def __init__(self, fn: JobFn, token: CancelToken, interval: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.fn = fn
        self.token = token
        self.interval = interval
        self._last = 0.0
        self._pending: Progress | None = None

    def _report(self, p: Progress) -> None:
        now = time.monotonic()
        final = p.total is not None and p.done >= p.total
        if final or now - self._last >= self.interval:
            self._last = now
            self._pending = None
            self.reported.emit(p)
        else:
            self._pending = p  # the latest one is sent when the job ends

    def _flush(self) -> None:
        if self._pending is not None:
            self.reported.emit(self._pending)
            self._pending = None

    def run(self) -> None:
        try:
            result = self.fn(progress=self._report, cancel=self.token)
        except Cancelled:
            self._flush()
            self.stopped.emit()
            return
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI, never kill it
            self._flush()
            if self.token.cancelled and isinstance(exc, KeyboardInterrupt):
                self.stopped.emit()
            else:
                self.raised.emit(exc, traceback.format_exc())
            return
        self._flush()
        if self.token.cancelled:
            self.stopped.emit()  # the user asked to stop: a late result is dropped, not applied
        else:
            self.succeeded.emit(result)


class JobRunner(QObject):
    """Runs one job at a time off the GUI thread and reports it with signals.

    Signals: `started(title)`, `progress(Progress)`, `finished(result)`, `failed(exc, traceback)`,
    `cancelled()`, `busy_changed(bool)`. `start()` also takes per-job callbacks, called after the signals.
    """

    started = Signal(str)
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object, str)
    cancelled = Signal()
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, interval: float = MIN_INTERVAL_S, *,
                 heavy: bool = False) -> None:
        super().__init__(parent)
        self.interval = interval
        self.heavy = heavy  # loads models or runs all cores: one heavy job at a time (see Workbench)
        # asked before every start: the reason this runner may not start now (another heavy job), or None
        self.guard: Callable[[JobRunner], str | None] | None = None
        self.refusal = ""  # why the last start() was refused
        self.closed = False  # closing down: nothing starts any more
        self.title = ""
        self.last_progress: Progress | None = None
        self._thread: _JobThread | None = None
        self._token: CancelToken | None = None
        self._alive: set[_JobThread] = set()  # threads whose run() may not have returned yet
        self._callbacks: dict[str, Callable[..., Any] | None] = {}

    def is_running(self) -> bool:
        return self._thread is not None

    @property
    def cancel_requested(self) -> bool:
        return self._token is not None and self._token.cancelled

    def start(self, fn: JobFn, title: str = "", *, on_done: Callable[[Any], Any] | None = None,
              on_failed: Callable[[BaseException, str], Any] | None = None,
              on_cancelled: Callable[[], Any] | None = None) -> bool:
        """Start `fn(progress=, cancel=)` in a worker thread; False (nothing started, `refusal` says why)
        while one runs, while another heavy job runs, or once the runner is closed."""
        blocker = self.blocker()
        if blocker:
            self.refusal = blocker
            LOG.info("not starting %r: %s", title, blocker)
            return False
        self.title = title
        self.last_progress = None
        self._token = CancelToken()
        self._callbacks = {"done": on_done, "failed": on_failed, "cancelled": on_cancelled}
        th = _JobThread(fn, self._token, self.interval)
        th.reported.connect(self._on_progress)
        th.succeeded.connect(self._on_done)
        th.raised.connect(self._on_failed)
        th.stopped.connect(self._on_cancelled)
        th.finished.connect(lambda th=th: self._reap(th))
        self._thread = th
        self._alive.add(th)
        self.started.emit(title)
        self.busy_changed.emit(True)
        th.start()
        return True

    def blocker(self) -> str | None:
        """Why a job could not start now, or None."""
        if self.closed:
            return "medcal is closing"
        if self._thread is not None:
            return f"“{self.title}” is still running"
        return self.guard(self) if self.guard is not None else None

    def close_down(self) -> None:
        """Cancel the running job and refuse every later start (the window closes)."""
        self.closed = True
        self.cancel()

    def stopped(self) -> bool:
        """No job running and every worker thread has returned."""
        return self._thread is None and all(th.isFinished() for th in self._alive)

    def cancel(self) -> None:
        """Ask the running job to stop at its next safe point; `cancelled` follows."""
        if self._token is not None and self._thread is not None:
            LOG.info("cancelling %s", self.title or "the job")
            self._token.cancel()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until every worker thread has returned (used on close); True when they all did."""
        deadline = time.monotonic() + timeout_ms / 1000
        for th in list(self._alive):
            left = max(0, int((deadline - time.monotonic()) * 1000))
            if not th.wait(left):
                return False
        return True

    # -- slots (GUI thread) -------------------------------------------------------------------------------
    def _sender_is_current(self) -> bool:
        return self.sender() is self._thread

    def _on_progress(self, p: Progress) -> None:
        if self._sender_is_current():
            self.last_progress = p
            self.progress.emit(p)

    def _end(self) -> dict[str, Callable[..., Any] | None]:
        callbacks = self._callbacks
        self._thread = None
        self._token = None
        self._callbacks = {}
        self.busy_changed.emit(False)
        return callbacks

    def _on_done(self, result: Any) -> None:
        if not self._sender_is_current():
            return
        cb = self._end()
        self.finished.emit(result)
        if cb.get("done"):
            cb["done"](result)

    def _on_failed(self, exc: BaseException, tb: str) -> None:
        if not self._sender_is_current():
            return
        cb = self._end()
        self.failed.emit(exc, tb)
        if cb.get("failed"):
            cb["failed"](exc, tb)

    def _on_cancelled(self) -> None:
        if not self._sender_is_current():
            return
        cb = self._end()
        self.cancelled.emit()
        if cb.get("cancelled"):
            cb["cancelled"]()

    def _reap(self, th: _JobThread) -> None:
        self._alive.discard(th)
        th.deleteLater()
