"""The log dock: a logging handler that appends to a read-only text view, from any thread.

By default it shows medcal's own messages and llama.cpp's warnings and errors; "Show llama.cpp details"
adds llama.cpp's full log (model loading, vocabulary, per-tensor lines). A text filter narrows either view.
The view follows the newest line unless the user has scrolled up to read.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QCheckBox, QDockWidget, QHBoxLayout, QLineEdit, QPlainTextEdit, QVBoxLayout, QWidget

LOGGER_NAME = "medcal_gui"  # core, engine and llama.cpp ("medcal_gui.llama") all log below this
LLAMA_LOGGER = "medcal_gui.llama"
MAX_LINES = 5000


@dataclass(frozen=True)
class LogLine:
    text: str
    levelno: int
    logger: str

    @property
    def is_llama_detail(self) -> bool:
        """llama.cpp's own chatter below warning level (hidden unless the details are shown)."""
        from_llama = self.logger == LLAMA_LOGGER or self.logger.startswith(LLAMA_LOGGER + ".")
        return from_llama and self.levelno < logging.WARNING


class _Emitter(QObject):
    line = Signal(str, int, str)  # text, level, logger name


class QtLogHandler(logging.Handler):
    """Formats a record and hands it to the GUI thread through a queued signal."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.emitter = _Emitter()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.emitter.line.emit(self.format(record), record.levelno, record.name)
        except RuntimeError:
            pass  # the view is gone (window closed): drop the line rather than raise inside logging
        except Exception:  # noqa: BLE001
            self.handleError(record)


class LogDock(QDockWidget):
    def __init__(self, parent: QWidget | None = None, level: int = logging.INFO) -> None:
        super().__init__("Log", parent)
        self.setObjectName("log_dock")
        self.lines: deque[LogLine] = deque(maxlen=MAX_LINES)  # everything, whatever the view shows
        self.details = QCheckBox("Show llama.cpp details")
        self.details.setToolTip("Also show llama.cpp's own log: model loading, vocabulary, per-tensor lines. "
                                "Its warnings and errors are always shown.")
        self.details.toggled.connect(self._rebuild)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter the log…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._rebuild)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.details)
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)
        self.setWidget(body)
        self.handler = QtLogHandler(level)
        self.handler.emitter.line.connect(self.append)  # queued when logged from a worker thread
        self.logger = logging.getLogger(LOGGER_NAME)
        if self.logger.level == logging.NOTSET or self.logger.level > level:
            self.logger.setLevel(level)
        self.logger.addHandler(self.handler)

    def shows(self, line: LogLine) -> bool:
        if line.is_llama_detail and not self.details.isChecked():
            return False
        needle = self.filter.text().strip().lower()
        return not needle or needle in line.text.lower()

    def append(self, text: str, levelno: int = logging.INFO, logger: str = LOGGER_NAME) -> None:
        line = LogLine(text, levelno, logger)
        self.lines.append(line)
        if not self.shows(line):
            return
        bar = self.view.verticalScrollBar()
        following = bar.value() >= bar.maximum()
        kept = bar.value()
        self.view.appendPlainText(text)
        bar.setValue(bar.maximum() if following else kept)

    def _rebuild(self, *_: object) -> None:
        self.view.setPlainText("\n".join(ln.text for ln in self.lines if self.shows(ln)))
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.maximum())

    def text(self) -> str:
        """What the view shows now."""
        return self.view.toPlainText()

    def detach(self) -> None:
        """Stop receiving log records (on close), so no handler outlives its view."""
        self.logger.removeHandler(self.handler)
