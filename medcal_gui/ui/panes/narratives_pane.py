"""Step 1: Narratives. Load files or folders, see how each was decoded (and force another encoding), browse
and filter the records, read a narrative, and jump from an error or PHI warning to its record."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from medcal_gui.dataset import phi
from medcal_gui.dataset.loader import LoadOptions, load_dataset, record_errors
from medcal_gui.dataset.records import POPULATIONS
from medcal_gui.jobs import CancelToken, Progress, ProgressCallback
from medcal_gui.resources import samples_dir
from medcal_gui.ui.models import ENCODINGS, KEY_ROLE, FileTableModel, RecordFilterProxy, RecordTableModel
from medcal_gui.ui.panes.base import Pane
from medcal_gui.ui.workbench import Issue, LoadedInputs, Workbench


def load_inputs(inputs: Sequence[Path], options: LoadOptions, progress: ProgressCallback,
                cancel: CancelToken) -> LoadedInputs:
    """The load job: the core's loader, then each record's errors and PHI warnings, tied to its id."""
    ds = load_dataset(inputs, options, progress, cancel)
    cancel.check()
    issues: list[Issue] = []
    record_msgs: set[str] = set()
    n = len(ds.records)
    for i, rec in enumerate(ds.records, start=1):
        for msg in record_errors(rec):
            record_msgs.add(msg)
            issues.append(Issue("error", msg, rec.id))
        for h in phi.scan(rec.text, rec.id, rec.line):
            issues.append(Issue("warning", f"Possible PHI, line {h.line}: {h.label} ({h.text!r}).", rec.id))
        if i % 200 == 0:
            cancel.check()
            progress(Progress("scan", i, n, "checking records", unit="records"))
    file_issues = [Issue("error", e) for e in ds.errors if e not in record_msgs]
    file_issues += [Issue("warning", w) for w in ds.warnings]
    progress(Progress("scan", n, n, f"{n} records", unit="records"))
    return LoadedInputs(list(inputs), ds, file_issues + issues)


class EncodingDelegate(QStyledItemDelegate):
    """An editable combo for the "Decode as" column; a choice is committed at once."""

    def createEditor(self, parent: QWidget, option: Any, index: QModelIndex) -> QWidget:  # noqa: N802
        combo = QComboBox(parent)
        combo.setEditable(True)
        combo.addItems(list(ENCODINGS))
        combo.activated.connect(lambda _i, c=combo: self.commitData.emit(c))
        combo.lineEdit().editingFinished.connect(lambda c=combo: self.commitData.emit(c))
        return combo

    def setEditorData(self, editor: QWidget, index: QModelIndex) -> None:  # noqa: N802
        assert isinstance(editor, QComboBox)
        editor.setCurrentText(str(index.data(Qt.ItemDataRole.EditRole)))

    def setModelData(self, editor: QWidget, model: Any, index: QModelIndex) -> None:  # noqa: N802
        assert isinstance(editor, QComboBox)
        model.setData(index, editor.currentText(), Qt.ItemDataRole.EditRole)


class NarrativesPane(Pane):
    key = "narratives"
    title = "Narratives"

    loaded = Signal(object)  # LoadedInputs, after the tables show it

    def __init__(self, bench: Workbench, parent: QWidget | None = None) -> None:
        super().__init__(bench, parent)
        self.setAcceptDrops(True)
        self.files = FileTableModel(self)
        self.files.override_requested.connect(self.set_encoding)
        self.records = RecordTableModel(self)
        self.proxy = RecordFilterProxy(self)
        self.proxy.setSourceModel(self.records)
        self._build()
        bench.dataset_changed.connect(self._show)
        bench.record_selected.connect(self._select_in_table)

    # -- layout -------------------------------------------------------------------------------------------
    def _build(self) -> None:
        st = self.style()
        self.open_files_btn = QPushButton(st.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton),
                                          "Open files…")
        self.open_folder_btn = QPushButton(st.standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon),
                                           "Open folder…")
        self.samples_btn = QPushButton("Load samples")
        self.open_files_btn.clicked.connect(self.open_files_dialog)
        self.open_folder_btn.clicked.connect(self.open_folder_dialog)
        self.samples_btn.clicked.connect(self.load_samples)
        self.summary = QLabel("Drop narrative files (.txt, .jsonl, .csv) or folders here.")
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setWordWrap(True)
        top = QHBoxLayout()
        for w in (self.open_files_btn, self.open_folder_btn, self.samples_btn):
            top.addWidget(w)
        top.addWidget(self.summary, 1)

        self.file_view = QTableView()
        self.file_view.setModel(self.files)
        self.file_view.setItemDelegateForColumn(FileTableModel.OVERRIDE, EncodingDelegate(self.file_view))
        self.file_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.file_view.verticalHeader().hide()
        self.file_view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        hh = self.file_view.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(FileTableModel.FILE, QHeaderView.ResizeMode.Stretch)
        hh.setMinimumSectionSize(60)
        self.files.modelReset.connect(self._open_override_editors)

        self.population = QComboBox()
        self.population.addItem("All populations", "")
        for p in POPULATIONS:
            self.population.addItem(p, p)
        self.population.currentIndexChanged.connect(
            lambda _i: self.proxy.set_population(self.population.currentData()))
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search id or narrative…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.set_search)
        self.shown_label = QLabel()
        self.proxy.rowsInserted.connect(self._update_shown)
        self.proxy.rowsRemoved.connect(self._update_shown)
        self.proxy.modelReset.connect(self._update_shown)
        self.proxy.layoutChanged.connect(self._update_shown)
        filt = QHBoxLayout()
        filt.addWidget(self.population)
        filt.addWidget(self.search, 1)
        filt.addWidget(self.shown_label)

        self.record_view = QTableView()
        self.record_view.setModel(self.proxy)
        self.record_view.setSortingEnabled(True)
        self.record_view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # source order until asked
        self.record_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.record_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.record_view.verticalHeader().hide()
        self.record_view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.record_view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        rh = self.record_view.horizontalHeader()
        rh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        rh.setSectionResizeMode(RecordTableModel.ID, QHeaderView.ResizeMode.Stretch)
        self.record_view.selectionModel().currentRowChanged.connect(self._record_clicked)

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(_titled("Input files", self.file_view))
        rec_box = QWidget()
        rl = QVBoxLayout(rec_box)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(QLabel("<b>Records</b>"))
        rl.addLayout(filt)
        rl.addWidget(self.record_view)
        left.addWidget(rec_box)
        left.setSizes([160, 440])

        self.narrative = QPlainTextEdit()
        self.narrative.setReadOnly(True)
        self.narrative_title = QLabel("<b>Narrative</b>")
        self.narrative_title.setWordWrap(True)  # a long title must not set the splitter's minimum width
        self.issue_list = QListWidget()
        self.issue_list.setWordWrap(True)
        self.issue_list.setIconSize(QSize(16, 16))
        self.issue_list.itemClicked.connect(self._issue_clicked)
        self.issue_list.itemActivated.connect(self._issue_clicked)
        self.issues_title = QLabel("<b>Errors and warnings</b>")
        right = QSplitter(Qt.Orientation.Vertical)
        nb = QWidget()
        nl = QVBoxLayout(nb)
        nl.setContentsMargins(0, 0, 0, 0)
        nl.addWidget(self.narrative_title)
        nl.addWidget(self.narrative)
        right.addWidget(nb)
        ib = QWidget()
        il = QVBoxLayout(ib)
        il.setContentsMargins(0, 0, 0, 0)
        il.addWidget(self.issues_title)
        il.addWidget(self.issue_list)
        right.addWidget(ib)
        right.setSizes([380, 220])

        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(right)
        main.setStretchFactor(0, 3)
        main.setStretchFactor(1, 2)
        self._main_split = main
        self._sized = False
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(main, 1)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._sized and self.width() > 0:  # sizes set before the first show are not kept
            self._sized = True
            total = sum(self._main_split.sizes()) or self.width()
            self._main_split.setSizes([total * 3 // 5, total - total * 3 // 5])

    # -- loading ------------------------------------------------------------------------------------------
    def load_paths(self, paths: Sequence[Path | str], options: LoadOptions | None = None) -> bool:
        """Load files/folders in the worker (replacing what is shown); False when a job is running."""
        inputs = [Path(p) for p in paths]
        if not inputs:
            return False
        opts = options or LoadOptions()
        title = f"Loading {inputs[0].name}" + (f" and {len(inputs) - 1} more" if len(inputs) > 1 else "")

        def job(progress: ProgressCallback, cancel: CancelToken) -> LoadedInputs:
            return load_inputs(inputs, opts, progress, cancel)

        ok = self.bench.start_job(job, title, on_done=self.bench.set_loaded)
        if ok and options is None:
            self.bench.settings.add_recent(inputs)
        return ok

    def load_samples(self) -> bool:
        return self.load_paths([samples_dir()], LoadOptions())

    def set_encoding(self, path: Path, encoding: str) -> bool:
        """Re-decode one file with `encoding` ("auto" to detect again), keeping the other files as they are."""
        if not self.bench.loaded:
            return False
        opts = self.bench.options.with_override(Path(path), encoding)
        return self.load_paths(self.bench.inputs, opts)

    def open_files_dialog(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(self, "Open narrative files", "",
                                                "Narratives (*.txt *.jsonl *.csv);;All files (*)")
        if names:
            self.load_paths(names)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of narratives")
        if folder:
            self.load_paths([folder])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.load_paths(paths)

    # -- showing ------------------------------------------------------------------------------------------
    def _show(self, loaded: LoadedInputs) -> None:
        ds = loaded.dataset
        self.files.set_reports(ds.files, ds.options)
        per_record: dict[str, list[str]] = {}
        for iss in loaded.issues:
            if iss.record_id:
                per_record.setdefault(iss.record_id, []).append(iss.message)
        self.records.set_records(ds.records, per_record)
        pops = ds.populations()
        for i in range(1, self.population.count()):
            p = self.population.itemData(i)
            self.population.setItemText(i, f"{p} ({pops.get(p, 0)})")
        self.issue_list.clear()
        st = self.style()
        icons = {"error": st.standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical),
                 "warning": st.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)}
        for iss in loaded.issues:
            text = f"{iss.record_id}: {iss.message}" if iss.record_id else iss.message
            item = QListWidgetItem(icons.get(iss.severity, icons["warning"]), text)
            item.setData(KEY_ROLE, iss.record_id)
            item.setToolTip(text)
            self.issue_list.addItem(item)
        n_err = sum(1 for i in loaded.issues if i.severity == "error")
        n_warn = len(loaded.issues) - n_err
        self.issues_title.setText(f"<b>Errors and warnings</b> ({n_err} errors, {n_warn} warnings)")
        if not loaded.issues:
            self.issue_list.addItem(QListWidgetItem(st.standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton),
                                                    "No errors and no PHI warnings."))
        words = ", ".join(f"{v} {k}" for k, v in sorted(pops.items()))
        self.summary.setText(f"{len(ds.records)} records from {len(ds.files)} file(s)"
                             + (f" ({words})" if words else ""))
        self._update_shown()
        self.set_done(bool(ds.records) and n_err == 0)
        if self.bench.selected_record_id:
            self._select_in_table(self.bench.selected_record_id)
        self.loaded.emit(loaded)

    def _open_override_editors(self) -> None:
        for row in range(self.files.rowCount()):
            self.file_view.openPersistentEditor(self.files.index(row, FileTableModel.OVERRIDE))

    def _update_shown(self, *_: Any) -> None:
        self.shown_label.setText(f"{self.proxy.rowCount()} of {self.records.rowCount()} shown")

    def _record_clicked(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.bench.select_record(str(current.data(KEY_ROLE)))
            self._show_narrative(str(current.data(KEY_ROLE)))

    def _show_narrative(self, record_id: str) -> None:
        rec = self.bench.record(record_id)
        if rec is None:
            return
        self.narrative_title.setText(f"<b>Narrative {rec.id}</b> — {Path(rec.source).name}, line {rec.line}, "
                                     f"{rec.population}")
        self.narrative.setPlainText(rec.text)

    def _select_in_table(self, record_id: str) -> None:
        row = self.records.row_of(record_id)
        if row < 0:
            return
        src = self.records.index(row, 0)
        idx = self.proxy.mapFromSource(src)
        if not idx.isValid():  # hidden by the filter: clear it so the record can be shown
            self.search.clear()
            self.population.setCurrentIndex(0)
            idx = self.proxy.mapFromSource(src)
        sel = self.record_view.selectionModel()
        if sel.currentIndex() != idx:
            sel.setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                | QItemSelectionModel.SelectionFlag.Rows)
        self.record_view.scrollTo(idx)
        self._show_narrative(record_id)

    def _issue_clicked(self, item: QListWidgetItem) -> None:
        rid = item.data(KEY_ROLE)
        if rid:
            self.bench.select_record(str(rid))
            self._select_in_table(str(rid))

    def ready(self) -> bool:
        return self.bench.loaded is not None and not self.bench.jobs.is_running()


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(QLabel(f"<b>{title}</b>"))
    lay.addWidget(widget)
    return box
