"""Failures are shown (through error_dialog.show_error) and logged; the app survives them."""

from __future__ import annotations

import logging
import sys
import threading

from medcal_gui.core.errors import DataError, InputError
from medcal_gui.core.jobs import CancelToken, ProgressCallback
from medcal_gui.ui import error_dialog
from medcal_gui.ui.widgets.log_dock import LogDock


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
    assert box.detailedText() == "byte 0x93 at offset 120"
    assert not box.isModal()
    box.close()


def test_a_users_mistake_never_shows_a_traceback(qtbot, real_show_error) -> None:  # type: ignore[no-untyped-def]
    try:
        raise InputError("The folder /x holds files that medcal did not write (notes.txt).")
    except InputError as exc:
        box = real_show_error(exc)
    assert box is not None
    qtbot.addWidget(box)
    assert box.text().startswith("The folder /x holds")
    assert box.detailedText() == "" and "Traceback" not in box.detailedText()  # it was the traceback
    box.close()


def test_log_dock_shows_core_logs_from_any_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    dock = LogDock()
    qtbot.addWidget(dock)
    try:
        logging.getLogger("medcal_gui.dataset.reading.loader").info("loaded 38 records")
        t = threading.Thread(target=lambda: logging.getLogger("medcal_gui.llama").warning("llama says hi"))
        t.start()
        t.join()
        qtbot.waitUntil(lambda: "llama says hi" in dock.text(), timeout=5000)
        assert "loaded 38 records" in dock.text()
        assert dock.view.isReadOnly()
    finally:
        dock.detach()


def test_log_dock_hides_llama_details_until_asked_and_filters(qtbot, window, tiny_model) -> None:  # type: ignore[no-untyped-def]
    from medcal_gui.calibrate.tokens import _Vocab

    dock = window.log_dock
    t = threading.Thread(target=lambda: _Vocab(tiny_model).close())  # a real llama.cpp model load
    t.start()
    t.join(60)
    logging.getLogger("medcal_gui.llama").warning("llama.cpp warns about something")
    qtbot.waitUntil(lambda: any("vocab only" in ln.text for ln in dock.lines), timeout=5000)  # queued
    llama_info = [ln for ln in dock.lines if ln.logger == "medcal_gui.llama" and ln.levelno == logging.INFO]
    assert any("vocab only - skipping tensors" in ln.text for ln in llama_info)
    shown = dock.text()
    assert not any(ln.text in shown for ln in llama_info)  # the default view: no llama.cpp INFO line
    assert "llama.cpp warns about something" in shown  # its warnings are shown
    assert "Loading samples: done" in shown  # medcal's own lines are

    dock.details.setChecked(True)
    assert "vocab only - skipping tensors" in dock.text()
    n_all = len(dock.text().splitlines())
    dock.filter.setText("EOG")
    lines = dock.text().splitlines()
    assert 0 < len(lines) < n_all and all("eog" in ln.lower() for ln in lines)
    dock.details.setChecked(False)
    assert dock.text() == ""  # EOG lines are llama.cpp details only
    dock.filter.clear()
    assert "vocab only" not in dock.text() and "Loading samples: done" in dock.text()


def test_log_dock_follows_the_newest_line_unless_scrolled_up(qtbot) -> None:  # type: ignore[no-untyped-def]
    dock = LogDock()
    qtbot.addWidget(dock)
    dock.resize(400, 150)
    dock.show()
    try:
        bar = dock.view.verticalScrollBar()
        for i in range(300):
            dock.append(f"line {i}")
        assert bar.maximum() > 0 and bar.value() == bar.maximum()
        bar.setValue(10)  # the user scrolls up to read
        for i in range(50):
            dock.append(f"more {i}")
        assert bar.value() == 10
        bar.setValue(bar.maximum())  # back at the end: following again
        dock.append("newest")
        assert bar.value() == bar.maximum()
    finally:
        dock.detach()
