"""Failures are shown (through error_dialog.show_error) and logged; the app survives them."""

from __future__ import annotations

import logging
import sys
import threading

from medcal_gui.errors import DataError
from medcal_gui.jobs import CancelToken, ProgressCallback
from medcal_gui.ui import error_dialog
from medcal_gui.ui.log_dock import LogDock


def test_worker_exception_is_shown_and_app_survives(qtbot, bench, shown_errors) -> None:  # type: ignore[no-untyped-def]
    def job(progress: ProgressCallback, cancel: CancelToken) -> None:
        raise ZeroDivisionError("boom")

    with qtbot.waitSignal(bench.jobs.failed, timeout=5000):
        assert bench.start_job(job, "exploding")
    assert len(shown_errors) == 1
    exc, tb = shown_errors[0]
    assert isinstance(exc, ZeroDivisionError) and "boom" in (tb or "")
    # The runner is free again and runs the next job.
    with qtbot.waitSignal(bench.jobs.finished, timeout=5000) as sig:
        assert bench.start_job(lambda progress, cancel: 42, "next")
    assert sig.args == [42]


def test_starting_a_second_job_says_why_it_cannot(qtbot, bench, shown_errors) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    bench.start_job(lambda progress, cancel: gate.wait(5), "slow job")
    assert not bench.start_job(lambda progress, cancel: None, "other")
    assert "slow job" in shown_errors[-1][0].message
    with qtbot.waitSignal(bench.jobs.finished, timeout=5000):
        gate.set()


def test_excepthooks_route_uncaught_exceptions_to_the_dialog(qtbot, shown_errors) -> None:  # type: ignore[no-untyped-def]
    restore = error_dialog.install_excepthooks()
    try:
        try:
            raise ValueError("in a slot")
        except ValueError:
            sys.excepthook(*sys.exc_info())  # what Qt does for an exception in a slot
        t = threading.Thread(target=lambda: 1 / 0)
        t.start()
        t.join()
        qtbot.waitUntil(lambda: len(shown_errors) == 2, timeout=5000)
    finally:
        restore()
    assert isinstance(shown_errors[0][0], ValueError)
    assert isinstance(shown_errors[1][0], ZeroDivisionError)


def test_error_dialog_shows_plain_message_with_details(qtbot, real_show_error) -> None:  # type: ignore[no-untyped-def]
    exc = DataError("bytes that are not valid utf-8", "notes.txt", 3, details="byte 0x93 at offset 120")
    box = real_show_error(exc)
    assert box is not None
    qtbot.addWidget(box)
    assert box.text() == "notes.txt, line 3: bytes that are not valid utf-8"
    assert "byte 0x93" in box.detailedText()
    assert not box.isModal()
    box.close()


def test_log_dock_shows_core_logs_from_any_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    dock = LogDock()
    qtbot.addWidget(dock)
    try:
        logging.getLogger("medcal_gui.dataset.loader").info("loaded 38 records")
        t = threading.Thread(target=lambda: logging.getLogger("medcal_gui.llama").warning("llama says hi"))
        t.start()
        t.join()
        qtbot.waitUntil(lambda: "llama says hi" in dock.text(), timeout=5000)
        assert "loaded 38 records" in dock.text()
        assert dock.view.isReadOnly()
    finally:
        dock.detach()
