"""The Verify pane's Questions tab: multiple-choice accuracy of base and quant, flips and McNemar's p."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medcal_gui.behaviour.mcq import McqResult, load_questions, run_mcq
from medcal_gui.core.errors import MedcalError
from medcal_gui.core.jobs import CancelToken, ProgressCallback
from medcal_gui.core.resources import samples_dir
from medcal_gui.ui.workbench import Workbench

Models = Callable[[], tuple[Path | None, Path | None]]


class QuestionsView(QWidget):
    def __init__(self, bench: Workbench, models: Models, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bench, self.models = bench, models
        self.result: McqResult | None = None
        self.file_edit = QLineEdit(str(samples_dir() / "questions" / "cardiology_smoke.jsonl"))
        browse = QPushButton("…")
        self.run_btn = QPushButton("Score questions")
        self.summary = QLabel("A MedQA-style JSONL; the shipped file is a 30-question smoke set, not a benchmark.")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["question", "base", "quant"])
        top = QHBoxLayout()
        top.addWidget(QLabel("Questions"))
        top.addWidget(self.file_edit, 1)
        top.addWidget(browse)
        top.addWidget(self.run_btn)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.summary)
        lay.addWidget(self.table, 1)
        browse.clicked.connect(self._browse)
        self.run_btn.clicked.connect(lambda: self.run())

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Question file", self.file_edit.text(), "JSONL (*.jsonl)")
        if path:
            self.file_edit.setText(path)

    def run(self) -> bool:
        base, quant = self.models()
        if not base or not quant:
            self.summary.setText("Choose the quant and its base first.")
            return False
        try:
            questions = load_questions(Path(self.file_edit.text()))
        except MedcalError as exc:
            self.summary.setText(exc.message)
            return False
        threads = self.bench.settings.threads or None

        def job(progress: ProgressCallback, cancel: CancelToken) -> McqResult:
            return run_mcq([base, quant], questions, threads=threads, progress=progress, cancel=cancel)

        self.summary.setText(f"Scoring {len(questions)} questions with {base.name} and {quant.name}…")
        return self.bench.start_job(job, "Scoring questions", on_done=self.set_result,
                                    on_cancelled=lambda: self.summary.setText("Cancelled."))

    def set_result(self, res: McqResult) -> None:
        self.result = res
        a, b = res.models
        f = res.flips[0]
        chance = "not more than chance" if f.p_value >= 0.05 else "more than chance"
        self.summary.setText(f"base {a.accuracy.text()}<br>quant {b.accuracy.text()}<br>lost {len(f.lost)}, "
                             f"gained {len(f.gained)}: exact McNemar p = {f.p_value:.3g} ({chance})")
        flipped = [(x, y) for x, y in zip(a.items, b.items, strict=True) if x.correct != y.correct]
        self.table.setRowCount(len(flipped))
        for r, (x, y) in enumerate(flipped):
            for c, text in enumerate((x.id, "right" if x.correct else "wrong", "right" if y.correct else "wrong")):
                self.table.setItem(r, c, QTableWidgetItem(text))
