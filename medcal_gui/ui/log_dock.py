"""The log dock: a logging handler that appends to a read-only text view, from any thread."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QDockWidget, QPlainTextEdit, QWidget

LOGGER_NAME = "medcal_gui"  # core, engine and llama.cpp ("medcal_gui.llama") all log below this
MAX_LINES = 5000


class _Emitter(QObject):
    line = Signal(str, int)


class QtLogHandler(logging.Handler):
    """Formats a record and hands it to the GUI thread through a queued signal."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.emitter = _Emitter()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.emitter.line.emit(self.format(record), record.levelno)
        except RuntimeError:
            pass  # the view is gone (window closed): drop the line rather than raise inside logging
        except Exception:  # noqa: BLE001
            self.handleError(record)


class LogDock(QDockWidget):
    def __init__(self, parent: QWidget | None = None, level: int = logging.INFO) -> None:
        super().__init__("Log", parent)
        self.setObjectName("log_dock")
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setWidget(self.view)
        self.handler = QtLogHandler(level)
        self.handler.emitter.line.connect(self.append)  # queued when logged from a worker thread
        self.logger = logging.getLogger(LOGGER_NAME)
        if self.logger.level == logging.NOTSET or self.logger.level > level:
            self.logger.setLevel(level)
        self.logger.addHandler(self.handler)

    def append(self, text: str, levelno: int = logging.INFO) -> None:
        self.view.appendPlainText(text)

    def text(self) -> str:
        return self.view.toPlainText()

    def detach(self) -> None:
        """Stop receiving log records (on close), so no handler outlives its view."""
        self.logger.removeHandler(self.handler)
