"""Every quantization type in one table: bits per weight, the output size (llama.cpp's dry run where computed,
else bits per weight x parameters, labelled which), how the type uses an importance matrix, and a note (the
recommended type; caveats on types that make little sense for a dense Gemma). Each type has a check box:
the checked types are the rungs of a quant ladder ("Compare selected types")."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from medcal_gui.core.units import format_bytes
from medcal_gui.presenters.quantize_facts import estimate_bytes
from medcal_gui.quantize.quant_advice import caveat, default_ladder_types, recommended_type
from medcal_gui.quantize.quant_types import QuantType, all_quant_types
from medcal_gui.ui.widgets.model_card import colour

COLUMNS = ("Type", "Bits/wt", "Size", "Imatrix", "Note")
IMATRIX_WORDS = {"ignores": "ignores", "benefits": "benefits", "requires": "requires"}
IMATRIX_COLOUR = {"ignores": "info", "benefits": "ok", "requires": "warn"}



class QuantTable(QTableWidget):
    type_changed = Signal(str)
    checked_changed = Signal(list)  # the checked type names, in table order

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("quant_table")
        self.types = all_quant_types()
        self.parameters = 0
        self.exact: dict[str, int] = {}  # type -> llama.cpp's dry-run size
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.setAlternatingRowColors(True)
        h = self.horizontalHeader()
        h.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        h.setStretchLastSection(True)
        self.setRowCount(len(self.types))
        rec, rec_why = recommended_type()
        for row, qt in enumerate(self.types):
            note, tip = "", f"{qt.name}: {qt.description}"
            warn = caveat(qt.name)
            if qt.name == rec:
                note, tip = "recommended", f"{tip}\nRecommended to start with: {rec_why}"
            elif warn:
                note, tip = f"⚠ {warn}", f"{tip}\nCaveat: {warn}"
            items = [QTableWidgetItem(qt.name), QTableWidgetItem(f"{qt.bpw:.2f}"), QTableWidgetItem("—"),
                     QTableWidgetItem(IMATRIX_WORDS[qt.imatrix]), QTableWidgetItem(note)]
            items[1].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            items[2].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            items[3].setForeground(QBrush(QColor(colour(IMATRIX_COLOUR[qt.imatrix], self))))
            if warn:
                items[4].setForeground(QBrush(QColor(colour("warn", self))))
            if qt.is_float:  # a float conversion is no rung of a ladder: no check box
                items[0].setFlags(items[0].flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
            else:
                items[0].setCheckState(Qt.CheckState.Unchecked)
            for col, it in enumerate(items):
                it.setToolTip(tip)
                self.setItem(row, col, it)
        self.set_checked(default_ladder_types())
        self.itemSelectionChanged.connect(self._selection_changed)
        self.itemChanged.connect(self._item_changed)

    def cell(self, row: int, col: int) -> QTableWidgetItem:
        item = self.item(row, col)
        assert item is not None
        return item

    def row_of(self, name: str) -> int:
        return next((i for i, qt in enumerate(self.types) if qt.name == name), -1)

    def select(self, name: str) -> None:
        row = self.row_of(name)
        if row >= 0:
            self.selectRow(row)
            self.scrollToItem(self.cell(row, 0), QAbstractItemView.ScrollHint.PositionAtCenter)

    def current(self) -> QuantType | None:
        rows = self.selectionModel().selectedRows()
        return self.types[rows[0].row()] if rows else None

    def checked_types(self) -> list[str]:
        """The checked types in table order (the ladder sorts them by size itself)."""
        return [qt.name for row, qt in enumerate(self.types)
                if self.cell(row, 0).checkState() == Qt.CheckState.Checked]

    def set_checked(self, names: list[str]) -> None:
        wanted = set(names)
        self.blockSignals(True)
        try:
            for row, qt in enumerate(self.types):
                item = self.cell(row, 0)
                if item.flags() & Qt.ItemFlag.ItemIsUserCheckable:
                    item.setCheckState(Qt.CheckState.Checked if qt.name in wanted else Qt.CheckState.Unchecked)
        finally:
            self.blockSignals(False)
        self.checked_changed.emit(self.checked_types())

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == 0:
            self.checked_changed.emit(self.checked_types())

    def _selection_changed(self) -> None:
        qt = self.current()
        if qt is not None:
            self.type_changed.emit(qt.name)

    def set_parameters(self, n: int) -> None:
        """A new model: estimates from its parameter count; earlier dry-run sizes no longer apply."""
        self.parameters = n
        self.exact.clear()
        self._refresh()

    def set_exact(self, name: str, size: int) -> None:
        self.exact[name] = size
        self._refresh()

    def size_cell(self, name: str) -> str:
        return self.cell(self.row_of(name), 2).text()

    def is_exact(self, name: str) -> bool:
        return name in self.exact

    def scroll_to_current(self) -> None:
        qt = self.current()
        if qt is not None:
            self.scrollToItem(self.cell(self.row_of(qt.name), 0), QAbstractItemView.ScrollHint.PositionAtCenter)

    def _refresh(self) -> None:
        for row, qt in enumerate(self.types):
            item = self.cell(row, 2)
            font = QFont(item.font())
            font.setBold(qt.name in self.exact)
            item.setFont(font)
            if qt.name in self.exact:
                item.setText(format_bytes(self.exact[qt.name]))
                item.setToolTip(f"{qt.name}: llama.cpp's own size estimate (a dry run of the quantizer)")
            elif self.parameters:
                item.setText(f"≈{format_bytes(estimate_bytes(qt, self.parameters))}")
                item.setToolTip(f"{qt.name}: rough estimate, bits per weight × parameters; choose the type "
                                "for llama.cpp's own figure")
            else:
                item.setText("—")
