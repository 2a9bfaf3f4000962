"""Step 1: Narratives. Load files or folders, see how each was decoded (and force another encoding), browse
and filter the records, read a narrative, and jump from an error or PHI warning to its record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
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

from medcal_gui.core.jobs import CancelToken, ProgressCallback
from medcal_gui.core.resources import samples_dir
from medcal_gui.dataset.reading.loaded import LoadedInputs, load_inputs
from medcal_gui.dataset.reading.loader import SPLITS, LoadOptions
from medcal_gui.dataset.records import POPULATIONS
from medcal_gui.ui import dialogs
from medcal_gui.ui.hints import gui_hint
from medcal_gui.ui.panes.base import Pane
from medcal_gui.ui.widgets.table_models import (
    ENCODINGS,
    KEY_ROLE,
    SOURCE_ROLE,
    FileTableModel,
    RecordFilterProxy,
    RecordTableModel,
)
from medcal_gui.ui.workbench import Workbench

__all__ = ["NarrativesPane", "load_inputs"]  # load_inputs: the core's load job, which the pane runs
SPLIT_HELP = {"headers": "Each record starts with a 'Below is a <topic> topic:' line (the narrative format).",
              "paragraphs": "Plain text: records are separated by blank lines."}


def encoding_combo_width() -> int:
    """The "Decode as" column's width: the widest encoding name with the combo's arrow and frame."""
    probe = QComboBox()
    probe.setEditable(True)
    probe.addItems(list(ENCODINGS))
    probe.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    return probe.sizeHint().width() + 8


class EncodingDelegate(QStyledItemDelegate):
    """An editable combo for the "Decode as" column; a choice is committed at once."""

    def createEditor(self, parent: QWidget, option: Any, index: QModelIndex) -> QWidget:  # noqa: N802
        combo = QComboBox(parent)
        combo.setEditable(True)
        combo.addItems(list(ENCODINGS))
        combo.view().setMinimumWidth(combo.view().sizeHintForColumn(0) + 24)  # the list shows whole names
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
        self._syncing = False  # set while the split/text-field controls follow a load (no reload)
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
        hh.setSectionResizeMode(FileTableModel.OVERRIDE, QHeaderView.ResizeMode.Fixed)
        hh.resizeSection(FileTableModel.OVERRIDE, encoding_combo_width())
        self.files.modelReset.connect(self._open_override_editors)

        # How files are split into records and which JSONL/CSV field holds the narrative (a change reloads).
        self.split_combo = QComboBox()
        for name in SPLITS:
            self.split_combo.addItem(name, name)
            self.split_combo.setItemData(self.split_combo.count() - 1, SPLIT_HELP.get(name, name),
                                         Qt.ItemDataRole.ToolTipRole)
        self.split_combo.setToolTip("How a .txt file is split into records: " + " ".join(SPLIT_HELP.values()))
        self.split_combo.currentIndexChanged.connect(lambda _i: self._options_changed())
        self.text_field = QLineEdit("text")
        self.text_field.setPlaceholderText("text")
        self.text_field.setMaximumWidth(140)
        self.text_field.setToolTip("The JSONL field or CSV column that holds the narrative (Enter reloads).")
        self.text_field.editingFinished.connect(self._options_changed)
        files_head = QHBoxLayout()
        files_head.addWidget(QLabel("<b>Input files</b>"))
        files_head.addStretch(1)
        files_head.addWidget(QLabel("Split .txt by"))
        files_head.addWidget(self.split_combo)
        files_head.addSpacing(12)
        files_head.addWidget(QLabel("Text field (.jsonl, .csv)"))
        files_head.addWidget(self.text_field)
        files_box = QWidget()
        fl = QVBoxLayout(files_box)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.addLayout(files_head)
        fl.addWidget(self.file_view)

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
        left.addWidget(files_box)
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
        main.setStretchFactor(0, 2)
        main.setStretchFactor(1, 1)
        self._main_split = main
        self._sized = False
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(main, 1)
        for sig in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset,
                    self.proxy.layoutChanged):
            sig.connect(self._update_shown)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._sized and self.width() > 0:  # sizes set before the first show are not kept
            self._sized = True
            total = sum(self._main_split.sizes()) or self.width()
            self._main_split.setSizes([total * 2 // 3, total - total * 2 // 3])  # file names and ids need room

    # -- loading ------------------------------------------------------------------------------------------
    def current_options(self) -> LoadOptions:
        """The split and text field the controls show, with the loaded data's encoding choices."""
        base = self.bench.options
        return replace(base, split=str(self.split_combo.currentData() or "headers"),
                       text_field=self.text_field.text().strip() or "text")

    def load_paths(self, paths: Sequence[Path | str], options: LoadOptions | None = None) -> bool:
        """Load files/folders in the worker (replacing what is shown); False when a job is running."""
        inputs = [Path(p) for p in paths]
        if not inputs:
            return False
        opts = options or replace(self.current_options(), encodings=())
        title = f"Loading {inputs[0].name}" + (f" and {len(inputs) - 1} more" if len(inputs) > 1 else "")

        def job(progress: ProgressCallback, cancel: CancelToken) -> LoadedInputs:
            return load_inputs(inputs, opts, progress, cancel)

        ok = self.bench.start_job(job, title, on_done=self.bench.set_loaded)
        if ok and options is None:
            self.bench.settings.add_recent(inputs)
        return ok

    def open_paths(self, paths: Sequence[Path | str]) -> bool:
        """Open what the user chose: asks whether to add it to the loaded files or replace them."""
        new = [Path(p) for p in paths]
        loaded = self.bench.inputs
        if not new:
            return False
        if loaded and loaded != [samples_dir()]:  # the bundled samples are replaced without a question
            what = f"{len(loaded)} input(s)" if len(loaded) > 1 else loaded[0].name
            choice = dialogs.ask_add_or_replace(self, what, f"{len(new)} more" if len(new) > 1 else new[0].name)
            if choice is None:
                return False
            if choice == dialogs.ADD:
                known = {p.resolve() for p in loaded}
                merged = loaded + [p for p in new if p.resolve() not in known]
                self.bench.settings.add_recent(new)
                return self.load_paths(merged, self.current_options())
        return self.load_paths(new)

    def load_samples(self) -> bool:
        return self.load_paths([samples_dir()], LoadOptions())

    def set_encoding(self, path: Path, encoding: str) -> bool:
        """Re-decode one file with `encoding` ("auto" to detect again), keeping the other files as they are."""
        if not self.bench.loaded:
            return False
        opts = self.bench.options.with_override(Path(path), encoding)
        return self.load_paths(self.bench.inputs, opts)

    def _options_changed(self) -> None:
        """Split or text field changed: reload what is loaded with the new choice."""
        if self._syncing or not self.bench.loaded:
            return
        opts = self.current_options()
        if opts != self.bench.options:
            self.load_paths(self.bench.inputs, opts)

    def open_files_dialog(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(self, "Open narrative files", "",
                                                "Narratives (*.txt *.jsonl *.csv);;All files (*)")
        if names:
            self.open_paths(names)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of narratives")
        if folder:
            self.open_paths([folder])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # -- showing ------------------------------------------------------------------------------------------
    def _show(self, loaded: LoadedInputs) -> None:
        ds = loaded.dataset
        self._syncing = True
        self.split_combo.setCurrentIndex(max(0, self.split_combo.findData(ds.options.split)))
        self.text_field.setText(ds.options.text_field)
        self._syncing = False
        self.files.set_reports(ds.files, ds.options, loaded.issues)
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
            # The list shows a file by its name (a long path would wrap at every "/"); the tooltip has it all.
            message = iss.message + gui_hint(iss.hint)
            shown = message.replace(iss.path, Path(iss.path).name) if iss.path else message
            full = f"{iss.record_id}: {message}" if iss.record_id else message
            item = QListWidgetItem(icons.get(iss.severity, icons["warning"]),
                                   f"{iss.record_id}: {shown}" if iss.record_id else shown)
            item.setData(KEY_ROLE, iss.record_id)
            item.setData(SOURCE_ROLE, iss.path)
            item.setToolTip(full)
            self.issue_list.addItem(item)
        n_err, n_warn = loaded.errors, loaded.warnings
        self.issues_title.setText(f"<b>Errors and warnings</b> ({n_err} errors, {n_warn} warnings)")
        if not loaded.issues:
            self.issue_list.addItem(QListWidgetItem(st.standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton),
                                                    "No errors and no warnings (decoding, PHI)."))
        words = ", ".join(f"{v} {k}" for k, v in sorted(pops.items()))
        self.summary.setText(f"{len(ds.records)} records from {len(ds.files)} file(s)"
                             + (f" ({words})" if words else ""))
        self._update_shown()
        self.set_done(bool(ds.records) and n_err == 0)
        if self.bench.selected_record_id:
            self._select_in_table(self.bench.selected_record_id)
        else:
            self._clear_narrative()
        self.loaded.emit(loaded)

    def _open_override_editors(self) -> None:
        for row in range(self.files.rowCount()):
            self.file_view.openPersistentEditor(self.files.index(row, FileTableModel.OVERRIDE))

    def _update_shown(self, *_: Any) -> None:
        self.shown_label.setText(f"{self.proxy.rowCount()} of {self.records.rowCount()} shown")
        current = self.record_view.selectionModel().currentIndex()
        if self.proxy.rowCount() == 0 or not current.isValid():
            self._clear_narrative()  # nothing selected is shown: the detail view must not keep a stale record

    def _clear_narrative(self) -> None:
        self.narrative_title.setText("<b>Narrative</b>")
        self.narrative.clear()

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

