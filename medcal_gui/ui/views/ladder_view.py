"""The quant ladder in the window: the "Compare selected types" controls under the Quantize pane's type table,
the job with a progress bar per rung (and one for the shared stages), and the result (table, chart,
recommendation; per rung "Chat with this" and "Reveal file")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medcal_gui.core.errors import InputError
from medcal_gui.core.fsutil import ensure_dir, write_text_atomic
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback
from medcal_gui.core.units import format_bytes, parse_size
from medcal_gui.dataset.holdout import heldout_text
from medcal_gui.evaluate.kld_reading import kld_guide
from medcal_gui.ui.jobs.job_controls import JobControls
from medcal_gui.ui.views.recipe_controls import RecipeControls
from medcal_gui.ui.widgets.screen_fit import fit_to_screen
from medcal_gui.ui.widgets.stage_progress import StageProgress
from medcal_gui.workflows.ladder.ladder import SHARED, run_ladder
from medcal_gui.workflows.ladder.ladder_report import chart_svg
from medcal_gui.workflows.ladder.results import Constraints, LadderResult

COLUMNS = ("Type", "Size", "Bits/wt", "Mean KLD", "KLD 99%", "Same top", "PPL ratio", "pp512 t/s",
           "tg128 t/s", "tg speed-up", "Pareto", "", "")


class LadderProgress(QWidget):
    """One bar for the shared stages (imatrix, base pass, base speed) and one per rung."""

    def __init__(self, types: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.rows = [StageProgress("Shared")] + [StageProgress(t) for t in types]
        for r in self.rows:
            r.reset("waiting")
            lay.addWidget(r)

    def update_from(self, p: Progress) -> None:
        row = int(p.extra.get("rung", SHARED))
        if 0 <= row < len(self.rows):
            self.rows[row].set_progress(replace(p, message=f"{p.stage}: {p.message}"))


def _svg_widget(svg: str) -> QWidget:
    try:
        from PySide6.QtSvgWidgets import QSvgWidget
    except ImportError:  # pragma: no cover - PySide6-Essentials ships QtSvg; a stripped build may not
        lab = QLabel("(the chart needs QtSvg; open ladder.svg in a browser)")
        return lab
    w = QSvgWidget()
    w.load(svg.encode("utf-8"))
    w.setMinimumSize(560, 340)
    return w


class LadderView(QDialog):
    """A finished ladder: table, chart, recommendation and per-rung actions."""

    chat_requested = Signal(object)  # Path of the rung to chat with (the Verify pane's model)

    def __init__(self, res: LadderResult, parent: QWidget | None = None, bench: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("ladder_view")
        self.res = res
        self.setWindowTitle(f"Quant ladder of {Path(res.base['file']).name}")
        rec = res.recommendation
        self.recommendation = QLabel(f"<b>Recommendation</b>: {rec.get('text', '')}<br><small>"
                                     f"{kld_guide().summary}</small>")
        self.recommendation.setWordWrap(True)
        mcq = res.base.get("mcq")
        columns = list(COLUMNS[:-2]) + (["Accuracy", "Lost / gained (p)"] if mcq else []) + ["", ""]
        self.table = QTableWidget(len(res.rungs), len(columns))
        self.table.setObjectName("ladder_table")
        self.table.setHorizontalHeaderLabels(columns)
        self.table.verticalHeader().setVisible(False)
        self.chat_buttons: list[QPushButton] = []
        self.reveal_buttons: list[QPushButton] = []
        for row, r in enumerate(res.rungs):
            cells = [r.type, format_bytes(r.bytes), f"{r.bpw:.2f}", f"{r.kld_mean:.5f}", f"{r.kld_p99:.4f}",
                     f"{r.same_top_pct:.2f} %", f"{r.ppl_ratio:.4f}", f"{r.pp_tokens_per_s:.1f} ± {r.pp_sd:.1f}",
                     f"{r.tg_tokens_per_s:.1f} ± {r.tg_sd:.1f}", f"{r.speedup_tg:.2f}x", "yes" if r.pareto else "no"]
            if mcq:
                cells += [f"{r.mcq_accuracy_pct:.1f} %" if r.mcq_accuracy_pct is not None else "–",
                          f"{r.mcq_lost} / {r.mcq_gained} (p = {r.mcq_p:.3f})" if r.mcq_p is not None else "–"]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if r.type == rec.get("type"):
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                self.table.setItem(row, col, item)
            chat, reveal = QPushButton("Chat with this"), QPushButton("Reveal file")
            chat.clicked.connect(lambda _=False, p=Path(r.file): self.chat_requested.emit(p))
            reveal.clicked.connect(lambda _=False, p=Path(r.file): self.reveal(p))
            self.table.setCellWidget(row, len(cells), chat)
            self.table.setCellWidget(row, len(cells) + 1, reveal)
            self.chat_buttons.append(chat)
            self.reveal_buttons.append(reveal)
        self.table.resizeColumnsToContents()
        self.chart = _svg_widget(chart_svg(res))
        lay = QVBoxLayout(self)
        lay.addWidget(self.recommendation)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.chart, 2)
        self._recipes: list[tuple[str, int, float]] = []
        self.recipe: RecipeControls | None = None
        if bench is not None and res.imatrix:
            self.recipe = RecipeControls(res, bench, self)
            self.recipe.finished.connect(self.add_recipe)
            lay.addWidget(self.recipe)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        lay.addWidget(close)
        fit_to_screen(self, (1100, 760))  # the Close button stays on a 1280x720 screen

    def add_recipe(self, rec: Any) -> None:
        """A finished recipe (RecipeResult): a row in the table, a point in the chart."""
        kld = (rec.kld or {}).get("kld_mean")
        row = self.table.rowCount()
        self.table.insertRow(row)
        cells = ["recipe", format_bytes(rec.bytes), f"{rec.bpw:.2f}", f"{kld:.5f}" if kld is not None else "–"]
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(f"{rec.out.name}: one type per tensor ({rec.recipe_file.name})")
            self.table.setItem(row, col, item)
        chat, reveal = QPushButton("Chat with this"), QPushButton("Reveal file")
        chat.clicked.connect(lambda _=False, p=Path(rec.out): self.chat_requested.emit(p))
        reveal.clicked.connect(lambda _=False, p=Path(rec.out): self.reveal(p))
        self.table.setCellWidget(row, self.table.columnCount() - 2, chat)
        self.table.setCellWidget(row, self.table.columnCount() - 1, reveal)
        self.table.resizeColumnsToContents()
        if kld is not None:
            self._recipes.append((f"recipe {format_bytes(rec.bytes)}", rec.bytes, kld))
            chart = _svg_widget(chart_svg(self.res, self._recipes))
            self.layout().replaceWidget(self.chart, chart)
            self.chart.setParent(None)
            self.chart = chart

    def reveal(self, path: Path) -> bool:
        """Open the rung's folder in the file manager."""
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))


class LadderControls(JobControls):
    """"Compare selected types" and its limits, for the Quantize pane (which it reads its inputs from)."""

    finished = Signal(object)  # LadderResult

    def __init__(self, pane: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ladder_controls")
        self.pane = pane
        self.bench = pane.bench
        s = self.bench.settings
        self.max_size = QLineEdit(s.get_str("ladder/max_size", ""))
        self.max_size.setPlaceholderText("e.g. 2.5GB")
        self.max_kld = QDoubleSpinBox()
        self.max_kld.setDecimals(4)
        self.max_kld.setRange(0.0, 10.0)
        self.max_kld.setSingleStep(0.005)
        self.max_kld.setSpecialValueText("default (0.01)")
        self.max_kld.setValue(s.get_float("ladder/max_kld", 0.0))
        self.min_tg = QDoubleSpinBox()
        self.min_tg.setRange(0.0, 100000.0)
        self.min_tg.setSpecialValueText("any")
        self.min_tg.setValue(s.get_float("ladder/min_tg", 0.0))
        self.reps = QSpinBox()
        self.reps.setRange(1, 50)
        self.reps.setValue(s.get_int("ladder/reps", 5))
        self.reps.setToolTip("Speed: repetitions of pp512 and tg128 after the warm-up (llama-bench -r)")
        self.questions = QLineEdit(s.get_str("ladder/questions", ""))
        self.questions.setObjectName("ladder_questions")
        self.questions.setPlaceholderText("optional: a question file (JSONL) adds accuracy and flips per rung")
        self.button = QPushButton("Compare selected types")
        self.button.setObjectName("ladder_button")
        self.button.setToolTip("Quantize to every checked type with one importance matrix, score each on the "
                               "held-out records against one base pass, time it as llama-bench does, and "
                               "recommend one.")
        self.button.clicked.connect(self.start)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.progress_box = QVBoxLayout()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        limits = QGridLayout()  # two rows of two: fits the pane's right column at 1280x720
        for i, (text, w) in enumerate((("Max size", self.max_size), ("Max KLD", self.max_kld),
                                       ("Min tg t/s", self.min_tg), ("Speed runs", self.reps))):
            limits.addWidget(QLabel(text), i // 2, 2 * (i % 2))
            limits.addWidget(w, i // 2, 2 * (i % 2) + 1)
        limits.setColumnStretch(1, 1)
        limits.setColumnStretch(3, 1)
        grid.addLayout(limits, 0, 0)
        qrow = QHBoxLayout()
        qrow.addWidget(QLabel("Questions"))
        qrow.addWidget(self.questions, 1)
        grid.addLayout(qrow, 1, 0)
        grid.addWidget(self.button, 2, 0)
        grid.addLayout(self.progress_box, 3, 0)
        grid.addWidget(self.status, 4, 0)
        self.progress: LadderProgress | None = None
        self.view: LadderView | None = None
        self.result: LadderResult | None = None
        saved = s.get_str("ladder/types", "")
        if saved:
            pane.table.set_checked([t for t in saved.split(",") if t])
        pane.table.checked_changed.connect(lambda names: s.set("ladder/types", ",".join(names)))
        self.bench.jobs.progress.connect(self._progress)

    def constraints(self) -> Constraints:
        text = self.max_size.text().strip()
        return Constraints(max_kld=self.max_kld.value() or None, max_size=parse_size(text) if text else None,
                           min_tg=self.min_tg.value() or None)

    def _save(self) -> None:
        s = self.bench.settings
        s.set("ladder/max_size", self.max_size.text().strip())
        s.set("ladder/max_kld", self.max_kld.value())
        s.set("ladder/min_tg", self.min_tg.value())
        s.set("ladder/reps", self.reps.value())
        s.set("ladder/questions", self.questions.text().strip())

    def job_inputs(self) -> dict[str, Any]:
        """What run_ladder needs, from the pane; the texts are written into the ladder's folder."""
        pane = self.pane
        types = pane.table.checked_types()
        if pane.model is None:
            raise InputError("Choose a model first: the ladder quantizes it to every checked type.")
        if not types:
            raise InputError("Check at least one type in the table to compare.")
        out = pane.output_path()
        folder = (out.parent if out is not None else pane.model.parent) / f"{pane.model.stem}-ladder"
        records = self.bench.records
        held, n_held = heldout_text(records, pane.variant(), pane.layout_name()) if records else ("", 0)
        if not n_held or not held.strip():
            raise InputError("Load narratives (step 1) with two records or more: the ladder scores each type "
                             "on the held-out records.")
        ensure_dir(folder)
        heldout = folder / "heldout.txt"
        write_text_atomic(heldout, held)
        kw: dict[str, Any] = {"base": pane.model, "heldout": heldout, "types": types, "out_dir": folder,
                              "n_ctx": pane.ctx_spin.value(), "imatrix_chunks": pane.chunks_spin.value() or None,
                              "threads": pane.threads_spin.value() or None, "constraints": self.constraints(),
                              "reps": self.reps.value()}
        qfile = self.questions.text().strip()
        if qfile:
            if not Path(qfile).is_file():
                raise InputError(f"The question file {qfile} does not exist.")
            kw["questions"] = Path(qfile)
        mode = pane.imatrix_mode()
        if mode == "file":
            kw["imatrix"] = Path(pane.imatrix_edit.text().strip())
        elif mode == "compute":
            cal = folder / "calibration.txt"
            write_text_atomic(cal, pane.calibration().text)
            kw["calibration"] = [cal]
        return kw

    def start(self) -> bool:
        try:
            kw = self.job_inputs()
        except InputError as exc:
            self.bench.show_error(exc)
            return False
        self._save()
        if self.progress is not None:
            self.progress.setParent(None)
        self.progress = LadderProgress(kw["types"])
        self.progress_box.addWidget(self.progress)

        def job(progress: ProgressCallback, cancel: CancelToken) -> LadderResult:
            return run_ladder(progress=progress, cancel=cancel, **kw)

        return self.run_job(job, f"Comparing {len(kw['types'])} types", on_done=self._done,
                            running=f"Comparing {', '.join(kw['types'])} in {kw['out_dir']}…",
                            cancelled="Cancelled: the finished rungs are kept and a new run reuses them.")

    def _progress(self, p: Progress) -> None:
        if self._running and self.progress is not None:
            self.progress.update_from(p)

    def _done(self, res: LadderResult) -> None:
        self.result = res
        self._ended(f"<b>Done</b> in {res.seconds:.0f} s: {res.recommendation.get('text', '')}")
        self.view = LadderView(res, self, bench=self.bench)
        self.view.chat_requested.connect(self.chat_with)
        self.view.show()
        self.finished.emit(res)

    def chat_with(self, path: Path) -> None:
        """Make `path` the model step 4 (Verify) verifies and chats with."""
        self.bench.last_quant = path
        self.bench.settings.set("quantize/last_output", str(path))
        self.bench.settings.set("quantize/last_base", str(self.pane.model))
        self.bench.message.emit(f"Step 4 will use {path.name}")
        self.bench.step_requested.emit("verify")
