"""GUI test fixtures: offscreen Qt, settings in a temp folder, the app's GC policy, and error dialogs
collected instead of shown.

Every GUI test fails if it showed an error dialog it did not expect. A test expects them by looking at them
(it takes the `shown_errors` fixture itself) or by the marker `@pytest.mark.expect_error_dialog`.
"""

from __future__ import annotations

import gc
import inspect
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings  # noqa: E402

from medcal_gui.ui import error_dialog  # noqa: E402
from medcal_gui.ui.jobs.gc_policy import GuiThreadCollector  # noqa: E402
from medcal_gui.ui.jobs.gil_policy import GilPolicy  # noqa: E402
from medcal_gui.ui.settings import Settings  # noqa: E402
from medcal_gui.ui.workbench import Workbench  # noqa: E402

REAL_SHOW_ERROR = error_dialog.show_error


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "expect_error_dialog: the test shows error dialogs on purpose")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    q = QSettings(str(tmp_path / "medcal.ini"), QSettings.Format.IniFormat)
    return Settings(q)


def _expects_dialogs(request: pytest.FixtureRequest) -> bool:
    if request.node.get_closest_marker("expect_error_dialog") is not None:
        return True
    fn = getattr(request.node, "function", None)
    return fn is not None and "shown_errors" in inspect.signature(fn).parameters


@pytest.fixture(autouse=True)
def shown_errors(request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[BaseException, str | None]]]:
    """Every show_error call, instead of a dialog; an unexpected one fails the test."""
    seen: list[tuple[BaseException, str | None]] = []

    def fake(exc: BaseException, tb: str | None = None, parent: object = None, title: str = "") -> None:
        seen.append((exc, tb))

    monkeypatch.setattr(error_dialog, "show_error", fake)
    yield seen
    if seen and not _expects_dialogs(request):
        shown = "\n".join(f"- {type(e).__name__}: {error_dialog.describe(e)[0]}\n{tb or ''}" for e, tb in seen)
        pytest.fail(f"{len(seen)} unexpected error dialog(s):\n{shown}", pytrace=False)


@pytest.fixture
def real_show_error():  # type: ignore[no-untyped-def]
    """The real dialog, for the tests of the dialog itself."""
    return REAL_SHOW_ERROR


@pytest.fixture
def gui_gc(qapp) -> Iterator[GuiThreadCollector]:  # type: ignore[no-untyped-def]
    """The app's policies: garbage is collected on the GUI thread only, from a timer; a busy worker hands the GUI
    thread the GIL within 1 ms."""
    collector = GuiThreadCollector(qapp).install()
    gil = GilPolicy().install()  # and the GIL's switch interval, as the app sets it
    yield collector
    gil.uninstall()
    collector.uninstall()  # the test's garbage, collected here on the GUI thread
    gc.freeze()  # what survives it lives on (pytest's reports, logs): the next test's collection skips it
    collector.deleteLater()


@pytest.fixture
def bench(qapp, settings: Settings, gui_gc) -> Iterator[Workbench]:  # type: ignore[no-untyped-def]
    b = Workbench(settings)
    yield b
    b.cancel_all()
    assert b.wait_all(10000)


@pytest.fixture
def window(qtbot, settings: Settings, gui_gc):  # type: ignore[no-untyped-def]
    from medcal_gui.ui.main_window import MainWindow

    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.bench.loaded is not None and not win.bench.busy(), timeout=15000)
    yield win
    win.close()
    qtbot.waitUntil(lambda: not win.bench.busy() and win.bench.wait_all(0), timeout=15000)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What exists once the tests are collected (modules, test functions, pytest's own objects) lives for the
    whole session: moved out of the collector's reach (and so after each test, `gui_gc`), a test's full
    collection on the GUI thread scans only what that test made, not the whole session's objects (0.02-0.1 s
    a test: 4-7 s of the GUI suite)."""
    gc.collect()
    gc.freeze()
