"""The one job protocol shared by the CLI, the GUI and the tests.

A long job is a plain function that takes `progress: ProgressCallback` and `cancel: CancelToken`. It reports
`Progress` records and calls `cancel.check()` at safe points; `check` raises `Cancelled`. The CLI renders the
records as a terminal bar, the GUI's worker turns them into Qt signals, tests collect them in a list.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from medcal_gui.core.errors import Cancelled

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    stage: str  # "imatrix", "quantize", "format", ...
    done: float  # units done so far
    total: float | None  # None when unknown
    message: str = ""
    unit: str = ""  # "chunks", "tensors", "records", "bytes"
    rate: float | None = None  # tokens/s, records/s ... (see `rate_unit`)
    rate_unit: str = ""
    eta_s: float | None = None
    extra: dict[str, float] = field(default_factory=dict)  # e.g. {"ppl": 12.3}

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """A progress callback that ignores everything."""


class CancelToken:
    """Thread-safe cancel flag. `check()` raises `Cancelled` once `cancel()` was called."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.cancelled_at: float | None = None

    def cancel(self) -> None:
        if not self._event.is_set():
            self.cancelled_at = time.monotonic()
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; returns True early when cancelled."""
        return self._event.wait(timeout)


class RateMeter:
    """Turns (done, total) samples into a rate and an ETA."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def rate(self, units_done: float) -> float | None:
        dt = self.elapsed()
        return units_done / dt if dt > 0 and units_done > 0 else None

    def eta(self, done: float, total: float | None) -> float | None:
        if not total or done <= 0:
            return None
        dt = self.elapsed()
        return dt * (total - done) / done


class BackgroundCall(Generic[T]):
    """`fn()` run on a daemon thread of its own, a small future: `wait()` joins it while checking the caller's
    cancel (and calling `tick` each poll, to show progress), `outcome()` returns what `fn` returned or raises
    what it raised. `fn` stops early through a token of its own, which the owner sets before `join()`."""

    def __init__(self, fn: Callable[[], T], name: str) -> None:
        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # re-raised by outcome()
            self._error = exc

    def wait(self, cancel: CancelToken, poll: float, tick: Callable[[], None] | None = None) -> None:
        """Until the thread ends: `cancel.check()`, `tick()`, then a join of `poll` seconds."""
        while self._thread.is_alive():
            cancel.check()
            if tick is not None:
                tick()
            self._thread.join(poll)

    def outcome(self) -> T:
        if self._error is not None:
            raise self._error
        return cast(T, self._value)  # set by _run, unless fn raised

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)
