"""Step 2: Format & preview. Choose the variant and layout, preview the selected record (alone or in two or
three variants side by side), check the whole formatted dataset against the checklist, and export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from medcal_gui.core.jobs import CancelToken, ProgressCallback
from medcal_gui.dataset.export import ExportResult, export_dataset
from medcal_gui.dataset.formatting import DEFAULT_LAYOUT, LAYOUTS, format_record
from medcal_gui.dataset.records import Record
from medcal_gui.dataset.validation.checklist import check_dataset
from medcal_gui.dataset.validation.results import ValidationReport
from medcal_gui.dataset.variants import DEFAULT_VARIANT, Variant, load_variants
from medcal_gui.ui.panes.base import Pane
from medcal_gui.ui.variant_editor import VariantEditor
from medcal_gui.ui.widgets.checklist import ChecklistView
from medcal_gui.ui.widgets.preview import ChatView, SideBySide
from medcal_gui.ui.workbench import LoadedInputs, Workbench

LAYOUT_HELP = {"seed": "the seed document's record, byte for byte",
               "gemma": "Gemma's own chat template (the exact inference-time form)"}


class FormatPane(Pane):
    key = "format"
    title = "Format & preview"

    checklist_ready = Signal(object)  # ValidationReport
    export_done = Signal(object)  # ExportResult

    def __init__(self, bench: Workbench, parent: QWidget | None = None) -> None:
        super().__init__(bench, parent)
        self.variants: dict[str, Variant] = {}
        self.report: ValidationReport | None = None
        self._checker = bench.create_runner()
        self._check_again = False
        self._build()
        saved_layout = bench.settings.layout or DEFAULT_LAYOUT
        self.layout_combo.blockSignals(True)
        self.layout_combo.setCurrentIndex(max(0, self.layout_combo.findData(saved_layout)))
        self.layout_combo.blockSignals(False)
        self.reload_variants(bench.settings.variant or DEFAULT_VARIANT)
        bench.dataset_changed.connect(self._dataset_changed)
        bench.record_selected.connect(self._record_selected)
        if bench.loaded:
            self._dataset_changed(bench.loaded)

    # -- layout -------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.variant_combo = QComboBox()
        self.variant_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.new_btn = QPushButton("New variant…")
        self.copy_btn = QPushButton("Copy…")
        self.new_btn.clicked.connect(lambda: self.edit_variant(copy=False))
        self.copy_btn.clicked.connect(lambda: self.edit_variant(copy=True))
        self.layout_combo = QComboBox()
        for name in LAYOUTS:
            self.layout_combo.addItem(name, name)
            self.layout_combo.setItemData(self.layout_combo.count() - 1, LAYOUT_HELP.get(name, name),
                                          Qt.ItemDataRole.ToolTipRole)
        self.record_combo = QComboBox()
        self.record_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.side_btn = QPushButton("Side by side")
        self.side_btn.setCheckable(True)
        self.columns_combo = QComboBox()
        self.columns_combo.addItem("2 columns", 2)
        self.columns_combo.addItem("3 columns", 3)
        self.columns_combo.setCurrentIndex(1)
        row1 = QHBoxLayout()
        for label, w in (("Variant", self.variant_combo), (None, self.new_btn), (None, self.copy_btn),
                         ("Layout", self.layout_combo)):
            if label:
                row1.addWidget(QLabel(label))
            row1.addWidget(w)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Record"))
        row2.addWidget(self.record_combo)
        row2.addStretch(1)
        row2.addWidget(self.side_btn)
        row2.addWidget(self.columns_combo)
        self.preview = ChatView()
        self.side = SideBySide()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.preview)
        self.stack.addWidget(self.side)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setMinimumHeight(2 * self.fontMetrics().lineSpacing() + 4)  # no jump as it changes
        pv = QWidget()
        pl = QVBoxLayout(pv)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.description)
        pl.addWidget(self.stack, 1)

        self.checklist = ChecklistView()
        self.check_title = QLabel("<b>Validation checklist</b> (the whole formatted dataset)")
        # Wrapped, so a longer title (another variant's name) never widens this side and moves the split.
        self.check_title.setWordWrap(True)
        self.one_file = QRadioButton("Formatted file (the chosen variant)")
        self.seed_set = QRadioButton("Whole seed set")
        self.seed_set.setToolTip("Every variant's file, the narratives in the original format, the dataset log "
                                 "and a README")
        self.one_file.setChecked(True)
        self._mode = QButtonGroup(self)
        self._mode.addButton(self.one_file)
        self._mode.addButton(self.seed_set)
        self.export_btn = QPushButton("Export…")
        self.export_btn.clicked.connect(self.export_dialog)
        self.export_label = QLabel("")
        self.export_label.setWordWrap(True)
        box = QGroupBox("Export")
        bl = QVBoxLayout(box)
        bl.addWidget(self.one_file)
        bl.addWidget(self.seed_set)
        row = QHBoxLayout()
        row.addWidget(self.export_btn)
        row.addWidget(self.export_label, 1)
        bl.addLayout(row)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.check_title)
        rl.addWidget(self.checklist, 1)
        rl.addWidget(box)

        split = QSplitter()
        split.addWidget(pv)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self._split = split
        self._sized = False
        lay = QVBoxLayout(self)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(split, 1)

        self.variant_combo.currentIndexChanged.connect(self._format_changed)
        self.layout_combo.currentIndexChanged.connect(self._format_changed)
        self.record_combo.currentIndexChanged.connect(self._record_combo_changed)
        self.side_btn.toggled.connect(self.set_side_by_side)
        self.columns_combo.currentIndexChanged.connect(
            lambda _i: (self.side.set_column_count(self.columns_combo.currentData()), self.update_preview()))
        for c in self.side.combos:
            c.currentIndexChanged.connect(lambda _i: self.update_preview())
        self.side.set_column_count(3)
        self.columns_combo.setEnabled(False)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._sized and self.width() > 0:  # sizes set before the first show are not kept
            self._sized = True
            total = sum(self._split.sizes()) or self.width()
            self._split.setSizes([total * 3 // 5, total - total * 3 // 5])

    # -- variants and layout ------------------------------------------------------------------------------
    def reload_variants(self, select: str | None = None) -> None:
        self.variants = load_variants()
        current = select or self.variant_name()
        self.variant_combo.blockSignals(True)
        self.variant_combo.clear()
        for v in self.variants.values():
            self.variant_combo.addItem(v.title + ("" if v.builtin else "  (yours)"), v.name)
        self.variant_combo.setCurrentIndex(max(0, self.variant_combo.findData(current)))
        self.variant_combo.blockSignals(False)
        names = list(self.variants)
        self.side.set_variants(list(self.variants.values()), self.side.chosen() if self.side.chosen()
                               and all(n in self.variants for n in self.side.chosen()) else names)
        self._format_changed()

    def variant_name(self) -> str:
        return str(self.variant_combo.currentData() or DEFAULT_VARIANT)

    @property
    def variant(self) -> Variant:
        return self.variants[self.variant_name()]

    @property
    def layout_name(self) -> str:
        return str(self.layout_combo.currentData() or DEFAULT_LAYOUT)

    def set_variant(self, name: str) -> None:
        self.variant_combo.setCurrentIndex(self.variant_combo.findData(name))

    def set_layout(self, name: str) -> None:
        self.layout_combo.setCurrentIndex(self.layout_combo.findData(name))

    def edit_variant(self, copy: bool) -> Variant | None:
        dlg = VariantEditor(self, self.variant if copy else None)
        if dlg.exec() and dlg.saved:
            self.bench.message.emit(f"Saved variant {dlg.saved.name} to {dlg.saved_path}")
            self.reload_variants(dlg.saved.name)
            return dlg.saved
        return None

    def _format_changed(self, *_: Any) -> None:
        if not self.variants:
            return
        v = self.variant
        self.bench.settings.variant = v.name
        self.bench.settings.layout = self.layout_name
        self.description.setText(f"<i>{v.description or v.title}</i> Layout: {self.layout_name} — "
                                 f"{LAYOUT_HELP.get(self.layout_name, '')}.")
        self.update_preview()
        self.refresh_checklist()

    # -- preview ------------------------------------------------------------------------------------------
    def _dataset_changed(self, loaded: LoadedInputs) -> None:
        self.record_combo.blockSignals(True)
        self.record_combo.clear()
        for r in loaded.dataset.records:
            self.record_combo.addItem(r.id, r.id)
        self.record_combo.setCurrentIndex(max(0, self.record_combo.findData(self.bench.selected_record_id)))
        self.record_combo.blockSignals(False)
        self.update_preview()
        self.refresh_checklist()

    def _record_selected(self, record_id: str) -> None:
        i = self.record_combo.findData(record_id)
        if i >= 0 and i != self.record_combo.currentIndex():
            self.record_combo.setCurrentIndex(i)
        self.update_preview()

    def _record_combo_changed(self, _i: int) -> None:
        rid = self.record_combo.currentData()
        if rid:
            self.bench.select_record(str(rid))
            self.update_preview()

    def current_record(self) -> Record | None:
        return self.bench.record(self.record_combo.currentData()) or (
            self.bench.records[0] if self.bench.records else None)

    def update_preview(self) -> None:
        rec = self.current_record()
        if rec is None or not self.variants:
            self.preview.set_text("")
            for v in self.side.views:
                v.set_text("")
            return
        self.preview.set_text(format_record(rec.text, self.variant, self.layout_name))
        for name, view in zip(self.side.chosen(), self.side.visible_views(), strict=True):
            if name in self.variants:
                view.set_text(format_record(rec.text, self.variants[name], self.layout_name))

    def set_side_by_side(self, on: bool, columns: int | None = None) -> None:
        if columns:
            self.columns_combo.setCurrentIndex(self.columns_combo.findData(columns))
        if self.side_btn.isChecked() != on:
            self.side_btn.setChecked(on)  # re-enters through toggled
            return
        self.columns_combo.setEnabled(on)
        self.stack.setCurrentWidget(self.side if on else self.preview)
        self.update_preview()

    # -- checklist ----------------------------------------------------------------------------------------
    def refresh_checklist(self) -> None:
        """Re-validate the whole formatted dataset in the background; the newest request wins."""
        records = self.bench.records
        if not records or not self.variants:
            self.report = None
            self.checklist.set_report(None)
            self.set_done(False)
            return
        if self._checker.is_running():
            self._check_again = True
            self._checker.cancel()
            return
        variant, layout = self.variant, self.layout_name

        def job(progress: ProgressCallback, cancel: CancelToken) -> ValidationReport:
            return check_dataset(records, variant, layout, progress, cancel)

        self._check_again = False
        self._checker.start(job, "Validating", on_done=self._checked, on_cancelled=self._check_ended,
                            on_failed=lambda *_: self._check_ended())
        self.check_title.setText("<b>Validation checklist</b> — checking…")

    def _check_ended(self) -> None:
        if self._check_again:
            self.refresh_checklist()

    def _checked(self, report: ValidationReport) -> None:
        if self._check_again:
            self.refresh_checklist()
            return
        self.report = report
        self.checklist.set_report(report)
        fails = sum(1 for c in report.checks if c.status == "fail") + len(report.errors)
        self.check_title.setText(
            f"<b>Validation checklist</b> — {self.variant.name}, {self.layout_name} layout: "
            + ("all checks pass" if not fails else f"{fails} problem(s)"))
        self.set_done(not self.checklist.has_fail())
        self.checklist_ready.emit(report)

    def ready(self) -> bool:
        return self.report is not None and not self._checker.is_running()

    # -- export -------------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        if not self.bench.loaded:
            self.bench.message.emit("Load narratives first.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export to folder")
        if folder:
            self.export_to(Path(folder), all_variants=self.seed_set.isChecked())

    def export_to(self, folder: Path, all_variants: bool = False) -> bool:
        """Write the formatted file (or the whole seed set) into `folder`, in the worker."""
        if not self.bench.loaded:
            return False
        inputs, options = self.bench.inputs, self.bench.options
        variant, layout = self.variant, self.layout_name

        def job(progress: ProgressCallback, cancel: CancelToken) -> ExportResult:
            return export_dataset(inputs, dest_dir=folder, all_variants=all_variants, variant=variant,
                                  layout=layout, options=options, progress=progress, cancel=cancel)

        self.export_label.setText("Exporting…")
        return self.bench.start_job(job, f"Exporting to {folder}", on_done=self._exported,
                                    on_failed=lambda *_: self.export_label.setText("Export failed."),
                                    on_cancelled=lambda: self.export_label.setText("Export cancelled."))

    def _exported(self, res: ExportResult) -> None:
        self.bench.last_export = res
        names = ", ".join(p.name for p in res.outputs)
        self.export_label.setText(f"Wrote {len(res.outputs)} file(s), {res.records} records: {names}")
        self.export_label.setToolTip("\n".join(str(p) for p in res.outputs))
        self.bench.message.emit(f"Exported {len(res.outputs)} file(s) to {res.outputs[0].parent}")
        self.bench.exported.emit(res)
        self.export_done.emit(res)
