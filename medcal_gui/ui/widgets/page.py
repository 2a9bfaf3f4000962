"""A pane's page in the main window's stack: the pane fills it, and scrolls only when the window is smaller
than the pane's minimum, so no pane's minimum ever sets the window's (a 1280x720 screen still fits)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


class Page(QScrollArea):
    """Unlike `setWidgetResizable(True)`, which sizes a widget with word-wrapped labels by its *preferred*
    height for the width (and so scrolls although everything would fit), this uses the pane's minimum."""

    def __init__(self, pane: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"page_{getattr(pane, 'key', '')}")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(False)
        self.setWidget(pane)
        pane.installEventFilter(self)

    def fit(self) -> None:
        pane = self.widget()
        if pane is None:
            return
        need = pane.minimumSizeHint().expandedTo(pane.minimumSize())
        room = self.maximumViewportSize()  # the viewport without scroll bars
        bar = self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent)
        tall, wide = need.height() > room.height(), need.width() > room.width()
        tall = tall or (wide and need.height() > room.height() - bar)
        wide = wide or (tall and need.width() > room.width() - bar)
        size = QSize(max(need.width(), room.width() - (bar if tall else 0)),
                     max(need.height(), room.height() - (bar if wide else 0)))
        if pane.size() != size:
            pane.resize(size)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.fit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.fit()  # the pane's minimum may have changed
        return super().eventFilter(watched, event)
