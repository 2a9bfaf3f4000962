"""`medcal gui --screenshot DIR`: the real window with the sample data, one PNG per pane."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from medcal_gui.core.errors import MedcalError
from medcal_gui.ui.main_window import MainWindow

SIZE = (1280, 720)
SHOTS = ("01_narratives.png", "02_format.png", "02b_side_by_side.png", "03_quantize.png", "04_verify.png")


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "the window") -> None:
    """Run the event loop until `predicate()` holds (checked every 20 ms)."""
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: loop.quit() if predicate() or time.monotonic() > deadline else None)
    timer.start()
    if not predicate():
        loop.exec()
    timer.stop()
    if not predicate():
        raise MedcalError(f"Screenshots: {what} was not ready after {timeout_s:.0f} s.")


def _settle() -> None:
    for _ in range(3):
        QApplication.processEvents()


def take_screenshots(win: MainWindow, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    win.hint.hide()  # the first-run hint is not part of the panes the pictures show (not dismissed: not saved)
    win.resize(*SIZE)
    win.show()
    wait_until(lambda: win.narratives.ready(), what="the Narratives pane")
    out: list[Path] = []

    def shot(name: str) -> None:
        _settle()
        path = folder / name
        if not win.grab().save(str(path), "PNG"):
            raise MedcalError(f"Could not write the screenshot {path}.")
        out.append(path)

    win.set_current(0)
    rows = win.narratives.record_view.model().rowCount()
    if rows > 1:
        win.narratives.record_view.selectRow(1)  # show a narrative with inner line breaks
    shot(SHOTS[0])
    win.set_current(1)
    wait_until(lambda: win.format.ready(), what="the validation checklist")
    shot(SHOTS[1])
    win.format.set_side_by_side(True, columns=3)
    shot(SHOTS[2])
    win.format.set_side_by_side(False)
    quantize = win.pane("quantize")
    if getattr(quantize, "model", True) is None:
        from medcal_gui.gguf_files.demo_model import demo_model_path, demo_model_ready

        if demo_model_ready():  # show a real model card; never prepare one just for a screenshot
            quantize.set_model(demo_model_path())  # type: ignore[attr-defined]
    for i, name in ((2, SHOTS[3]), (3, SHOTS[4])):
        win.set_current(i)
        example = getattr(win.panes[i], "show_example", None)
        timeout = 180.0 if example is not None and example() else 120.0  # a real chat and evaluation; a busy CPU
        wait_until(lambda i=i: win.panes[i].ready(), timeout_s=timeout, what=win.panes[i].title)
        shot(name)
    return out
