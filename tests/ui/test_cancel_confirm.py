"""Esc cancels a short job at once, but asks before throwing away a long one."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback
from medcal_gui.ui import dialogs


def long_job(eta_s: float):  # type: ignore[no-untyped-def]
    def job(progress: ProgressCallback, cancel: CancelToken) -> None:
        progress(Progress("imatrix", 3, 200, unit="chunks", eta_s=eta_s))
        while not cancel.wait(0.02):
            pass
        cancel.check()

    return job


@pytest.mark.parametrize(("eta_s", "answer", "asked", "cancelled"), [
    (3 * 3600.0, False, True, False),  # hours to go: asked, the answer No keeps it running
    (3 * 3600.0, True, True, True),
    (5.0, False, False, True),  # a short job: Esc cancels it directly
])
def test_esc_asks_before_cancelling_a_long_job(qtbot, window, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                               eta_s: float, answer: bool, asked: bool, cancelled: bool) -> None:
    questions: list[str] = []
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda _p, _t, text: questions.append(text) or answer)
    jobs = window.bench.jobs
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    assert window.bench.start_job(long_job(eta_s), "Computing the importance matrix")
    qtbot.waitUntil(lambda: jobs.last_progress is not None, timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert bool(questions) == asked
    if asked:
        assert "Computing the importance matrix" in questions[0] and "Cancel it?" in questions[0]
    if cancelled:
        qtbot.waitUntil(lambda: not jobs.is_running(), timeout=5000)
    else:
        qtbot.wait(200)
        assert jobs.is_running() and not jobs.cancel_requested
        jobs.cancel()
        qtbot.waitUntil(lambda: not jobs.is_running(), timeout=5000)
