"""A chat transcript that grows piece by piece, and the thread-safe buffer that carries the pieces to it.

A reply streams at up to hundreds of tokens a second: the worker appends each piece to a `PieceBuffer` and
signals only when the buffer was empty, so the GUI thread gets one queued call per batch of pieces however
fast they come, and no piece is lost to a throttle.
"""

from __future__ import annotations

import html
import threading

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QLabel, QTextBrowser, QVBoxLayout, QWidget

from medcal_gui.chat.chat import ChatStats
from medcal_gui.ui.widgets.fields import reserved_label

FINISH_WORDS = {"stop": "end of turn", "length": "max tokens reached", "context": "context full",
                "stopped": "stopped by you", "turn": "stopped where it began the next turn", "": ""}


class PieceBuffer(QObject):
    arrived = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._items: list[tuple[str, str]] = []

    def put(self, key: str, text: str) -> None:
        """From any thread: queue `text` for the view named `key`."""
        with self._lock:
            first = not self._items
            self._items.append((key, text))
        if first:
            self.arrived.emit()

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            items, self._items = self._items, []
        return items


def stats_text(stats: ChatStats) -> str:
    parts = [f"{stats.completion_tokens} tokens"]
    if stats.tokens_per_s:
        parts.append(f"{stats.tokens_per_s:.1f} tokens/s")
    if stats.ttft_s is not None:
        parts.append(f"first token after {stats.ttft_s:.2f} s")
    parts.append(f"prompt {stats.prompt_tokens} tokens")
    if stats.finish_reason:
        parts.append(FINISH_WORDS.get(stats.finish_reason, stats.finish_reason))
    return " · ".join(parts)


class ChatTranscript(QWidget):
    """A title, the conversation (user turns and streamed replies), and the last reply's speed."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(title)
        self.title.setWordWrap(True)
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        self.stats = reserved_label(2)  # both columns keep the same height, whatever their line says
        self.replies: list[str] = []
        self.last_stats: ChatStats | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.stats)

    def set_title(self, text: str) -> None:
        self.title.setText(text)

    def clear(self) -> None:
        self.view.clear()
        self.replies = []
        self.last_stats = None
        self.stats.setText("")

    def _end(self) -> QTextCursor:
        cur = self.view.textCursor()
        cur.movePosition(QTextCursor.MoveOperation.End)
        return cur

    def add_user(self, text: str) -> None:
        cur = self._end()
        if not self.view.document().isEmpty():
            cur.insertBlock()
        cur.insertHtml(f"<p><b>You</b><br>{html.escape(text).replace(chr(10), '<br>')}</p>")
        cur.insertBlock()
        cur.insertHtml("<b>Model</b>")
        cur.insertBlock()
        self.replies.append("")
        self.stats.setText("Thinking…")

    def set_waiting(self, text: str) -> None:
        """Nothing was sent to this model yet: say why (no user turn is shown for it)."""
        self.stats.setText(text)

    def append(self, piece: str) -> None:
        if not self.replies:
            self.replies.append("")
        self.replies[-1] += piece
        cur = self._end()
        cur.insertText(piece, QTextCharFormat())  # plain, whatever the heading before it
        self.view.setTextCursor(cur)
        self.view.ensureCursorVisible()

    def finish(self, stats: ChatStats | None, note: str = "") -> None:
        self.last_stats = stats
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.maximum())  # the reply's end, not the prompt
        self.stats.setText(note if stats is None else stats_text(stats) + (f" — {note}" if note else ""))

    def reply_text(self) -> str:
        return self.replies[-1] if self.replies else ""
