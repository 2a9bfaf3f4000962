"""Formatted-record views: one highlighted text view, and side-by-side columns with synchronised scrolling."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QComboBox, QPlainTextEdit, QScrollBar, QSplitter, QVBoxLayout, QWidget

from medcal_gui.dataset.variants import Variant
from medcal_gui.ui.widgets.highlighter import ChatHighlighter


def short_title(variant: Variant) -> str:
    """A variant's title without its parenthesised gloss ("Night sentinel (alerts...)" -> "Night sentinel")."""
    return variant.title.split(" (", 1)[0].strip() or variant.name


class ChatView(QPlainTextEdit):
    """Read-only, monospaced, highlighted view of formatted chat text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.highlighter = ChatHighlighter(self.document())

    def set_text(self, text: str) -> None:
        if text != self.toPlainText():
            self.setPlainText(text)


class SideBySide(QWidget):
    """Two or three columns, each a variant chooser over a ChatView; vertical scrolling moves them together."""

    MAX_COLUMNS = 3

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.combos: list[QComboBox] = []
        self.views: list[ChatView] = []
        self.columns: list[QWidget] = []
        self._syncing = False
        self._frac = 0.0
        for _ in range(self.MAX_COLUMNS):
            col = QWidget()
            lay = QVBoxLayout(col)
            lay.setContentsMargins(0, 0, 0, 0)
            combo = QComboBox()
            combo.currentIndexChanged.connect(
                lambda _i, c=combo: c.setToolTip(c.currentData(Qt.ItemDataRole.ToolTipRole) or ""))
            view = ChatView()
            bar = view.verticalScrollBar()
            bar.valueChanged.connect(lambda v, src=view: self._sync(src, v))
            # A plain-text layout grows its scroll range lazily: keep the shared position when it does.
            bar.rangeChanged.connect(lambda _lo, _hi, b=bar, v=view: self._apply(b) if v.isVisible() else None)
            lay.addWidget(combo)
            lay.addWidget(view)
            self.splitter.addWidget(col)
            self.combos.append(combo)
            self.views.append(view)
            self.columns.append(col)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.splitter)

    def set_variants(self, variants: list[Variant], chosen: list[str]) -> None:
        """Fill every column's chooser; `chosen` names the variant of each column in order."""
        longest = max((len(short_title(v)) for v in variants), default=12)
        for i, combo in enumerate(self.combos):
            combo.blockSignals(True)
            combo.clear()
            for v in variants:
                combo.addItem(short_title(v), v.name)
                combo.setItemData(combo.count() - 1, f"{v.title}: {v.description}" if v.description else v.title,
                                  Qt.ItemDataRole.ToolTipRole)
            # Wide enough for every name, so three columns never cut one off.
            combo.setMinimumContentsLength(longest)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            if i < len(chosen):
                combo.setCurrentIndex(max(0, combo.findData(chosen[i])))
            combo.setToolTip(combo.currentData(Qt.ItemDataRole.ToolTipRole) or "")
            combo.blockSignals(False)

    def set_column_count(self, n: int) -> None:
        n = max(2, min(self.MAX_COLUMNS, n))
        for i, col in enumerate(self.columns):
            col.setVisible(i < n)
        self.splitter.setSizes([1000] * n + [0] * (self.MAX_COLUMNS - n))

    def column_count(self) -> int:
        return sum(1 for c in self.columns if not c.isHidden())

    def visible_views(self) -> list[ChatView]:
        return [v for v, c in zip(self.views, self.columns, strict=True) if not c.isHidden()]

    def chosen(self) -> list[str]:
        return [c.currentData() for c, col in zip(self.combos, self.columns, strict=True) if not col.isHidden()]

    def _sync(self, source: ChatView, value: int) -> None:
        if self._syncing or not source.isVisible():
            return
        src = source.verticalScrollBar()
        self._frac = value / src.maximum() if src.maximum() else 0.0
        for v in self.visible_views():
            if v is not source:
                self._apply(v.verticalScrollBar())

    def _apply(self, bar: QScrollBar) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            for _ in range(4):  # scrolling may lay out more text and grow the range: aim again
                target = round(self._frac * bar.maximum())
                if bar.value() == target:
                    break
                bar.setValue(target)
        finally:
            self._syncing = False
