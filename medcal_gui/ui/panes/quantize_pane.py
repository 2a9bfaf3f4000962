"""Step 3: Quantize. Pick a model (file, recent, or the demo model) and read its card; calibrate an importance
matrix on the loaded narratives (or load one); pick a type with its size and imatrix needs; run imatrix then
quantize as one cancellable job with a progress bar per stage."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from medcal_gui.budget.limits import model_shape
from medcal_gui.calibrate.tokens import TokenReport, count_tokens
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback
from medcal_gui.core.units import format_bytes
from medcal_gui.dataset.formatting import DEFAULT_LAYOUT
from medcal_gui.dataset.holdout import calibration_text
from medcal_gui.dataset.variants import DEFAULT_VARIANT, Variant, load_variants
from medcal_gui.inspection.model_info import ModelInfo, inspect_model
from medcal_gui.presenters.quantize_facts import (
    cancel_message,
    computes_imatrix,
    imatrix_notes,
    needs_line,
    output_line,
    output_path,
    run_blocker,
    run_needs,
    size_note,
    token_summary,
)
from medcal_gui.quantize.quant_types import get_quant_type
from medcal_gui.ui.jobs.background import Failed, LatestJob
from medcal_gui.ui.model_picker import ModelPicker, model_label
from medcal_gui.ui.panes.base import Pane
from medcal_gui.ui.widgets.fields import reserved_label, spin
from medcal_gui.ui.widgets.model_card import ModelCard, colour
from medcal_gui.ui.widgets.quant_table import QuantTable
from medcal_gui.ui.widgets.stage_progress import StageProgress
from medcal_gui.ui.widgets.tensor_types_editor import TensorTypesEditor
from medcal_gui.ui.workbench import Workbench
from medcal_gui.workflows.calibrate_quantize import (
    CalibrationText,
    RunPlan,
    RunResult,
    estimate_size,
    run_quantize,
)

DEFAULT_TYPE = "Q4_K_M"


class QuantizePane(Pane):
    key = "quantize"
    title = "Quantize"

    quantized = Signal(object)  # RunResult

    def __init__(self, bench: Workbench, parent: QWidget | None = None) -> None:
        super().__init__(bench, parent)
        self.model: Path | None = None
        self.info: ModelInfo | None = None
        self.tokens: TokenReport | None = None
        self.result: RunResult | None = None
        self._tokens_key: tuple[Any, ...] | None = None
        self._dry_notes: dict[str, list[str]] = {}  # type -> the dry run's notes (fallbacks)
        self._refusals: dict[str, str] = {}  # type -> why llama.cpp refuses it without an imatrix
        self._running = ""  # "run" while the status-bar job is ours
        self._inspect = LatestJob(bench, "Reading the model", self)
        self._counter = LatestJob(bench, "Counting tokens", self)
        self._sizer = LatestJob(bench, "Estimating the size", self)
        self._shaper = LatestJob(bench, "Reading the model's shape", self)
        self.shape: Any = None  # budget.limits.ModelShape, for the memory and disk line
        self._build()
        s = bench.settings
        self.table.select(s.quant_type or DEFAULT_TYPE)
        bench.jobs.progress.connect(self._job_progress)
        bench.dataset_changed.connect(lambda _l: self.refresh_tokens())
        start = bench.model_path or (Path(s.model_path) if s.model_path else None)
        if start is not None and start.is_file():
            self.set_model(start)
        else:
            self.card.clear()
            self._update()

    # -- layout -------------------------------------------------------------------------------------------
    def _build(self) -> None:
        s = self.bench.settings
        self.picker = ModelPicker(self.bench)
        self.picker.chosen.connect(self.set_model)

        self.card = ModelCard()

        # importance matrix
        imx = QGroupBox("Importance matrix")
        self.compute_radio = QRadioButton("Compute from the loaded narratives")
        self.file_radio = QRadioButton("Load a file")
        self.none_radio = QRadioButton("None")
        self._mode = QButtonGroup(self)
        for b in (self.compute_radio, self.file_radio, self.none_radio):
            self._mode.addButton(b)
        mode = s.get_str("quantize/imatrix_mode", "compute")
        {"file": self.file_radio, "none": self.none_radio}.get(mode, self.compute_radio).setChecked(True)
        self.imatrix_edit = QLineEdit(s.get_str("quantize/imatrix_file", ""))
        self.imatrix_edit.setPlaceholderText("an imatrix (.gguf or .dat)")
        self.imatrix_btn = QPushButton("Browse…")
        self.imatrix_btn.clicked.connect(self._browse_imatrix)
        self.hold_out = QCheckBox("Keep the last 20% of records out (step 4 evaluates on them)")
        self.hold_out.setChecked(s.get_bool("quantize/hold_out", True))
        self.ctx_spin = spin(16, 8192, s.get_int("quantize/n_ctx", 512), step=64)
        self.chunks_spin = spin(0, 100000, s.get_int("quantize/chunks", 0), "all")
        self.threads_spin = spin(0, os.cpu_count() or 64, s.threads, "auto")
        self.ctx_spin.setToolTip("Tokens per chunk (llama-imatrix -c)")
        self.chunks_spin.setToolTip("Chunks to process at most (llama-imatrix --chunks); all by default")
        self.tokens_label = reserved_label(3)
        g = QGridLayout(imx)
        g.addWidget(self.compute_radio, 0, 0, 1, 4)
        g.addWidget(self.hold_out, 1, 0, 1, 4)
        row = QHBoxLayout()
        for text, w in (("Context", self.ctx_spin), ("Chunks", self.chunks_spin), ("Threads", self.threads_spin)):
            row.addWidget(QLabel(text))
            row.addWidget(w)
        row.addStretch(1)
        g.addLayout(row, 2, 0, 1, 4)
        g.addWidget(self.tokens_label, 3, 0, 1, 4)
        g.addWidget(self.file_radio, 4, 0)
        g.addWidget(self.imatrix_edit, 4, 1, 1, 2)
        g.addWidget(self.imatrix_btn, 4, 3)
        g.addWidget(self.none_radio, 5, 0)
        g.setColumnStretch(1, 1)

        # output and run
        out = QGroupBox("Output")
        self.out_dir_edit = QLineEdit(s.get_str("quantize/out_dir", ""))
        self.out_dir_edit.setPlaceholderText("next to the model")
        self.out_dir_btn = QPushButton("Folder…")
        self.out_dir_btn.clicked.connect(self._browse_out_dir)
        self.out_label = reserved_label(2)
        self.out_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.run_btn = QPushButton("Run: importance matrix, then quantize")
        self.run_btn.setDefault(True)
        self.run_btn.clicked.connect(self.run)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.bench.jobs.cancel)
        self.needs_label = reserved_label(1)  # what the run needs against what is free (issue 16)
        self.imatrix_stage = StageProgress("Importance matrix")
        self.quant_stage = StageProgress("Quantize")
        self.result_label = reserved_label(4)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        ol = QGridLayout(out)
        ol.addWidget(QLabel("Folder"), 0, 0)
        ol.addWidget(self.out_dir_edit, 0, 1)
        ol.addWidget(self.out_dir_btn, 0, 2)
        ol.addWidget(self.out_label, 1, 0, 1, 3)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn, 1)
        buttons.addWidget(self.cancel_btn)
        ol.addLayout(buttons, 2, 0, 1, 3)
        ol.addWidget(self.needs_label, 3, 0, 1, 3)
        ol.addWidget(self.imatrix_stage, 4, 0, 1, 3)
        ol.addWidget(self.quant_stage, 5, 0, 1, 3)
        ol.addWidget(self.result_label, 6, 0, 1, 3)
        ol.setColumnStretch(1, 1)
        middle = QVBoxLayout()
        middle.addWidget(imx)
        middle.addWidget(out)
        middle.addStretch(1)

        # type
        tbox = QGroupBox("Quantization type")
        self.table = QuantTable()
        self.advice = reserved_label(6)
        legend = QLabel("<small>Output size: ≈ marks a rough estimate (bits per weight × parameters); a size "
                        "in <b>bold</b> is llama.cpp's own figure (a dry run), computed for the selected type."
                        "</small>")
        legend.setWordWrap(True)
        tl = QVBoxLayout(tbox)
        tl.addWidget(self.table, 1)
        tl.addWidget(self.advice)
        tl.addWidget(legend)
        self.tensor_types = TensorTypesEditor(self.bench)  # "Advanced: per-tensor types", collapsed
        tl.addWidget(self.tensor_types)
        self._add_ladder(tl)

        body = QHBoxLayout()
        body.addWidget(self.card, 3)
        body.addLayout(middle, 5)
        body.addWidget(tbox, 4)
        lay = QVBoxLayout(self)
        lay.addWidget(self.picker)
        lay.addLayout(body, 1)

        self.table.type_changed.connect(self._type_changed)
        self._mode.buttonToggled.connect(lambda *_: self._inputs_changed())
        self.hold_out.toggled.connect(lambda *_: self._inputs_changed())
        self.ctx_spin.valueChanged.connect(lambda *_: self._inputs_changed())
        self.chunks_spin.valueChanged.connect(lambda *_: self._inputs_changed())
        self.threads_spin.valueChanged.connect(lambda v: setattr(self.bench.settings, "threads", v))
        self.imatrix_edit.textChanged.connect(lambda *_: self._inputs_changed())
        self.out_dir_edit.textChanged.connect(lambda *_: self._inputs_changed())

    def _add_ladder(self, layout: QVBoxLayout) -> None:
        """The quant ladder's "Compare selected types" controls (ui/ladder_view.py) under the type table."""
        from medcal_gui.ui.views.ladder_view import LadderControls

        self.ladder = LadderControls(self)
        layout.addWidget(self.ladder)

    # -- the model ----------------------------------------------------------------------------------------
    def set_model(self, path: Path) -> None:
        if self._running == "run":
            return
        self.model = path
        self.info = None
        self.shape = None
        self.picker.show_path(path)
        self.tensor_types.set_model(path)
        self.card.set_loading(str(path), model_label(path))
        self.table.set_parameters(0)
        self._dry_notes.clear()
        self._refusals.clear()
        self._inspect.request(lambda progress, cancel: inspect_model(path), self._inspected)
        self._update()

    def _inspected(self, res: ModelInfo | Failed) -> None:
        if isinstance(res, Failed):
            self.card.set_error(res.message)
            self._update()
            return
        if self.model is None or Path(res.path) != self.model:
            return
        self.info = res
        self.card.set_info(res, model_label(self.model))
        self.picker.remember(self.model)
        self.table.set_parameters(res.parameter_count)
        self.refresh_tokens()
        self._estimate()
        path = self.model
        self._shaper.request(lambda progress, cancel: model_shape(path), self._shaped)
        self._update()

    def _shaped(self, res: Any) -> None:
        self.shape = None if isinstance(res, Failed) else res
        self._update()

    # -- inputs -------------------------------------------------------------------------------------------
    def variant(self) -> Variant:
        variants = load_variants()
        return variants.get(self.bench.settings.variant) or variants[DEFAULT_VARIANT]

    def layout_name(self) -> str:
        return self.bench.settings.layout or DEFAULT_LAYOUT

    def imatrix_mode(self) -> str:
        return "file" if self.file_radio.isChecked() else "none" if self.none_radio.isChecked() else "compute"

    def calibration(self) -> CalibrationText:
        """The calibration text the run would use (the loaded records, the chosen variant and layout)."""
        return calibration_text(self.bench.records, self.variant(), self.layout_name(), self.hold_out.isChecked())

    def qtype(self) -> str:
        qt = self.table.current()
        return qt.name if qt else DEFAULT_TYPE

    def output_path(self) -> Path | None:
        if self.model is None:
            return None
        return output_path(self.model, self.out_dir_edit.text(), self.qtype())

    def _browse_imatrix(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose an importance matrix", "",
                                              "Importance matrices (*.gguf *.dat);;All files (*)")
        if path:
            self.imatrix_edit.setText(path)
            self.file_radio.setChecked(True)

    def _browse_out_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.out_dir_edit.text())
        if folder:
            self.out_dir_edit.setText(folder)

    def _inputs_changed(self) -> None:
        s = self.bench.settings
        s.set("quantize/imatrix_mode", self.imatrix_mode())
        s.set("quantize/imatrix_file", self.imatrix_edit.text())
        s.set("quantize/hold_out", self.hold_out.isChecked())
        s.set("quantize/n_ctx", self.ctx_spin.value())
        s.set("quantize/chunks", self.chunks_spin.value())
        s.set("quantize/out_dir", self.out_dir_edit.text())
        self.refresh_tokens()
        self._show_tokens()
        self._update()

    def _type_changed(self, name: str) -> None:
        self.bench.settings.quant_type = name
        self._estimate()
        self._update()

    def activated(self) -> None:
        self.refresh_tokens()  # the variant or layout may have changed in step 2
        self.table.scroll_to_current()
        self._update()

    # -- background figures -------------------------------------------------------------------------------
    def refresh_tokens(self) -> None:
        if self.model is None or self.info is None or not self.bench.records:
            self.tokens, self._tokens_key = None, None
            self.tokens_label.setText("Load narratives (step 1) to calibrate on them."
                                      if self.model and not self.bench.records else "")
            return
        model, records, n_ctx = self.model, list(self.bench.records), self.ctx_spin.value()
        variant, layout, hold = self.variant(), self.layout_name(), self.hold_out.isChecked()
        key = (model, id(self.bench.dataset), len(records), variant, layout, hold, n_ctx)
        if key == self._tokens_key:
            return
        self._tokens_key = key
        self.tokens = None
        self.tokens_label.setText("Counting tokens…")

        def job(progress: ProgressCallback, cancel: CancelToken) -> TokenReport:
            cal = calibration_text(records, variant, layout, hold)
            return count_tokens(model, [cal.text], n_ctx=n_ctx, progress=progress, cancel=cancel)

        self._counter.request(job, self._counted)

    def _counted(self, rep: TokenReport | Failed) -> None:
        if isinstance(rep, Failed):
            self.tokens_label.setText(f"<span style='color:{colour('bad', self)}'>{rep.message}</span>")
            self._update()
            return
        self.tokens = rep
        self._show_tokens()
        self._update()

    def _show_tokens(self) -> None:
        """The count's line; the chunks that will run follow the Chunks box without counting again."""
        rep = self.tokens
        if rep is None:
            return
        cal = self.calibration()
        text = token_summary(rep, cal.records, cal.variant, cal.layout, cal.held_out, self.chunks_spin.value())
        bad = [w for w in rep.warnings]
        if not rep.markers_ok:
            bad.insert(0, "the turn markers are not single control tokens")
        if bad:
            text += "<br>" + "<br>".join(f"<span style='color:{colour('warn', self)}'>⚠ {w}</span>" for w in bad)
        self.tokens_label.setText(text)

    def _estimate(self) -> None:
        if self.model is None or self.info is None:
            return
        model, qtype = self.model, self.qtype()
        if qtype in self.table.exact or qtype in self._refusals:
            self._estimated(None)
            return
        self._sizer.request(lambda progress, cancel: (qtype, estimate_size(model, qtype, cancel)),
                            self._estimated)

    def _estimated(self, res: Any) -> None:
        if isinstance(res, tuple):
            qtype, (dry, refusal) = res
            if dry is not None:
                self.table.set_exact(qtype, dry.output_bytes)
                self._dry_notes[qtype] = list(dry.warnings)
            if refusal:
                self._refusals[qtype] = refusal
        self._update()

    # -- state --------------------------------------------------------------------------------------------
    def _run_blocker(self) -> str:
        """Why Run is disabled ("" when it is not)."""
        if self._running or self.picker.preparing:
            return "A job is running."
        if self.model is None or self.info is None:
            return "Choose a model first."
        qt = get_quant_type(self.qtype())
        return run_blocker(qt, self.imatrix_mode(), has_records=bool(self.bench.records),
                           n_chunks=self.tokens.n_chunks if self.tokens else None,
                           imatrix_file=self.imatrix_edit.text(), refusal=self._refusals.get(qt.name, ""))

    def _update(self) -> None:
        qt = get_quant_type(self.qtype())
        mode = self.imatrix_mode()
        notes = imatrix_notes(qt, mode, self._dry_notes.get(qt.name, []))
        if self.info is not None:
            notes.append(size_note(qt, self.info.parameter_count, self.table.exact.get(qt.name)))
        self.advice.setText("<br>".join(f"ℹ {n}" for n in notes if n))
        out = self.output_path()
        self.out_label.setText(output_line(out, qt, mode) if out is not None else "")
        self.needs_label.setText(needs_line(run_needs(self.shape, out, qt, self.ctx_spin.value(), computes_imatrix(
            qt, mode), self.table.exact.get(qt.name))) if self.shape is not None and out is not None else "")
        blocker = self._run_blocker()
        self.run_btn.setEnabled(not blocker)
        self.run_btn.setToolTip(blocker)
        self.run_btn.setText("Run: importance matrix, then quantize" if computes_imatrix(qt, mode)
                             else "Run: quantize")
        idle = not self._running
        for w in (self.picker, self.table, self.tensor_types):
            w.setEnabled(idle)

    def ready(self) -> bool:
        return not (self._inspect.busy() or self._counter.busy() or self._sizer.busy())

    # -- the run ------------------------------------------------------------------------------------------
    def plan(self) -> RunPlan:
        assert self.model is not None
        out = self.output_path()
        assert out is not None
        mode = self.imatrix_mode()
        chunks, threads = self.chunks_spin.value(), self.threads_spin.value()
        return RunPlan(model=self.model, out=out, qtype=self.qtype(), imatrix_mode=mode,
                       calibration=self.calibration() if mode == "compute" else None,
                       imatrix_file=Path(self.imatrix_edit.text().strip()) if mode == "file" else None,
                       n_ctx=self.ctx_spin.value(), n_chunks=chunks or None, threads=threads or None,
                       tensor_types=self.tensor_types.rules())

    def run(self) -> bool:
        blocker = self._run_blocker()
        if blocker:
            self.bench.message.emit(blocker)
            return False
        plan = self.plan()
        self.imatrix_stage.reset("waiting" if plan.computes_imatrix() else "")
        self.quant_stage.reset("waiting")
        self.result_label.setText("")
        if plan.imatrix_mode == "file":
            self.imatrix_stage.skip(f"from {plan.imatrix_file}")
        elif plan.imatrix_mode == "none":
            self.imatrix_stage.skip("none")

        def job(progress: ProgressCallback, cancel: CancelToken) -> RunResult:
            return run_quantize(plan, progress, cancel)

        self._running = "run"
        started = time.time()
        if not self.bench.start_job(job, f"Quantizing to {plan.qtype}", on_done=self._run_done,
                                    on_failed=lambda *_: self._run_ended("Failed: see the message and the log."),
                                    on_cancelled=lambda: self._run_ended(
                                        cancel_message(plan.out, plan.computes_imatrix(), started))):
            self._running = ""
            return False
        self.cancel_btn.setEnabled(True)
        self._update()
        return True

    def _job_progress(self, p: Progress) -> None:
        if self._running != "run":
            return
        if p.stage == "imatrix":
            if p.total == 0:
                self.imatrix_stage.skip(p.message)
            else:
                self.imatrix_stage.set_progress(p)
        elif p.stage == "quantize":
            self.quant_stage.set_progress(p)
        elif p.stage.startswith(("hash", "quantize (")):
            self.quant_stage.set_detail(p.stage + (f": {p.message}" if p.message else "") + "…")

    def _run_ended(self, text: str) -> None:
        self._running = ""
        self.cancel_btn.setEnabled(False)
        for st in (self.imatrix_stage, self.quant_stage):
            st.stop()
        self.result_label.setText(text)
        self._update()

    def _run_done(self, res: RunResult) -> None:
        self.result = res
        q = res.quant
        made = ""
        if res.imatrix is not None and res.imatrix_path is not None:
            im = res.imatrix
            ppl = f" · PPL {im.ppl:.2f}" if im.ppl else ""
            self.imatrix_stage.finish(f"{im.chunks} chunks · {im.tokens_per_s:,.0f} tokens/s{ppl}")
            made = f" and the importance matrix {res.imatrix_path.name}"
        self.quant_stage.finish(f"{q.tensors} tensors in {q.seconds:.1f} s")
        self._run_ended(f"<b>Done</b>: {q.out} ({format_bytes(q.output_bytes)}, sha256 {(q.sha256 or '')[:12]}…){made}."
                        + "".join(f"<br>ℹ {w}" for w in q.warnings))
        self.bench.last_quant = q.out  # read by step 4
        self.bench.settings.set("quantize/last_output", str(q.out))
        self.bench.settings.set("quantize/last_base", str(res.plan.model))
        self.set_done(True)
        self.bench.message.emit(f"Quantized to {q.out}")
        self.quantized.emit(res)
