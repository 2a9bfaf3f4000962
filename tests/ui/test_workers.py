"""JobRunner: the job protocol as Qt signals."""

from __future__ import annotations

import threading

from medcal_gui.core.errors import InputError
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback
from medcal_gui.ui.jobs.workers import JobRunner


def test_progress_reaches_100_percent_and_result_arrives(qtbot) -> None:  # type: ignore[no-untyped-def]
    runner = JobRunner()
    seen: list[Progress] = []
    runner.progress.connect(seen.append)

    def job(progress: ProgressCallback, cancel: CancelToken) -> str:
        for i in range(1, 2001):  # far more reports than the throttle lets through
            progress(Progress("test", i, 2000, unit="steps"))
        return "result"

    with qtbot.waitSignal(runner.finished, timeout=5000) as sig:
        assert runner.start(job, "counting")
    assert sig.args == ["result"]
    assert seen[-1].fraction == 1.0
    assert len(seen) < 200  # throttled
    assert not runner.is_running()
    assert runner.wait(1000)


def test_only_one_job_at_a_time(qtbot) -> None:  # type: ignore[no-untyped-def]
    runner = JobRunner()
    gate = threading.Event()
    assert runner.start(lambda progress, cancel: gate.wait(5), "first")
    assert not runner.start(lambda progress, cancel: None, "second")
    with qtbot.waitSignal(runner.finished, timeout=5000):
        gate.set()
    assert runner.wait(1000)


def test_cancelled_job_emits_cancelled(qtbot) -> None:  # type: ignore[no-untyped-def]
    runner = JobRunner()
    started = threading.Event()
    done: list[str] = []

    def job(progress: ProgressCallback, cancel: CancelToken) -> None:
        started.set()
        while True:
            cancel.check()
            cancel.wait(0.01)

    runner.finished.connect(lambda r: done.append("finished"))
    runner.start(job, "forever", on_cancelled=lambda: done.append("callback"))
    assert started.wait(5)
    with qtbot.waitSignal(runner.cancelled, timeout=5000):
        runner.cancel()
    assert done == ["callback"]
    assert runner.wait(1000)


def test_exception_in_worker_is_reported_with_traceback(qtbot) -> None:  # type: ignore[no-untyped-def]
    runner = JobRunner()

    def job(progress: ProgressCallback, cancel: CancelToken) -> None:
        raise InputError("the file is gone")

    with qtbot.waitSignal(runner.failed, timeout=5000) as sig:
        runner.start(job, "failing")
    exc, tb = sig.args
    assert isinstance(exc, InputError) and exc.message == "the file is gone"
    assert "InputError" in tb and "job" in tb
    assert not runner.is_running()


def test_workers_never_call_into_qt_and_reports_arrive_in_order_on_the_gui_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A job reports from its thread into a queue; only the GUI thread turns that into signals. Checked while
    the GUI thread connects and disconnects signals all along (the pattern that can deadlock when a worker
    calls into Qt holding the GIL)."""
    from PySide6.QtCore import QObject, QTimer, Signal

    class Node(QObject):
        poked = Signal()

    gui = threading.current_thread()
    seen: list[tuple[int, bool]] = []
    runner = JobRunner(interval=0.0)
    runner.progress.connect(lambda p: seen.append((p.done, threading.current_thread() is gui)))
    node = Node()
    churn = QTimer()
    churn.setInterval(1)
    flips = [0]

    def flip() -> None:  # connect and disconnect on the GUI thread while the worker reports
        slot = node.objectName
        node.poked.connect(slot)
        node.poked.disconnect(slot)
        flips[0] += 1

    churn.timeout.connect(flip)
    workers: list[threading.Thread] = []

    def job(progress, cancel):  # type: ignore[no-untyped-def]
        workers.append(threading.current_thread())
        for i in range(1, 2001):
            progress(Progress("t", i, 2000))
        return "ok"

    churn.start()
    with qtbot.waitSignal(runner.finished, timeout=60000) as sig:
        assert runner.start(job, "reports")
    churn.stop()
    assert sig.args == ["ok"]
    assert not isinstance(workers[0], QObject)  # a plain thread: nothing of Qt's runs on it
    assert [d for d, _ in seen] == list(range(1, 2001))  # interval 0: every report, in order
    assert all(on_gui for _, on_gui in seen)
    assert flips[0] > 0
    qtbot.waitUntil(runner.stopped, timeout=5000)


def test_callbacks_of_a_destroyed_widget_are_dropped(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A pane closed while its job ran: the job's result still arrives as a signal, but neither its bound
    method nor a lambda of it is called into the deleted widget (that raised "already deleted")."""
    import shiboken6
    from PySide6.QtWidgets import QLabel

    class Pane(QLabel):
        def __init__(self, runner: JobRunner) -> None:
            super().__init__()
            self.runner = runner

        def run(self, gate: threading.Event, fail: bool) -> None:
            def job(progress: ProgressCallback, cancel: CancelToken) -> str:
                gate.wait(5)
                if fail:
                    raise InputError("bad input")
                return "r"

            self.runner.start(job, "job", on_done=self.done, on_failed=lambda *_: self.setText("failed"))

        def done(self, r: str) -> None:
            self.setText(r)

    for outcome in ("done", "failed"):
        runner = JobRunner()
        pane = Pane(runner)
        gate = threading.Event()
        pane.run(gate, fail=outcome == "failed")
        shiboken6.delete(pane)
        gate.set()
        with qtbot.waitSignal(runner.finished if outcome == "done" else runner.failed, timeout=5000) as sig:
            pass
        assert sig.args[0] == "r" if outcome == "done" else isinstance(sig.args[0], InputError)
        assert not runner.is_running() and runner.wait(1000)


def test_callbacks_of_a_live_widget_are_called(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QLabel

    class Pane(QLabel):
        def go(self, runner: JobRunner) -> None:
            runner.start(lambda progress, cancel: "r", "job", on_done=lambda r: self.setText("lambda " + r))

    runner, pane = JobRunner(), Pane()
    qtbot.addWidget(pane)
    with qtbot.waitSignal(runner.finished, timeout=5000):
        pane.go(runner)
    assert pane.text() == "lambda r"
    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.start(lambda progress, cancel: "s", "job", on_done=pane.setText)
    assert pane.text() == "s"
