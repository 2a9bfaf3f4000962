"""Colours the Gemma chat calibration text: turn markers, role words, the system marker line, the narrative.

Block states carry where a line sits in a record (user turn head, narrative, model turn), so multi-line
narratives are coloured as narrative. Colours are chosen for the palette in use (light or dark window).
"""

from __future__ import annotations

import re

from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QPalette,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextDocument,
)

from medcal_gui.dataset.records import END_TURN, START_TURN

OUTSIDE, USER_HEAD, NARRATIVE, MODEL = 0, 1, 2, 3
_TURN_RE = re.compile(re.escape(START_TURN) + r"|" + re.escape(END_TURN))
_ROLE_RE = re.compile(re.escape(START_TURN) + r"(\w+)")
_MARKER_RE = re.compile(r"^\[.*\]\s*$")

# (light window, dark window)
_COLOURS = {
    "tag": ("#8e24aa", "#ce93d8"),
    "role": ("#1565c0", "#90caf9"),
    "marker": ("#c62828", "#ef9a9a"),
    "instruction": ("#6d4c41", "#d7ccc8"),
    "narrative": ("#1b5e20", "#a5d6a7"),
    "response": ("#455a64", "#b0bec5"),
}


def is_dark(palette: QPalette | None = None) -> bool:
    palette = palette or QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def make_formats(dark: bool) -> dict[str, QTextCharFormat]:
    out = {}
    for name, (light, darkc) in _COLOURS.items():
        f = QTextCharFormat()
        f.setForeground(QColor(darkc if dark else light))
        if name in ("tag", "role", "marker"):
            f.setFontWeight(QFont.Weight.Bold)
        if name == "instruction":
            f.setFontItalic(True)
        out[name] = f
    return out


class ChatHighlighter(QSyntaxHighlighter):
    def __init__(self, document: QTextDocument, dark: bool | None = None) -> None:
        self.formats = make_formats(is_dark() if dark is None else dark)
        super().__init__(document)

    def set_dark(self, dark: bool) -> None:
        self.formats = make_formats(dark)
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        state = self.previousBlockState()
        state = OUTSIDE if state < 0 else state
        f = self.formats
        m = _ROLE_RE.match(text)
        if m:
            self.setFormat(0, len(START_TURN), f["tag"])
            self.setFormat(m.start(1), len(m.group(1)), f["role"])
            state = USER_HEAD if m.group(1) == "user" else MODEL
            self._turn_tags(text, m.end())
            self.setCurrentBlockState(state)
            return
        end = text.find(END_TURN)
        body = text if end < 0 else text[:end]
        if state == USER_HEAD:
            if _MARKER_RE.match(body):
                self.setFormat(0, len(body), f["marker"])
            else:
                self.setFormat(0, len(body), f["instruction"])
                state = NARRATIVE
        elif state == NARRATIVE:
            self.setFormat(0, len(body), f["narrative"])
        elif state == MODEL:
            self.setFormat(0, len(body), f["response"])
        if end >= 0:
            state = OUTSIDE
        self._turn_tags(text, 0)
        self.setCurrentBlockState(state)

    def _turn_tags(self, text: str, start: int) -> None:
        for m in _TURN_RE.finditer(text, start):
            self.setFormat(m.start(), m.end() - m.start(), self.formats["tag"])

    def format_at(self, block_number: int, column: int) -> QTextCharFormat:
        """The highlight format at a position (an empty format where nothing is highlighted)."""
        block = self.document().findBlockByNumber(block_number)
        if block.isValid() and block.layout() is not None:
            for r in block.layout().formats():
                if r.start <= column < r.start + r.length:
                    return QTextCharFormat(r.format)  # a copy: the range is a temporary
        return QTextCharFormat()
