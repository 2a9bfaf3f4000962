"""The main window: start-up with the samples, steps, shortcuts, settings, About, closing during a job."""

from __future__ import annotations

import threading

from medcal_gui.jobs import CancelToken, Progress, ProgressCallback
from medcal_gui.ui import main_window
from medcal_gui.ui.main_window import DONE_ROLE, MainWindow


def test_window_loads_samples_and_marks_steps(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    assert window.narratives.records.rowCount() == 38
    assert [window.steps.item(i).text() for i in range(4)] == [
        "1  Narratives", "2  Format & preview", "3  Quantize", "4  Verify & chat"]
    qtbot.waitUntil(lambda: window.is_step_done(1), timeout=15000)
    assert window.is_step_done(0) and not window.is_step_done(2)
    assert window.steps.item(0).data(DONE_ROLE) is True
    assert window.steps.item(2).data(DONE_ROLE) is None


def test_ctrl_number_switches_panes(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    window.show()
    qtbot.waitExposed(window)
    for i, act in enumerate(window.step_actions):
        assert act.shortcut().toString() == f"Ctrl+{i + 1}"
        act.trigger()
        assert window.current_pane() is window.panes[i]
    assert {s.toString() for s in window.cancel_action.shortcuts()} == {"Esc", "Ctrl+."}
    assert window.open_action.shortcut().toString() == "Ctrl+O"


def test_status_bar_follows_the_job_and_cancel_stops_it(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    window.show()
    started = threading.Event()

    def job(progress: ProgressCallback, cancel: CancelToken) -> None:
        progress(Progress("imatrix", 5, 10, "chunk 5", unit="chunks"))
        started.set()
        while True:
            cancel.check()
            cancel.wait(0.01)

    assert window.bench.start_job(job, "Computing")
    assert started.wait(5)
    qtbot.waitUntil(lambda: window.job_bar.value() == 500, timeout=5000)
    assert window.job_bar.isVisible() and window.cancel_btn.isVisible()
    assert "chunk 5" in window.job_label.text() and "5/10 chunks" in window.job_label.text()
    assert window.cancel_action.isEnabled()
    with qtbot.waitSignal(window.bench.jobs.cancelled, timeout=5000):
        window.cancel_action.trigger()
    assert not window.job_bar.isVisible()
    assert not window.cancel_action.isEnabled()


def test_settings_persist_geometry_recent_and_variant(qtbot, settings, shown_errors, sample_file) -> None:  # type: ignore[no-untyped-def]
    win = MainWindow(settings=settings, load_samples=False)
    qtbot.addWidget(win)
    win.resize(700, 500)  # inside the offscreen screen (800x600), which restoreGeometry clamps to
    with qtbot.waitSignal(win.narratives.loaded, timeout=15000):
        win.narratives.load_paths([sample_file])
    win.format.set_variant("night_sentinel")
    win.format.set_layout("gemma")
    qtbot.waitUntil(lambda: not win.bench.busy(), timeout=15000)
    win.close()
    assert settings.recent_files == [str(sample_file)]
    win2 = MainWindow(settings=settings, load_samples=False)
    qtbot.addWidget(win2)
    assert (win2.size().width(), win2.size().height()) == (700, 500)
    assert win2.format.variant.name == "night_sentinel"
    assert win2.format.layout_name == "gemma"
    win2._fill_recent()
    assert [a.text() for a in win2.recent_menu.actions()][0] == str(sample_file)
    win2.close()


def test_settings_typed_values_round_trip(settings) -> None:  # type: ignore[no-untyped-def]
    settings.threads = 6
    settings.quant_type = "Q4_K_M"
    settings.set_chat("temperature", 0.7)
    settings.set("quantize/keep", True)
    settings.sync()
    assert settings.threads == 6 and settings.quant_type == "Q4_K_M"
    assert settings.chat("temperature", 1.0) == 0.7
    assert settings.get_bool("quantize/keep") is True
    settings.add_recent(["/a"])
    assert settings.recent_files == ["/a"]  # a one-item list stays a list


def test_about_names_every_version() -> None:
    import platform

    import llama_cpp
    from PySide6.QtCore import qVersion

    from medcal_gui import __version__

    text = main_window.about_text()
    for v in (__version__, llama_cpp.__version__, qVersion(), platform.python_version()):
        assert v in text


def test_errors_from_a_job_are_shown_in_the_window(qtbot, window, shown_errors) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.bench.jobs.failed, timeout=5000):
        window.narratives.load_paths([window.settings.q.fileName() + ".missing"])
    assert "no such file or folder" in shown_errors[-1][0].message
    assert window.narratives.records.rowCount() == 38  # the previous data stays
    assert not window.bench.jobs.is_running() and window.isEnabled()
