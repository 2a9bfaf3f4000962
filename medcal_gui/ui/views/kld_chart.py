"""A histogram of per-token KL divergence, drawn with QPainter (no QtCharts: PySide6-Essentials only).

The bins, the axis' positions and its labels are core.histogram's, the ones `medcal eval --plot` draws too.
The mean and the 99th percentile are marked.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from medcal_gui.core.histogram import N_BINS, kld_bins, kld_slot, kld_ticks
from medcal_gui.ui.widgets.model_card import colour


class KldHistogram(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.counts = np.zeros(N_BINS, dtype=np.int64)
        self.n = 0
        self.mean: float | None = None
        self.p99: float | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(140)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(360, 180)

    def set_values(self, values: np.ndarray, mean: float | None = None, p99: float | None = None) -> None:
        self.counts = kld_bins(values)[1]
        self.n = int(np.asarray(values).size)
        self.mean, self.p99 = mean, p99
        self.update()

    def clear(self) -> None:
        self.set_values(np.empty(0))

    def _x(self, value: float, plot: QRectF) -> float:
        """Where `value` falls on the axis."""
        return plot.left() + kld_slot(value) * plot.width() / N_BINS

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.windowText().color()
        fm = self.fontMetrics()
        h = fm.height()
        left = fm.horizontalAdvance("00000") + 8
        plot = QRectF(left, 2 * h + 6, self.width() - left - 16, self.height() - 3 * h - 14)
        p.setPen(text)
        title = f"Per-token KL divergence ({self.n:,} tokens)" if self.n else "Per-token KL divergence"
        p.drawText(QRectF(0, 0, self.width(), h + 4), Qt.AlignmentFlag.AlignCenter, title)
        if plot.width() < 40 or plot.height() < 20:
            return
        p.setPen(QPen(pal.mid().color()))
        p.drawLine(QPointF(plot.left(), plot.bottom()), QPointF(plot.right(), plot.bottom()))
        p.drawLine(QPointF(plot.left(), plot.top()), QPointF(plot.left(), plot.bottom()))
        if not self.n:
            p.setPen(text)
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "Run an evaluation to see the distribution")
            return
        top = max(1, int(self.counts.max()))
        n_bins = len(self.counts)
        slot = plot.width() / n_bins
        bar = QColor(pal.highlight().color())
        for i, c in enumerate(self.counts):
            if not c:
                continue
            bh = plot.height() * c / top
            p.fillRect(QRectF(plot.left() + i * slot + 1, plot.bottom() - bh, slot - 2, bh), bar)
        p.setPen(text)
        p.drawText(QRectF(0, plot.top() - h / 2, plot.left() - 4, h), Qt.AlignmentFlag.AlignRight, f"{top:,}")
        p.drawText(QRectF(0, plot.bottom() - h / 2, plot.left() - 4, h), Qt.AlignmentFlag.AlignRight, "0")
        for value, label in kld_ticks():
            x = self._x(value, plot)
            w = fm.horizontalAdvance(label)
            p.drawText(QRectF(x - w / 2 - 2, plot.bottom() + 2, w + 4, h), Qt.AlignmentFlag.AlignCenter, label)
        legend_x = plot.right()
        for name, value, kind in (("p99", self.p99, "warn"), ("mean", self.mean, "bad")):
            if value is None:
                continue
            col = QColor(colour(kind, self))
            x = self._x(max(value, 0.0), plot)
            p.setPen(QPen(col, 1.5, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
            label = f"┆ {name} {value:.2g}"
            w = fm.horizontalAdvance(label)
            legend_x -= w + 12
            p.setPen(col)
            p.drawText(QRectF(legend_x, h + 2, w + 6, h), Qt.AlignmentFlag.AlignLeft, label)
        p.end()
