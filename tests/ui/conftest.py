"""GUI test fixtures: offscreen Qt, settings in a temp folder, error dialogs collected instead of shown."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings  # noqa: E402

from medcal_gui.ui import error_dialog  # noqa: E402
from medcal_gui.ui.settings import Settings  # noqa: E402
from medcal_gui.ui.workbench import Workbench  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    q = QSettings(str(tmp_path / "medcal.ini"), QSettings.Format.IniFormat)
    return Settings(q)


@pytest.fixture
def shown_errors(monkeypatch: pytest.MonkeyPatch) -> list[tuple[BaseException, str | None]]:
    """Every show_error call, instead of a dialog."""
    seen: list[tuple[BaseException, str | None]] = []

    def fake(exc: BaseException, tb: str | None = None, parent: object = None, title: str = "") -> None:
        seen.append((exc, tb))

    monkeypatch.setattr(error_dialog, "show_error", fake)
    return seen


@pytest.fixture
def bench(qapp, settings: Settings, shown_errors) -> Iterator[Workbench]:  # type: ignore[no-untyped-def]
    b = Workbench(settings)
    yield b
    b.cancel_all()
    assert b.wait_all(10000)


@pytest.fixture
def window(qtbot, settings: Settings, shown_errors):  # type: ignore[no-untyped-def]
    from medcal_gui.ui.main_window import MainWindow

    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.bench.loaded is not None and not win.bench.busy(), timeout=15000)
    yield win
    win.close()
