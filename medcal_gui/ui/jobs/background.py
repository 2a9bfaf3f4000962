"""Background look-ups for a pane (model facts, token counts, size estimates) where the newest request wins.

A `LatestJob` owns a private runner (not the status-bar job). A request made while one runs cancels it and
starts once it has stopped; a superseded job's result is dropped. Expected failures (a `MedcalError`) come
back as a `Failed` value for the pane to show in place; anything else goes to the error dialog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject

from medcal_gui.core.errors import Cancelled, MedcalError
from medcal_gui.core.jobs import CancelToken, ProgressCallback
from medcal_gui.ui.workbench import Workbench


@dataclass(frozen=True)
class Failed:
    message: str


def catching(fn: Callable[[ProgressCallback, CancelToken], Any]) -> Callable[..., Any]:
    """Wrap a job so a MedcalError becomes a `Failed` result (a cancel still cancels)."""

    def job(progress: ProgressCallback, cancel: CancelToken) -> Any:
        try:
            return fn(progress, cancel)
        except Cancelled:
            raise
        except MedcalError as exc:
            return Failed(exc.message)

    return job


class LatestJob(QObject):
    def __init__(self, bench: Workbench, title: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = bench.create_runner()
        self.title = title
        self._pending: tuple[Any, Any] | None = None

    def request(self, fn: Callable[[ProgressCallback, CancelToken], Any],
                on_done: Callable[[Any], Any]) -> None:
        if self.runner.is_running():
            self._pending = (fn, on_done)
            self.runner.cancel()
            return
        self._start(fn, on_done)

    def _start(self, fn: Any, on_done: Any) -> None:
        self._pending = None
        self.runner.start(catching(fn), self.title, on_done=lambda r: self._ended(on_done, r),
                          on_failed=lambda *_: self._ended(None, None), on_cancelled=lambda: self._ended(None, None))

    def _ended(self, on_done: Any, result: Any) -> None:
        if self._pending is not None:
            self._start(*self._pending)  # a newer request: this result is stale
            return
        if on_done is not None:
            on_done(result)

    def busy(self) -> bool:
        return self.runner.is_running() or self._pending is not None

    def cancel(self) -> None:
        self._pending = None
        self.runner.cancel()
