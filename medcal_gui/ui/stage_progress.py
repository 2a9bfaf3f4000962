"""One stage of a job as a row: its name, a progress bar, and a line of detail (rate, ETA, perplexity)."""

from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QWidget

from medcal_gui.jobs import Progress


def eta_text(s: float | None) -> str:
    if s is None:
        return ""
    s = int(round(s))
    return f"ETA {s // 60}:{s % 60:02d}"


def detail_text(p: Progress) -> str:
    parts = []
    if p.total:
        parts.append(f"{p.done:g}/{p.total:g} {p.unit}".strip())
    if p.rate:
        parts.append(f"{p.rate:,.0f} {p.rate_unit}/s" if p.rate >= 10 else f"{p.rate:.2f} {p.rate_unit}/s")
    if "ppl" in p.extra:
        parts.append(f"PPL {p.extra['ppl']:.2f}")
    if p.eta_s is not None and (p.total is None or p.done < p.total):
        parts.append(eta_text(p.eta_s))
    if p.message and p.total and p.done < p.total:
        parts.append(p.message)
    elif p.message and not p.total:
        parts.append(p.message)
    return " · ".join(parts)


class StageProgress(QWidget):
    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = QLabel(title)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setFormat("%p%")
        self.detail = QLabel("")
        self.detail.setMinimumWidth(10)
        self.fraction: float | None = None
        self.last: Progress | None = None
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
        self.fraction = None
        self.last = None
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.detail.setText(text)

    def set_progress(self, p: Progress) -> None:
        self.last = p
        frac = p.fraction
        if frac is None:
            self.bar.setRange(0, 0)  # busy: the stage has not said how much is left
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(round(frac * 1000))
            self.fraction = frac
        self.detail.setText(detail_text(p))

    def finish(self, text: str) -> None:
        self.bar.setRange(0, 1000)
        self.bar.setValue(1000 if self.fraction is not None else 0)
        self.detail.setText(text)

    def skip(self, text: str) -> None:
        self.fraction = None
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.detail.setText(text)
