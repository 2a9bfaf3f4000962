"""The main window: start-up with the samples, steps, shortcuts, settings, About, closing during a job."""

from __future__ import annotations

import threading

from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback
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
    # the minimum width (wider than the 800x600 offscreen screen: kept), a new height above the minimum (640) that
    # fits a real 1280x720 X screen too (Qt restores a 700-high window there 694 high, to fit its frame)
    win.resize(1024, 660)
    with qtbot.waitSignal(win.narratives.loaded, timeout=15000):
        win.narratives.load_paths([sample_file])
    win.format.set_variant("night_sentinel")
    win.format.set_layout("gemma")
    qtbot.waitUntil(lambda: not win.bench.busy(), timeout=15000)
    win.close()
    assert settings.recent_files == [str(sample_file)]
    win2 = MainWindow(settings=settings, load_samples=False)
    qtbot.addWidget(win2)
    assert (win2.size().width(), win2.size().height()) == (1024, 660)
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


def test_view_menu_shows_each_step_title_as_written(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    shown = [a.text().replace("&&", "\0").replace("&", "").replace("\0", "&") for a in window.step_actions]
    assert shown == ["1 Narratives", "2 Format & preview", "3 Quantize", "4 Verify & chat"]
    assert window.step_actions[1].text() == "&2 Format && preview"  # "&" doubled: no "_p" mnemonic
    assert main_window.menu_label(3, "Verify & chat") == "&4 Verify && chat"


def test_help_opens_the_shipped_user_guide_offline(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    from medcal_gui.core.resources import resources_dir

    assert window.guide_action.shortcut().toString() == "F1"
    window.guide_action.trigger()
    guide = window._guide
    assert guide is not None and guide.isVisible()
    assert guide.path == resources_dir() / "user_guide.md"
    text = guide.browser.toPlainText()
    assert text.startswith("medcal user guide") and "The four steps" in text and "Decode as" in text
    assert "](" not in text  # rendered Markdown, not its source
    window.guide_action.trigger()
    assert window._guide is guide  # one window, raised again
    guide.close()


def test_guide_pictures_that_are_missing_become_captions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from medcal_gui.ui.guide import guide_markdown

    (tmp_path / "here.png").write_bytes(b"\x89PNG")
    md = tmp_path / "g.md"
    md.write_text("# G\n\n![Shown](here.png)\n\n![Format pane](../nowhere/02_format.png)\n", encoding="utf-8")
    out = guide_markdown(md)
    assert "![Shown](here.png)" in out
    assert "*(Picture: Format pane)*" in out and "nowhere" not in out


def test_first_run_hint_until_dismissed(qtbot, settings, shown_errors) -> None:  # type: ignore[no-untyped-def]
    win = MainWindow(settings=settings, load_samples=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    assert win.hint.isVisible()
    win.hint_done_btn.click()
    assert not win.hint.isVisible()
    win.close()
    win2 = MainWindow(settings=settings, load_samples=False)
    qtbot.addWidget(win2)
    win2.show()
    assert not win2.hint.isVisible() and win2.hint.isHidden()
    win2.close()


def test_first_window_fits_the_screen_it_opens_on() -> None:
    from PySide6.QtCore import QSize

    assert main_window.default_size(QSize(1920, 1080)) == (1280, 800)
    assert main_window.default_size(QSize(1280, 720)) == (1280, 680)  # room for the title bar
    assert main_window.default_size(QSize(1366, 740)) == (1280, 700)
    assert main_window.default_size(QSize(800, 600)) == main_window.MIN_SIZE


def test_the_ladder_window_fits_a_small_screen() -> None:
    """The ladder's result window asks for 1100x760: on a 1280x720 laptop it gets 680 high, so its Close
    button and the recipe's status stay on the screen (they were cut off)."""
    from PySide6.QtCore import QSize

    from medcal_gui.ui.widgets.screen_fit import fitted_size

    assert fitted_size(QSize(1280, 720), (1100, 760)) == (1100, 680)
    assert fitted_size(QSize(1920, 1080), (1100, 760)) == (1100, 760)
    assert fitted_size(QSize(1280, 720), (1100, 760), minimum=(0, 700)) == (1100, 700)  # never below its minimum


def test_guide_pictures_fit_the_guide_window(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QTextImageFormat

    from medcal_gui.ui.guide import IMAGE_WIDTH, GuideWindow, guide_markdown, guide_path

    win = GuideWindow()
    qtbot.addWidget(win)
    doc = win.browser.document()
    widths = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isImageFormat():
                widths.append(QTextImageFormat(fmt.toImageFormat()).width())
            it += 1
        block = block.next()
    shown = guide_markdown(guide_path()).count("![")
    assert shown > 0 and len(widths) == shown and all(w == IMAGE_WIDTH for w in widths)


def test_file_menu_clears_the_evaluation_cache_after_asking(window, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from medcal_gui.core.ownership import mark_folder
    from medcal_gui.evaluate.eval_cache import ENTRY_KIND, eval_cache_dir
    from medcal_gui.ui import dialogs

    monkeypatch.setenv("MEDCAL_EVAL_CACHE", str(tmp_path / "eval-cache"))  # this test's own, holding one entry

    entry = eval_cache_dir() / ("0123abcd" * 4)  # an entry of the cache's own: named by a digest, marked
    mark_folder(entry, ENTRY_KIND)
    (entry / "meta.json").write_text("{}", encoding="utf-8")
    (entry / "ids.i32").write_bytes(b"\0" * 200_000)
    asked: list[str] = []
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda parent, title, text: asked.append(text) or False)
    window.clear_cache_action.trigger()
    assert entry.is_dir() and len(asked) == 1 and "1 saved base-model pass(es), 200 kB" in asked[0]  # No keeps it
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda parent, title, text: True)
    window.clear_cache_action.trigger()
    assert not entry.exists()
    assert "200 kB freed" in window.statusBar().currentMessage()
    window.clear_cache_action.trigger()
    assert "The evaluation cache is empty" in window.statusBar().currentMessage()


def test_a_pane_asking_for_a_step_gets_it(window) -> None:  # type: ignore[no-untyped-def]
    """Workbench.step_requested (the ladder's "Chat with this") shows that step and activates its pane."""
    window.set_current(0)
    window.bench.step_requested.emit("verify")
    assert window.current_pane().key == "verify"
    window.bench.step_requested.emit("no-such-step")
    assert window.current_pane().key == "verify"
