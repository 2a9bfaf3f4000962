"""A stage row: its ETA counts down between reports (never a stale figure), and it shows the status bar's
figures for the same record."""

from __future__ import annotations

from types import SimpleNamespace

from medcal_gui.core.jobs import Progress
from medcal_gui.core.progress_text import describe
from medcal_gui.ui.widgets import stage_progress
from medcal_gui.ui.widgets.stage_progress import StageProgress


def test_the_eta_counts_down_then_says_finishing(qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The row's clock is the test's: with the real one, the second between two reports was simulated by moving
    # the report's time back, and the row read "ETA 0:01" instead of 0:02 whenever the machine held the test for
    # half a second between the report and the tick.
    now = [1000.0]
    monkeypatch.setattr(stage_progress, "time", SimpleNamespace(monotonic=lambda: now[0]))
    st = StageProgress("Importance matrix")
    qtbot.addWidget(st)
    st.set_progress(Progress("imatrix", 3, 4, unit="chunks", eta_s=3.0))
    assert st.bar.value() == 750 and st.detail.text() == "3/4 chunks · ETA 0:03"
    assert st._tick.isActive()
    now[0] += 1.0  # a second later (the clock moved on, no new report): the tick counts down
    st._tick.timeout.emit()
    assert st.detail.text() == "3/4 chunks · ETA 0:02"
    now[0] += 1.5  # under a second left: the timer's own next tick says so
    qtbot.waitUntil(lambda: st.detail.text() == "3/4 chunks · finishing…", timeout=3000)
    st.finish("4 chunks")
    assert not st._tick.isActive() and st.detail.text() == "4 chunks"


def test_no_eta_from_the_first_tensor(qtbot) -> None:  # type: ignore[no-untyped-def]
    st = StageProgress("Quantize")
    qtbot.addWidget(st)
    p = Progress("quantize", 1, 236, unit="tensors", eta_s=238.0)
    st.set_progress(p)
    assert st.detail.text() == "1/236 tensors"
    assert describe("Quantizing to Q4_K_M", p) == "Quantizing to Q4_K_M: quantize · " + st.detail.text()


def test_a_stopped_stage_stops_its_busy_bar(qtbot) -> None:  # type: ignore[no-untyped-def]
    running, waiting = StageProgress("Importance matrix"), StageProgress("Quantize")
    for st in (running, waiting):
        qtbot.addWidget(st)
        st.reset("waiting")
    running.set_progress(Progress("imatrix", 0, None, "loading the model"))
    assert running.bar.maximum() == 0  # busy
    running.stop()
    waiting.stop()
    assert running.bar.maximum() == 1000 and running.detail.text() == "stopped"
    assert waiting.detail.text() == "not run"
