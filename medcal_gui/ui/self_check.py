"""Qt's part of `medcal self-test` and `--version`: start Qt without a window and render one widget."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _headless() -> None:
    """Without a display, Qt must use its offscreen platform (Linux/BSD; Windows and macOS always have one)."""
    if sys.platform.startswith(("linux", "freebsd")) and not (os.environ.get("DISPLAY")
                                                             or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def qt_versions() -> dict[str, str]:
    try:
        import PySide6
        from PySide6.QtCore import qVersion

        return {"Qt": f"{qVersion()} (PySide6 {PySide6.__version__})"}
    except Exception as exc:  # --version must answer even when Qt is broken
        return {"Qt": f"unavailable ({type(exc).__name__}: {exc})"}


def step_qt(work: Path) -> str:
    """Start Qt without showing anything: the platform plugin loads and a widget renders to an image."""
    _headless()
    from PySide6.QtCore import qVersion
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "medcal"])
    label = QLabel("medcal self-test")
    label.resize(160, 24)
    image = label.grab().toImage()
    label.deleteLater()
    if image.isNull() or image.width() < 1:
        raise RuntimeError("Qt could not render a widget offscreen")
    platform_name = app.platformName() if isinstance(app, QApplication) else "?"
    return f"{qVersion()} on '{platform_name}'"
