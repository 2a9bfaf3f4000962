"""The QApplication (Fusion style, the system's light or dark palette) and the GUI's entry point."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from medcal_gui import __version__
from medcal_gui.ui.error_dialog import install_excepthooks
from medcal_gui.ui.jobs.gc_policy import GuiThreadCollector
from medcal_gui.ui.jobs.gil_policy import GilPolicy
from medcal_gui.ui.settings import APP, ORG

LOG = logging.getLogger("medcal_gui.ui")


def create_app(argv: list[str] | None = None) -> QApplication:
    """The application, created once (an existing one, e.g. pytest-qt's, is reused)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP)
    app.setOrganizationName(ORG)
    app.setApplicationVersion(__version__)
    app.setApplicationDisplayName("medcal")
    app.setStyle("Fusion")  # follows the system colour scheme; no colours hard-coded
    return app


def run_gui(model: Path | None = None, screenshot: Path | None = None, verbose: bool = False) -> int:
    from medcal_gui.ui.main_window import MainWindow

    app = create_app()
    restore = install_excepthooks()
    collector = GuiThreadCollector(app).install()  # Qt objects are never collected on a worker thread
    gil = GilPolicy().install()  # a worker in pure Python hands the GUI thread the GIL within 0.1 ms
    try:
        logging.getLogger("medcal_gui").setLevel(logging.DEBUG if verbose else logging.INFO)
        win = MainWindow(model=model)
        if screenshot is not None:
            from medcal_gui.ui.screenshots import take_screenshots

            try:
                take_screenshots(win, Path(screenshot))
            finally:
                win.closer.shut_down()  # waits (on the event loop) for the jobs: no thread outlives Qt
            return 0
        win.show()
        return int(app.exec())
    finally:
        gil.uninstall()
        collector.uninstall()
        restore()
