"""One stage of a job as a row: its name, a progress bar, and a line of detail (rate, ETA, perplexity).

The detail comes from `medcal_gui.core.progress_text`, the formatter the status bar uses too. While a stage runs,
a one-second timer counts its ETA down between reports (a chunk can take minutes at 4B), so the figure never
stands still; the row's height is fixed, so a detail appearing or going moves nothing below it.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QSizePolicy, QWidget

from medcal_gui.core.jobs import Progress
from medcal_gui.core.progress_text import detail_text


class StageProgress(QWidget):
    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = QLabel(title)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setFormat("%p%")
        self.detail = QLabel("")
        self.detail.setMinimumWidth(10)
        self.detail.setFixedHeight(self.detail.fontMetrics().height() + 2)  # reserved: nothing jumps
        self.detail.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.fraction: float | None = None
        self.last: Progress | None = None
        self._reported_at = 0.0
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._refresh)
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setVerticalSpacing(1)
        lay.addWidget(self.name, 0, 0)
        lay.addWidget(self.bar, 0, 1)
        lay.addWidget(self.detail, 1, 1)
        lay.setColumnStretch(1, 1)
        self.name.setMinimumWidth(self.name.fontMetrics().horizontalAdvance("Importance matrix "))
        self.reset()

    def reset(self, text: str = "") -> None:
        self._tick.stop()
        self.state = "waiting" if text else "idle"  # idle, waiting, running, done, skipped
        self.fraction = None
        self.last = None
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.set_detail(text)

    def set_detail(self, text: str) -> None:
        self.detail.setText(text)
        self.detail.setToolTip(text)

    def set_progress(self, p: Progress) -> None:
        self.last = p
        self.state = "running"
        self._reported_at = time.monotonic()
        frac = p.fraction
        if frac is None:
            self.bar.setRange(0, 0)  # busy: the stage has not said how much is left
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(round(frac * 1000))
            self.fraction = frac
        self._refresh()
        if frac is not None and frac < 1:
            self._tick.start()
        else:
            self._tick.stop()

    def _refresh(self) -> None:
        if self.last is not None:
            self.set_detail(detail_text(self.last, time.monotonic() - self._reported_at))

    def finish(self, text: str) -> None:
        self._tick.stop()
        self.state = "done"
        self.bar.setRange(0, 1000)
        self.bar.setValue(1000 if self.fraction is not None else 0)
        self.set_detail(text)

    def skip(self, text: str) -> None:
        self._tick.stop()
        self.state = "skipped"
        self.fraction = None
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.set_detail(text)

    def stop(self, text: str = "stopped") -> None:
        """The job ended before this stage finished."""
        self._tick.stop()
        if self.state == "running":
            if self.bar.maximum() == 0:  # a busy bar must not go on moving after the job ended
                self.bar.setRange(0, 1000)
                self.bar.setValue(0)
            self.set_detail(text)
        elif self.state == "waiting":
            self.set_detail("not run")
        self.state = "stopped" if self.state in ("running", "waiting") else self.state
