"""Every failure, shown in plain words with expandable details, and logged.

Callers use `error_dialog.show_error(...)` through the module (never `from ... import show_error`), so tests
can monkeypatch it. The dialog is non-modal: it never blocks a test or a running job.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from medcal_gui.core.errors import MedcalError
from medcal_gui.ui.hints import gui_hint

LOG = logging.getLogger("medcal_gui.ui")

_open_dialogs: list[QMessageBox] = []  # keep non-modal dialogs alive until closed


def describe(exc: BaseException) -> tuple[str, str]:
    """(plain-words message, details) for any exception."""
    if isinstance(exc, MedcalError):  # a hint (the setting that would help) in the window's words
        return exc.message + gui_hint(getattr(exc, "hint", None)), exc.details or ""
    name = type(exc).__name__
    return (f"Something went wrong inside medcal ({name}: {exc}). Your files were not changed. "
            "The details below help to report it.", "")


def show_error(exc: BaseException, tb: str | None = None, parent: QWidget | None = None,
               title: str = "medcal") -> QMessageBox | None:
    """Log `exc` and show it in a non-modal dialog; returns the dialog (None without a QApplication)."""
    message, details = describe(exc)
    tb = tb or "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    # a user's mistake (a MedcalError) shows its own details, never a traceback (that goes to the debug log)
    full = details if isinstance(exc, MedcalError) else tb
    if isinstance(exc, MedcalError):
        LOG.error("%s", message + (f"\n{details}" if details else ""))
        LOG.debug("%s", tb)
    else:
        LOG.error("%s\n%s", message, tb)
    if QApplication.instance() is None:
        return None
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning if isinstance(exc, MedcalError) else QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    box.setText(message)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if full.strip():
        box.setDetailedText(full)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    _open_dialogs.append(box)
    box.finished.connect(lambda _=0, b=box: _open_dialogs.remove(b) if b in _open_dialogs else None)
    box.show()
    return box


class _Bridge(QObject):
    """Carries an exception from any thread to the GUI thread."""

    raised = Signal(object, str)


_bridge: _Bridge | None = None


def _show_from_bridge(exc: BaseException, tb: str) -> None:
    sys.modules[__name__].show_error(exc, tb)  # late lookup: honours a monkeypatched show_error


def install_excepthooks() -> Callable[[], None]:
    """Route uncaught exceptions (slots, worker threads) to the log and a dialog instead of a crash.

    Returns a function that restores the previous hooks.
    """
    global _bridge
    if _bridge is None:
        _bridge = _Bridge()
        _bridge.raised.connect(_show_from_bridge)
    bridge = _bridge
    old_sys, old_thread = sys.excepthook, threading.excepthook

    def sys_hook(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(etype, KeyboardInterrupt):
            old_sys(etype, value, tb)
            return
        bridge.raised.emit(value, "".join(traceback.format_exception(etype, value, tb)))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or isinstance(args.exc_value, SystemExit):
            return
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        bridge.raised.emit(args.exc_value, text)  # queued to the GUI thread

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook

    def restore() -> None:
        sys.excepthook = old_sys
        threading.excepthook = old_thread

    return restore
