"""Many short jobs through the real window under garbage-collector pressure: nothing may crash.

Each job allocates cyclic garbage in the worker (QObjects among it) and forces `gc.collect()` there, while
the GUI thread makes cyclic garbage of its own (QObjects with connections that capture themselves) between
jobs. The collector policy of the app is on (the `window` fixture), as in `medcal gui`.

Connections are made on the GUI thread only, as the app does (its jobs hold no Qt objects): PySide calls
`QObject::connect` holding the GIL, and Qt may call back into Python (for the GIL) while it holds the same
signal-slot lock on the GUI thread, so a connect in a worker can deadlock against a disconnect on the GUI
thread. Seen once here: the worker in `QObjectPrivate::connectImpl` waiting for Qt's lock with the GIL, the GUI
thread in `QObject::disconnect` (pytest-qt's wait) waiting for the GIL.
"""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtCore import QObject, Signal

from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback
from medcal_gui.ui.jobs.gc_policy import GuiThreadCollector

JOBS = 40  # about 1 s on an idle 2-core machine


class _Node(QObject):
    poked = Signal(object)


class _Probe:
    pass


def _cyclic_garbage(n: int, connect: bool) -> None:
    for i in range(n):
        a: dict[str, object] = {"i": i}
        b = [a]
        a["b"] = b  # a plain cycle
        o = _Node()
        if connect:  # GUI thread only (see above)
            o.poked.connect(lambda _x, o=o: o.objectName())  # a QObject in a cycle through its own connection
        o.me = o  # type: ignore[attr-defined]


def _job(i: int):  # type: ignore[no-untyped-def]
    def job(progress: ProgressCallback, cancel: CancelToken) -> tuple[int, int, str]:
        _cyclic_garbage(30, connect=False)
        progress(Progress("stress", 1, 2))
        collected = gc.collect()  # forced in the worker
        _cyclic_garbage(30, connect=False)  # left for the next collection, wherever it runs
        progress(Progress("stress", 2, 2, message=f"{collected} collected"))
        return i, sum(range(i)), threading.current_thread().name

    return job


def test_many_short_jobs_under_gc_pressure(qtbot, window, shown_errors, gui_gc: GuiThreadCollector) -> None:  # type: ignore[no-untyped-def]
    results: list[tuple[int, int, str]] = []
    failures: list[str] = []
    jobs = window.bench.jobs

    def start(i: int) -> None:
        _cyclic_garbage(10, connect=True)  # GUI-thread garbage between jobs
        if not window.bench.start_job(_job(i), f"stress {i}", on_done=lambda r: done(r),
                                      on_failed=lambda e, tb: failures.append(tb)):
            failures.append(f"job {i} did not start: {window.bench.jobs.refusal}")

    def done(r: tuple[int, int, str]) -> None:
        results.append(r)
        if len(results) < JOBS and not failures and not window.closer.stopping:
            start(len(results))

    start(0)
    qtbot.waitUntil(lambda: len(results) == JOBS or bool(failures), timeout=300000)
    assert failures == []
    assert shown_errors == []
    assert [r[0] for r in results] == list(range(JOBS))
    assert all(r[1] == sum(range(r[0])) for r in results)
    assert all(r[2] != threading.current_thread().name for r in results)  # really off the GUI thread
    assert not gc.isenabled()  # automatic collection stays off while the window lives
    # ... and the GUI thread's timer collects instead, once the counts pass the thresholds
    before = gui_gc.collections
    probe = _Probe()
    probe.me = probe  # type: ignore[attr-defined]
    dead = weakref.ref(probe)
    del probe
    garbage = [[] for _ in range(3 * gc.get_threshold()[0])]
    for g in garbage:
        g.append(g)
    del garbage, g
    qtbot.waitUntil(lambda: dead() is None, timeout=10000)
    assert gui_gc.collections > before
    qtbot.waitUntil(lambda: not jobs.is_running() and jobs.wait(0), timeout=5000)


def test_many_checklist_runs_in_the_format_pane(qtbot, window, shown_errors) -> None:  # type: ignore[no-untyped-def]
    # the job that crashed in issue 10 (format_pane.check_dataset -> validate_text -> phi.scan), re-run
    # back to back with forced collections in between
    pane = window.format
    reports = []
    pane.checklist_ready.connect(reports.append)
    for n in range(1, 16):
        _cyclic_garbage(20, connect=True)
        pane.refresh_checklist()
        qtbot.waitUntil(lambda n=n: len(reports) >= n and pane.ready(), timeout=30000)
        gc.collect()
    assert len(reports) == 15
    assert len({(len(r.errors), len(r.warnings)) for r in reports}) == 1  # the same report every time
    assert shown_errors == []
