"""The Quantize pane's "Advanced: per-tensor types" editor: one button in the pane (with the rules' summary)
that opens a small window of rows, pattern (a regular expression on tensor names) and ggml type, each with
how many of the model's tensors it sets and their size (quantize/tensor_types.match_tensors, off the GUI
thread, a moment after the last edit), and a Load/Save of llama-quantize's tensor type file. `rules()` are the
valid rows, in order (the first matching rule wins). The rows live in their own window so that the pane keeps
fitting a 1280x720 screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medcal_gui.core.errors import MedcalError
from medcal_gui.core.jobs import CancelToken, ProgressCallback
from medcal_gui.core.units import format_bytes
from medcal_gui.quantize.tensor_types import (
    RuleMatch,
    TensorTypeRule,
    ggml_type_names,
    match_tensors,
    override_warnings,
    parse_tensor_type,
    read_tensor_type_file,
    write_tensor_type_file,
)
from medcal_gui.ui.jobs.background import Failed, LatestJob
from medcal_gui.ui.widgets.model_card import colour
from medcal_gui.ui.workbench import Workbench

PATTERN, TYPE, TENSORS, SIZE = range(4)
# the types worth offering first; the rest of ggml's follow
COMMON = ("q8_0", "q6_K", "q5_K", "q4_K", "q3_K", "q2_K", "iq4_xs", "iq4_nl", "iq3_s", "iq3_xxs", "iq2_xxs",
          "q5_0", "q4_0", "f16", "bf16", "f32")



class TensorTypesEditor(QWidget):
    changed = Signal()  # the rules changed
    matched = Signal()  # the counts are up to date

    def __init__(self, bench: Workbench, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model: Path | None = None
        self.matches: list[RuleMatch] = []
        self.errors: dict[int, str] = {}  # row -> why it is ignored
        self._matcher = LatestJob(bench, "Matching tensor patterns", self)
        names = ggml_type_names()
        self.types = [t for t in COMMON if t in names] + [t for t in names if t not in COMMON]

        self.toggle = QPushButton()
        self.toggle.clicked.connect(lambda: self.set_expanded(True))
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)  # typing a pattern asks once, after the last key
        self._timer.timeout.connect(self._request)
        self.body = QDialog(self)
        self.body.setWindowTitle("Advanced: per-tensor types")
        self.body.resize(620, 360)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Pattern", "Type", "Tensors", "Size"])
        self.table.verticalHeader().setVisible(False)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(PATTERN, QHeaderView.ResizeMode.Stretch)
        for c in (TYPE, TENSORS, SIZE):
            head.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(self.table.fontMetrics().lineSpacing() * 5)
        self.table.setToolTip("Each pattern is a regular expression searched in the tensor names (e.g. attn_v, "
                              r"blk\.[0-3]\.ffn_down); a tensor takes the type of the first row that matches.")
        self.table.itemChanged.connect(lambda *_: self._edited())
        self.add_btn = QPushButton("Add")
        self.remove_btn = QPushButton("Remove")
        self.load_btn = QPushButton("Load…")
        self.save_btn = QPushButton("Save…")
        self.add_btn.clicked.connect(lambda: self.add_row())
        self.remove_btn.clicked.connect(self.remove_row)
        self.load_btn.clicked.connect(self._load)
        self.save_btn.clicked.connect(self._save)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (self.add_btn, self.remove_btn, self.load_btn, self.save_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.body.hide)
        bl = QVBoxLayout(self.body)
        bl.addWidget(self.table, 1)
        bl.addLayout(buttons)
        bl.addWidget(self.status)
        bl.addWidget(close)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.toggle)
        self._show_header()

    # -- rows ---------------------------------------------------------------------------------------------
    def set_expanded(self, on: bool) -> None:
        """Open (or close) the rules' window."""
        if on:
            self.body.show()
            self.body.raise_()
        else:
            self.body.hide()
        self._show_header()

    def add_row(self, pattern: str = "", qtype: str = "q8_0") -> int:
        row = self.table.rowCount()
        self.table.blockSignals(True)
        self.table.insertRow(row)
        self.table.setItem(row, PATTERN, QTableWidgetItem(pattern))
        combo = QComboBox()
        combo.addItems(self.types)
        combo.setCurrentText(qtype if qtype in self.types else "q8_0")
        combo.currentTextChanged.connect(lambda *_: self._edited())
        self.table.setCellWidget(row, TYPE, combo)
        for c in (TENSORS, SIZE):
            item = QTableWidgetItem("")
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, c, item)
        self.table.blockSignals(False)
        self._edited()
        return row

    def remove_row(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            row = self.table.rowCount() - 1
        if row >= 0:
            self.table.removeRow(row)
            self._edited()

    def set_rules(self, rules: list[TensorTypeRule]) -> None:
        self.table.setRowCount(0)
        for r in rules:
            self.add_row(r.pattern, r.type)
        self._edited()

    def type_combo(self, row: int) -> QComboBox:
        w = self.table.cellWidget(row, TYPE)
        assert isinstance(w, QComboBox)
        return w

    def _parsed(self) -> list[tuple[int, TensorTypeRule]]:
        self.errors = {}
        out: list[tuple[int, TensorTypeRule]] = []
        for row in range(self.table.rowCount()):
            item = self.table.item(row, PATTERN)
            pattern = item.text().strip() if item is not None else ""
            if not pattern:
                continue
            try:
                out.append((row, parse_tensor_type(f"{pattern}={self.type_combo(row).currentText()}",
                                                   f"per-tensor types, row {row + 1}")))
            except MedcalError as exc:
                self.errors[row] = exc.message
        return out

    def rules(self) -> list[TensorTypeRule]:
        """The rows with a valid pattern, in order (a row with a bad one is shown as ignored)."""
        return [r for _, r in self._parsed()]

    # -- matching -----------------------------------------------------------------------------------------
    def set_model(self, path: Path | None) -> None:
        self.model = path
        self._edited()

    def _edited(self) -> None:
        parsed = self._parsed()
        self.matches = []
        pending = {row for row, _ in parsed} if self.model else set()
        for row in range(self.table.rowCount()):
            self._cell(row, TENSORS, "…" if row in pending else "")
            self._cell(row, SIZE, "")
        for row, msg in self.errors.items():
            self._cell(row, TENSORS, "ignored", msg, bad=True)
        self._show_header()
        self.changed.emit()
        self._timer.start()

    def _request(self) -> None:
        parsed = self._parsed()
        if self.model is None or not parsed:
            self.status.setText("" if parsed or self.errors else "No rules: every tensor takes the type's mixture.")
            self.matched.emit()
            return
        model, rules, rows = self.model, [r for _, r in parsed], [row for row, _ in parsed]

        def job(progress: ProgressCallback, cancel: CancelToken) -> Any:
            return model, rows, match_tensors(model, rules)

        self._matcher.request(job, self._matched)

    def _matched(self, res: Any) -> None:
        if isinstance(res, Failed):
            self.status.setText(f"<span style='color:{colour('bad', self)}'>{res.message}</span>")
            self.matched.emit()
            return
        if res is None:
            return
        model, rows, matches = res
        if model != self.model or [r for _, r in self._parsed()] != [m.rule for m in matches]:
            return  # edited since; a newer request is on its way
        self.matches = matches
        for row, m in zip(rows, matches, strict=True):
            self._cell(row, TENSORS, str(len(m.tensors)), "\n".join(m.tensors[:40]), bad=not m.tensors)
            sizes = f"{format_bytes(m.input_bytes)} → {format_bytes(m.output_bytes)}"
            self._cell(row, SIZE, sizes if m.tensors else "",
                       "at the input → in the output (estimated from the type's row size)")
        notes = override_warnings(matches)
        self.status.setText("<br>".join(f"<span style='color:{colour('warn', self)}'>⚠ {n}</span>" for n in notes))
        self._show_header()
        self.matched.emit()

    def _cell(self, row: int, col: int, text: str, tip: str = "", bad: bool = False) -> None:
        item = self.table.item(row, col)
        if item is None:
            return
        self.table.blockSignals(True)
        item.setText(text)
        item.setToolTip(tip)
        if bad:
            item.setForeground(QColor(colour("bad", self)))
        else:
            item.setData(Qt.ItemDataRole.ForegroundRole, None)
        self.table.blockSignals(False)

    def _show_header(self) -> None:
        n = len(self.rules())
        taken = sum(len(m.tensors) for m in self.matches)
        extra = f" ({n} rule{'s' if n != 1 else ''}" + (f", {taken} tensors" if self.matches else "") + ")" if n else ""
        self.toggle.setText("Advanced: per-tensor types" + extra + "…")

    # -- files --------------------------------------------------------------------------------------------
    def _load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a tensor type file", "",
                                              "Tensor type files (*.txt);;All files (*)")
        if path:
            self.load(Path(path))

    def load(self, path: Path) -> bool:
        try:
            self.set_rules(read_tensor_type_file(path))
        except MedcalError as exc:
            self.status.setText(f"<span style='color:{colour('bad', self)}'>{exc.message}</span>")
            return False
        return True

    def _save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the tensor type file", "tensor-types.txt",
                                              "Tensor type files (*.txt);;All files (*)")
        if path:
            self.save(Path(path))

    def save(self, path: Path) -> bool:
        try:
            write_tensor_type_file(path, self.rules())
        except MedcalError as exc:
            self.status.setText(f"<span style='color:{colour('bad', self)}'>{exc.message}</span>")
            return False
        self.status.setText(f"Saved {path} (llama-quantize --tensor-type-file reads it as is).")
        return True
