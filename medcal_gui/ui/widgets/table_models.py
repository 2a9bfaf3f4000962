"""Table models for the Narratives pane: input files, records, and the record filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)

from medcal_gui.dataset.reading.loaded import Issue
from medcal_gui.dataset.reading.loader import FileReport, LoadOptions
from medcal_gui.dataset.records import Record
from medcal_gui.ui.hints import gui_hint

# What the "Decode as" column offers; any Python codec name typed by hand works too.
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "cp1252", "latin-1", "iso-8859-15", "utf-16", "utf-32",
             "ascii", "mac-roman", "cp850")
DISPLAY = Qt.ItemDataRole.DisplayRole
EDIT = Qt.ItemDataRole.EditRole
TOOLTIP = Qt.ItemDataRole.ToolTipRole
ALIGN = Qt.ItemDataRole.TextAlignmentRole
KEY_ROLE = Qt.ItemDataRole.UserRole + 1  # the file's path / the record's id
SOURCE_ROLE = Qt.ItemDataRole.UserRole + 2  # the input file an issue is about
# Python's codec names for what users call them (the core reports a forced latin-1 as "iso8859-1").
_FRIENDLY = {"iso8859-1": "latin-1", "latin_1": "latin-1", "iso8859-15": "latin-9", "mac-roman": "mac-roman"}
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

Index = QModelIndex | QPersistentModelIndex


def encoding_name(codec: str) -> str:
    return _FRIENDLY.get(codec, codec)


class _ColumnsModel(QAbstractTableModel):
    """A flat table whose header is `COLUMNS` and whose rows are the list `_rows()` returns."""

    COLUMNS: tuple[str, ...] = ()

    def _rows(self) -> list[Any]:
        raise NotImplementedError

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows())

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = DISPLAY) -> Any:  # noqa: N802
        if role == DISPLAY and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None


class FileTableModel(_ColumnsModel):
    """One row per input file: how it was decoded, its errors and warnings (decoding problems with their source
    line among them), and a "Decode as" override cell."""

    COLUMNS = ("File", "Encoding", "Detected by", "Confidence", "Records", "Errors", "Warnings", "Decode as")
    FILE, ENCODING, METHOD, CONFIDENCE, RECORDS, ERRORS, WARNINGS, OVERRIDE = range(8)

    override_requested = Signal(object, str)  # Path, codec name ("auto" removes the override)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.reports: list[FileReport] = []
        self.options = LoadOptions()
        self.issues: dict[str, list[Issue]] = {}

    def set_reports(self, reports: list[FileReport], options: LoadOptions,
                    issues: list[Issue] | None = None) -> None:
        """Show `reports`; `issues` (the load's, each tied to its source file) fill Errors and Warnings."""
        self.beginResetModel()
        self.reports = list(reports)
        self.options = options
        self.issues = {}
        if issues is None:  # only the file reports' own errors are known
            issues = [Issue("error", e, str(r.path)) for r in reports for e in r.errors]
        for iss in issues:
            if iss.path:
                self.issues.setdefault(iss.path, []).append(iss)
        self.endResetModel()

    def file_issues(self, row: int, severity: str) -> list[Issue]:
        """The errors (severity "error") or warnings (anything else) of the file in `row`."""
        return [i for i in self.issues.get(str(self.reports[row].path), [])
                if (i.severity == "error") == (severity == "error")]

    def _rows(self) -> list[Any]:
        return self.reports

    def flags(self, index: Index) -> Qt.ItemFlag:
        f = super().flags(index)
        return f | Qt.ItemFlag.ItemIsEditable if index.column() == self.OVERRIDE else f

    def data(self, index: Index, role: int = DISPLAY) -> Any:
        if not index.isValid():
            return None
        rep = self.reports[index.row()]
        col = index.column()
        info = rep.encoding
        if role == KEY_ROLE:
            return rep.path
        if role in (DISPLAY, EDIT):
            if col == self.FILE:
                return rep.path.name
            if col == self.ENCODING:
                return encoding_name(info.encoding) if info else "—"
            if col == self.METHOD:
                return info.method if info else "—"
            if col == self.CONFIDENCE:
                return f"{info.confidence:.2f}" if info and info.confidence is not None else "—"
            if col == self.RECORDS:
                return rep.records
            if col == self.ERRORS:
                return len(self.file_issues(index.row(), "error"))
            if col == self.WARNINGS:
                return len(self.file_issues(index.row(), "warning"))
            if col == self.OVERRIDE:
                return self.options.encoding_for(rep.path)
        if role == TOOLTIP:
            if col == self.FILE:
                return str(rep.path)
            if col in (self.ENCODING, self.METHOD, self.CONFIDENCE):
                return f"{info.label}: {info.note}" if info else "not decoded"
            if col in (self.ERRORS, self.WARNINGS):
                kind = "error" if col == self.ERRORS else "warning"
                return "\n".join(i.message + gui_hint(i.hint) for i in self.file_issues(index.row(), kind)) \
                    or f"no {kind}s"
            if col == self.OVERRIDE:
                return "Force an encoding for this file (auto: detect it). The file is re-read at once."
        if role == ALIGN and col in (self.CONFIDENCE, self.RECORDS, self.ERRORS, self.WARNINGS):
            return _RIGHT
        return None

    def setData(self, index: Index, value: Any, role: int = EDIT) -> bool:  # noqa: N802
        if role != EDIT or index.column() != self.OVERRIDE:
            return False
        enc = str(value).strip() or "auto"
        rep = self.reports[index.row()]
        if enc == self.options.encoding_for(rep.path):
            return False
        self.override_requested.emit(rep.path, enc)
        return True

    def row_of(self, path: Path) -> int:
        return next((i for i, r in enumerate(self.reports) if r.path == path), -1)


class RecordTableModel(_ColumnsModel):
    COLUMNS = ("ID", "Population", "Characters", "Tokens (est.)", "Warnings")
    ID, POPULATION, CHARS, TOKENS, WARNINGS = range(5)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.records: list[Record] = []
        self.issue_counts: dict[str, int] = {}
        self.issue_text: dict[str, str] = {}

    def set_records(self, records: list[Record], issues: dict[str, list[str]] | None = None) -> None:
        self.beginResetModel()
        self.records = list(records)
        issues = issues or {}
        self.issue_counts = {k: len(v) for k, v in issues.items()}
        self.issue_text = {k: "\n".join(v) for k, v in issues.items()}
        self.endResetModel()

    def _rows(self) -> list[Any]:
        return self.records

    def record(self, row: int) -> Record:
        return self.records[row]

    def row_of(self, record_id: str) -> int:
        return next((i for i, r in enumerate(self.records) if r.id == record_id), -1)

    def data(self, index: Index, role: int = DISPLAY) -> Any:
        if not index.isValid():
            return None
        rec = self.records[index.row()]
        col = index.column()
        if role == KEY_ROLE:
            return rec.id
        if role == DISPLAY:
            return (rec.id, rec.population, rec.chars, rec.tokens_est,
                    self.issue_counts.get(rec.id, 0))[col]
        if role == TOOLTIP:
            if col == self.WARNINGS:
                return self.issue_text.get(rec.id) or "no warnings"
            return f"{rec.source}, line {rec.line}"
        if role == ALIGN and col in (self.CHARS, self.TOKENS, self.WARNINGS):
            return _RIGHT
        return None


class RecordFilterProxy(QSortFilterProxyModel):
    """Filters records by population and by a search over id and narrative (case-insensitive)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.population: str | None = None
        self.search = ""

    def _refilter(self, change: Any) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.9+; invalidateFilter is deprecated there
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def set_population(self, population: str | None) -> None:
        self._refilter(lambda: setattr(self, "population", population or None))

    def set_search(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "search", text.strip().lower()))

    def filterAcceptsRow(self, row: int, parent: Index) -> bool:  # noqa: N802
        model = self.sourceModel()
        if not isinstance(model, RecordTableModel):
            return True
        rec = model.record(row)
        if self.population and rec.population != self.population:
            return False
        return not self.search or self.search in rec.id.lower() or self.search in rec.text.lower()
