"""The one job protocol, turned into Qt signals.

A job is a core function `fn(progress=..., cancel=...)` (see `medcal_gui.core.jobs`). `JobRunner.start` runs it in
a worker thread; the worker's `Progress` records (throttled, so a chatty job never floods the window) and its
outcome go into a queue that a timer on the GUI thread drains, and only there do they become Qt signals.
One job at a time per runner.

The worker never calls into Qt. PySide calls Qt holding the GIL, and Qt may need the GIL while it holds one of
its signal-slot locks (connectNotify/disconnectNotify run under it, and PySide looks up Python overrides for
them): a worker emitting a signal, which takes the receiver's signal-slot lock with the GIL held, could deadlock
against the GUI thread connecting or disconnecting at that moment (seen with a connect in a worker: the window
stopped, both threads waiting on each other's lock).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QTimer, Signal

from medcal_gui.core.errors import Cancelled
from medcal_gui.core.jobs import CancelToken, Progress

LOG = logging.getLogger(__name__)

JobFn = Callable[..., Any]  # fn(progress=ProgressCallback, cancel=CancelToken) -> result
MIN_INTERVAL_S = 0.05  # at most ~20 progress reports a second
PUMP_MS = 5  # how often the GUI thread collects what the workers reported


def _owner(cb: Callable[..., Any]) -> QObject | None:
    """The Qt object a callback belongs to: a bound method's `self`, or the `self` that a lambda written in a
    method captures."""
    owner = getattr(cb, "__self__", None)
    if owner is None:
        code, cells = getattr(cb, "__code__", None), getattr(cb, "__closure__", None) or ()
        names = code.co_freevars if code is not None else ()
        owner = next((c.cell_contents for n, c in zip(names, cells, strict=False) if n == "self"), None)
    return owner if isinstance(owner, QObject) else None


def _call(cb: Callable[..., Any] | None, *args: Any) -> None:
    """Call a job's callback, unless the widget it belongs to was destroyed meanwhile (a pane closed while
    its job ran): calling into a deleted widget raises, and there is nothing left to update."""
    if cb is None:
        return
    owner = _owner(cb)
    if owner is not None and not shiboken6.isValid(owner):
        LOG.debug("dropping a callback of a destroyed %s", type(owner).__name__)
        return
    cb(*args)


class _JobThread(threading.Thread):
    """Runs one job; what it reports goes into `outbox` as (kind, args): "progress", then one of "done",
    "failed", "cancelled"."""

    def __init__(self, fn: JobFn, token: CancelToken, interval: float) -> None:
        super().__init__(name="medcal-job", daemon=True)
        self.fn = fn
        self.token = token
        self.interval = interval
        self.outbox: queue.SimpleQueue[tuple[str, tuple[Any, ...]]] = queue.SimpleQueue()
        self._last = 0.0
        self._pending: Progress | None = None

    def _report(self, p: Progress) -> None:
        now = time.monotonic()
        final = p.total is not None and p.done >= p.total
        if final or now - self._last >= self.interval:
            self._last = now
            self._pending = None
            self.outbox.put(("progress", (p,)))
        else:
            self._pending = p  # the latest one is sent when the job ends

    def _flush(self) -> None:
        if self._pending is not None:
            self.outbox.put(("progress", (self._pending,)))
            self._pending = None

    def run(self) -> None:
        try:
            result = self.fn(progress=self._report, cancel=self.token)
        except Cancelled:
            self._flush()
            self.outbox.put(("cancelled", ()))
            return
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI, never kill it
            self._flush()
            if self.token.cancelled and isinstance(exc, KeyboardInterrupt):
                self.outbox.put(("cancelled", ()))
            else:
                self.outbox.put(("failed", (exc, traceback.format_exc())))
            return
        self._flush()
        if self.token.cancelled:
            self.outbox.put(("cancelled", ()))  # the user asked to stop: a late result is dropped, not applied
        else:
            self.outbox.put(("done", (result,)))


class JobRunner(QObject):
    """Runs one job at a time off the GUI thread and reports it with signals.

    Signals: `started(title)`, `progress(Progress)`, `finished(result)`, `failed(exc, traceback)`,
    `cancelled()`, `busy_changed(bool)`. `start()` also takes per-job callbacks, called after the signals while
    the widget they belong to lives.
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
        self._alive: set[_JobThread] = set()  # threads not yet finished, or with reports not yet collected
        self._callbacks: dict[str, Callable[..., Any] | None] = {}
        self._pump = QTimer(self)
        self._pump.setInterval(PUMP_MS)
        self._pump.timeout.connect(self.collect)

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
        self._thread = th
        self._alive.add(th)
        self.started.emit(title)
        self.busy_changed.emit(True)
        th.start()
        self._pump.start()
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
        return self._thread is None and all(not th.is_alive() for th in self._alive)

    def cancel(self) -> None:
        """Ask the running job to stop at its next safe point; `cancelled` follows."""
        if self._token is not None and self._thread is not None:
            LOG.info("cancelling %s", self.title or "the job")
            self._token.cancel()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until every worker thread has returned (used on close); True when they all did."""
        deadline = time.monotonic() + timeout_ms / 1000
        for th in list(self._alive):
            th.join(max(0.0, deadline - time.monotonic()))
            if th.is_alive():
                return False
        return True

    # -- the GUI thread's side ----------------------------------------------------------------------------
    def collect(self) -> None:
        """Turn what the workers reported into signals and callbacks (the timer calls it; on the GUI thread).
        Reports of a thread that is no longer the current job (cancelled, then replaced) are dropped."""
        for th in list(self._alive):
            finished = not th.is_alive()  # read first: everything it put before ending is then in the queue
            while True:
                try:
                    kind, args = th.outbox.get_nowait()
                except queue.Empty:
                    break
                if th is self._thread:
                    getattr(self, "_on_" + kind)(*args)
            if finished:
                self._alive.discard(th)
        if not self._alive:
            self._pump.stop()

    def _on_progress(self, p: Progress) -> None:
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
        cb = self._end()
        self.finished.emit(result)
        _call(cb.get("done"), result)

    def _on_failed(self, exc: BaseException, tb: str) -> None:
        cb = self._end()
        self.failed.emit(exc, tb)
        _call(cb.get("failed"), exc, tb)

    def _on_cancelled(self) -> None:
        cb = self._end()
        self.cancelled.emit()
        _call(cb.get("cancelled"))
