"""The KL-divergence evaluation's figures as a two-column table, each row explained in its tooltip."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from medcal_gui.evaluate.evaluate import ModelEval

# (key, label, format, what it means)
FIGURES = (
    ("ppl_base", "PPL base", "{:.4f}", "Perplexity of the base model on the held-out text"),
    ("ppl_model", "PPL quant", "{:.4f}", "Perplexity of the quant on the same tokens"),
    ("ppl_ratio", "PPL ratio", "{:.4f}", "PPL quant / PPL base: 1 means no loss"),
    ("kld_mean", "KLD mean", "{:.6f}", "Mean KL divergence of the quant's token distribution from the base's"),
    ("kld_median", "KLD median", "{:.6f}", "Median per-token KL divergence"),
    ("kld_p99", "KLD 99th pct", "{:.6f}", "99% of the tokens diverge less than this"),
    ("kld_max", "KLD max", "{:.6f}", "The worst token"),
    ("same_top_pct", "Same top token", "{:.2f} %", "How often the quant's most likely token is the base's"),
    ("rms_dp_pct", "RMS Δp", "{:.3f} %", "Root mean square change of the probability of the right token"),
    ("tokens_scored", "Tokens scored", "{:,}", "Tokens compared (the second half of each chunk)"),
)


class FiguresTable(QTableWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(len(FIGURES), 2, parent)
        self.setObjectName("eval_figures")
        self.setHorizontalHeaderLabels(["Figure", "Value"])
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 4)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setAlternatingRowColors(True)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.rows = {key: i for i, (key, *_) in enumerate(FIGURES)}
        for i, (_key, label, _fmt, tip) in enumerate(FIGURES):
            name = QTableWidgetItem(label)
            name.setToolTip(tip)
            value = QTableWidgetItem("—")
            value.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            value.setToolTip(tip)
            self.setItem(i, 0, name)
            self.setItem(i, 1, value)
        h = self.horizontalHeader().height() + self.verticalHeader().defaultSectionSize() * len(FIGURES) + 4
        self.setFixedHeight(h)

    def set_result(self, m: ModelEval | None) -> None:
        for key, _label, fmt, _tip in FIGURES:
            self._cell(key).setText("—" if m is None else fmt.format(getattr(m, key)))

    def _cell(self, key: str) -> QTableWidgetItem:
        item = self.item(self.rows[key], 1)
        assert item is not None
        return item

    def value(self, key: str) -> str:
        return self._cell(key).text()
