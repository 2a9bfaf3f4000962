"""Closing the window during a job, the quit question that follows the job, one heavy job at a time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from medcal_gui.core.jobs import CancelToken, ProgressCallback


def _slow_to_stop(started: threading.Event, stopped: threading.Event,  # type: ignore[no-untyped-def]
                  linger: float | threading.Event = 0.6):
    """A job that takes a while to return after the cancel (C code): `linger` seconds, or until the event is
    set (at most 10 s)."""
    def job(progress: ProgressCallback, cancel: CancelToken) -> None:
        started.set()
        try:
            while not cancel.cancelled:
                cancel.wait(0.01)
            if isinstance(linger, threading.Event):
                linger.wait(10)
            else:
                time.sleep(linger)
        finally:
            stopped.set()
        cancel.check()

    return job


def test_close_during_a_job_asks_cancels_shows_stopping_and_closes_cleanly(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    started, stopped = threading.Event(), threading.Event()
    # The job returns once the GUI thread's timer has ticked 10 times after the Yes: it stops only if the event
    # loop runs while the window waits for it (a wait that blocked the GUI thread would hold it, then fail
    # below). Counted against a fixed 0.6 s of linger instead, the test asked the machine to run the GUI thread
    # 10 times in 0.6 s: a timing bet a loaded host can lose.
    ticked = threading.Event()
    window.show()
    assert window.bench.start_job(_slow_to_stop(started, stopped, ticked), "Quantizing")
    assert started.wait(5)
    assert not window.close()  # not yet: the question is open
    box = window.closer.question
    assert box is not None and box.isVisible() and "“Quantizing” is still running" in box.text()
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) >= 10 and window.closer.stopping:
            ticked.set()

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(20)
    box.button(QMessageBox.StandardButton.Yes).click()
    assert window.closer.stopping and window.isVisible()
    assert window.job_label.text() == "Stopping “Quantizing”…"
    assert not window.centralWidget().isEnabled()
    assert not window.close()  # a second request while stopping changes nothing
    qtbot.waitUntil(lambda: stopped.is_set(), timeout=10000)
    # still says so to the end: with the job's name until its cancelled signal arrives, then without
    assert window.job_label.text() in ("Stopping “Quantizing”…", "Stopping…") or not window.isVisible()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10000)
    timer.stop()
    assert stopped.is_set() and window.bench.stopped()  # no worker thread left
    assert ticked.is_set() and len(ticks) >= 10  # the event loop kept running while the job stopped
    assert not window.bench.start_job(lambda progress, cancel: None, "too late")  # closing: nothing starts


def test_close_refused_keeps_the_job(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    window.show()
    window.bench.start_job(lambda progress, cancel: gate.wait(5), "Waiting")
    assert not window.close()
    window.closer.question.button(QMessageBox.StandardButton.No).click()
    assert window.isVisible() and window.bench.jobs.is_running() and window.closer.question is None
    with qtbot.waitSignal(window.bench.jobs.finished, timeout=5000):
        gate.set()


def test_the_quit_question_follows_a_job_that_ends_underneath(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    window.show()
    window.bench.start_job(lambda progress, cancel: gate.wait(5), "Evaluating")
    assert not window.close()
    box = window.closer.question
    assert "still running" in box.text()
    with qtbot.waitSignal(window.bench.jobs.finished, timeout=5000):
        gate.set()
    assert box.job_ended and "has finished" in box.text() and "still running" not in box.text()
    assert box.button(QMessageBox.StandardButton.Yes).text() == "Quit"
    box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)


def test_closing_frees_the_chat_models(qtbot, window, tiny_model: Path) -> None:  # type: ignore[no-untyped-def]
    pane = window.pane("verify")
    pane.set_models(tiny_model, None)
    pane.params.set("max_tokens", 4)
    with qtbot.waitSignal(pane.reply_done, timeout=30000):
        assert pane.send("Hello")
    session = pane.sessions[str(tiny_model)]
    llm = session.llm
    assert llm is not None and llm._model.model is not None
    window.close()  # no job to ask about (background look-ups may still be stopping)
    qtbot.waitUntil(lambda: not window.isVisible() and window.closer.closed, timeout=10000)
    assert window.closer.question is None
    assert pane.sessions == {} and session.llm is None
    assert llm._model.model is None  # llama.cpp's model was freed (Llama.close())


def test_chat_and_evaluation_never_run_at_once(qtbot, window, tiny_model: Path, shown_errors) -> None:  # type: ignore[no-untyped-def]
    pane = window.pane("verify")
    pane.set_models(tiny_model, None)
    pane.params.set("max_tokens", 4)
    gate = threading.Event()
    assert window.bench.start_job(lambda progress, cancel: gate.wait(10), "Evaluating")
    assert not pane.send("Hello")  # refused in plain words, nothing sent
    assert "“Evaluating” is still running" in shown_errors[-1][0].message
    assert pane.quant_view.view.toPlainText().strip() == ""
    with qtbot.waitSignal(window.bench.jobs.finished, timeout=5000):
        gate.set()

    pane.params.set("max_tokens", 400)
    assert pane.send("Tell me a long story")
    assert not window.bench.start_job(lambda progress, cancel: None, "Evaluating")
    assert "“Chat” is still running" in shown_errors[-1][0].message
    with qtbot.waitSignal(pane.reply_done, timeout=30000):
        pane.stop()
    assert len(shown_errors) == 2


def test_shut_down_waits_for_the_jobs_without_asking(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    started, stopped = threading.Event(), threading.Event()
    window.show()
    assert window.bench.start_job(_slow_to_stop(started, stopped, 0.3), "Quantizing")
    assert started.wait(5)
    assert window.closer.shut_down(10000)  # what `medcal gui --screenshot` does at the end
    assert window.closer.question is None and not window.isVisible()
    assert stopped.is_set() and window.bench.stopped()


def test_a_model_changed_during_a_reply_is_freed_when_the_reply_ends(qtbot, window, tiny_model: Path,  # type: ignore[no-untyped-def]
                                                                      tmp_path: Path) -> None:
    other = tmp_path / "other.gguf"
    other.write_bytes(tiny_model.read_bytes())
    pane = window.pane("verify")
    pane.set_models(tiny_model, None)
    pane.params.set("max_tokens", 400)
    assert pane.send("Tell me a long story")
    # Wait for the worker to load the model without running the event loop: the reply's end cannot be handled
    # meanwhile, so it is still running for the pane whatever the worker has done. (Waited for with the event loop
    # running, a reply that ends within a few tokens, as 3 of 300 random seeds do on the tiny model, could be over
    # before the model changed: the old model was then freed at once, and the test failed.)
    deadline = time.monotonic() + 20
    while str(tiny_model) not in pane.sessions:
        assert time.monotonic() < deadline, "the chat model did not load within 20 s"
        time.sleep(0.01)
    llm = pane.sessions[str(tiny_model)].llm
    pane.set_models(other, None)  # while the reply runs: the model cannot be freed yet
    assert str(tiny_model) in pane.sessions
    with qtbot.waitSignal(pane.reply_done, timeout=30000):
        pane.stop()
    assert str(tiny_model) not in pane.sessions and llm._model.model is None
