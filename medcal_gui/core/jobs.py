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

from medcal_gui.core.errors import Cancelled


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
