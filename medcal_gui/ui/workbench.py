"""What every pane shares: the loaded dataset, the selected record, settings, the job runner, step marks.

Panes receive a `Workbench` and never reach into the main window; tests build a Workbench and a pane alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from medcal_gui.core.errors import MedcalError
from medcal_gui.dataset.reading.loaded import Issue, LoadedInputs  # noqa: F401 - Issue: re-exported for the panes
from medcal_gui.dataset.reading.loader import Dataset, LoadOptions
from medcal_gui.dataset.records import Record
from medcal_gui.ui import error_dialog
from medcal_gui.ui.jobs.workers import JobFn, JobRunner
from medcal_gui.ui.settings import Settings

LOG = logging.getLogger("medcal_gui.ui")


class Workbench(QObject):
    dataset_changed = Signal(object)  # LoadedInputs
    record_selected = Signal(str)  # record id
    step_done_changed = Signal(str, bool)  # pane key, done
    exported = Signal(object)  # dataset.export.ExportResult
    message = Signal(str)  # a short status-bar message
    step_requested = Signal(str)  # a pane key: the window shows that step (e.g. "Chat with this" -> verify)

    def __init__(self, settings: Settings | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or Settings()
        self.jobs = JobRunner(self, heavy=True)  # the user-visible job: status bar, Job > Cancel
        self.jobs.guard = self._heavy_guard
        self.jobs.failed.connect(self._job_failed)
        self.loaded: LoadedInputs | None = None
        self.selected_record_id: str | None = None
        self.model_path: Path | None = None  # from `medcal gui --model PATH`, for panes 3-4
        self.last_quant: Path | None = None  # the quant step 3 wrote last, for step 4
        self.last_export: Any = None
        self.error_parent: QWidget | None = None
        self._done: dict[str, bool] = {}
        self._runners: list[JobRunner] = [self.jobs]

    # -- data ---------------------------------------------------------------------------------------------
    @property
    def dataset(self) -> Dataset | None:
        return self.loaded.dataset if self.loaded else None

    @property
    def records(self) -> list[Record]:
        return self.loaded.dataset.records if self.loaded else []

    @property
    def inputs(self) -> list[Path]:
        return self.loaded.inputs if self.loaded else []

    @property
    def options(self) -> LoadOptions:
        return self.loaded.dataset.options if self.loaded else LoadOptions()

    def set_loaded(self, loaded: LoadedInputs) -> None:
        self.loaded = loaded
        ids = {r.id for r in loaded.dataset.records}
        if self.selected_record_id not in ids:
            self.selected_record_id = loaded.dataset.records[0].id if loaded.dataset.records else None
        self.dataset_changed.emit(loaded)
        if self.selected_record_id:
            self.record_selected.emit(self.selected_record_id)

    def record(self, record_id: str | None) -> Record | None:
        return next((r for r in self.records if r.id == record_id), None) if record_id else None

    def select_record(self, record_id: str) -> None:
        if record_id != self.selected_record_id:
            self.selected_record_id = record_id
            self.record_selected.emit(record_id)

    # -- steps --------------------------------------------------------------------------------------------
    def set_step_done(self, key: str, done: bool) -> None:
        if self._done.get(key) != done:
            self._done[key] = done
            self.step_done_changed.emit(key, done)

    def is_step_done(self, key: str) -> bool:
        return self._done.get(key, False)

    # -- jobs and errors ----------------------------------------------------------------------------------
    def start_job(self, fn: JobFn, title: str, *, on_done: Callable[[Any], Any] | None = None,
                  on_failed: Callable[[BaseException, str], Any] | None = None,
                  on_cancelled: Callable[[], Any] | None = None) -> bool:
        """Run `fn(progress=, cancel=)` as the current job (status bar, Cancel). Failures are shown for you;
        `on_failed` is for tidying up. Returns False, and says why, when another job is running."""
        if self.jobs.start(fn, title, on_done=on_done, on_failed=on_failed, on_cancelled=on_cancelled):
            LOG.info("%s…", title)
            return True
        self._refused(self.jobs)
        return False

    def create_runner(self, *, heavy: bool = False) -> JobRunner:
        """A private runner for a pane's background work (not in the status bar); failures are shown.
        A heavy one (it loads models or runs every core: the chat) never runs beside another heavy job."""
        runner = JobRunner(self, heavy=heavy)
        if heavy:
            runner.guard = self._heavy_guard
        runner.failed.connect(self._job_failed)
        self._runners.append(runner)
        return runner

    def may_start(self, runner: JobRunner) -> bool:
        """True when `runner` can start a job now; otherwise says why (a plain message) and returns False."""
        if runner.blocker() is None:
            return True
        runner.refusal = runner.blocker() or ""
        self._refused(runner)
        return False

    def _heavy_guard(self, runner: JobRunner) -> str | None:
        other = next((r for r in self._runners if r is not runner and r.heavy and r.is_running()), None)
        return f"“{other.title}” is still running" if other is not None else None

    def _refused(self, runner: JobRunner) -> None:
        if runner.closed:
            return  # closing: nothing to say
        self.show_error(MedcalError(f"{runner.refusal}. Wait for it to finish, or stop it (Esc cancels the "
                                    "current job) and try again."))

    def cancel_all(self) -> None:
        for r in self._runners:
            r.cancel()

    def close_down(self) -> None:
        """Cancel every job and start no more (the window closes)."""
        for r in self._runners:
            r.close_down()

    def stopped(self) -> bool:
        """Every runner idle and every worker thread returned."""
        return all(r.stopped() for r in self._runners)

    def wait_all(self, timeout_ms: int = 30000) -> bool:
        return all(r.wait(timeout_ms) for r in self._runners)

    def busy(self) -> bool:
        return any(r.is_running() for r in self._runners)

    def show_error(self, exc: BaseException, tb: str | None = None) -> None:
        error_dialog.show_error(exc, tb, parent=self.error_parent)

    def _job_failed(self, exc: BaseException, tb: str) -> None:
        self.show_error(exc, tb)
