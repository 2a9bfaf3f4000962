"""An evaluation's progress and result: a stage bar, a status line, the figures table, a plain reading of the
KL divergence (bands from resources/kld_reading.toml) and the per-token histogram, top to bottom."""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget

from medcal_gui.core.jobs import Progress
from medcal_gui.evaluate.evaluate import ModelEval
from medcal_gui.evaluate.kld_reading import kld_guide
from medcal_gui.ui.views.eval_figures import FiguresTable
from medcal_gui.ui.views.kld_chart import KldHistogram
from medcal_gui.ui.widgets.fields import reserved_label
from medcal_gui.ui.widgets.model_card import colour
from medcal_gui.ui.widgets.stage_progress import StageProgress


class EvalResults(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stage = StageProgress("Evaluate")
        self.label = reserved_label(3)
        self.figures = FiguresTable()
        self.reading = reserved_label(3)
        self.reading.setObjectName("kld_reading")
        self.chart = KldHistogram()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.stage, self.label, self.figures, self.reading):
            lay.addWidget(w)
        lay.addWidget(self.chart, 1)

    def started(self, text: str) -> None:
        self.stage.reset("waiting")
        self.label.setText(text)

    def progress(self, p: Progress) -> None:
        self.stage.set_progress(p)

    def ended(self, text: str) -> None:
        self.stage.stop()
        self.label.setText(text)

    def show_result(self, m: ModelEval, chunks: int) -> None:
        self.figures.set_result(m)
        self.chart.set_values(m.kld_values, m.kld_mean, m.kld_p99)
        self.stage.finish(f"{chunks} chunk" + ("" if chunks == 1 else "s"))
        guide = kld_guide()
        self.reading.setText(f"<span style='color:{colour(guide.band(m.kld_mean).kind, self)}'>●</span> "
                             + guide.reading(m.kld_mean))
