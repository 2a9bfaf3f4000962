"""Under a finished quant ladder: a per-tensor recipe at a target size. The size is picked from the stock
rungs (each at its own size, on the same scale as the ladder's chart) or typed (a size such as 250MB, or
bits per weight such as 4.5bpw); Run builds it (`medcal recipe`) with the ladder's importance matrix and
scores it on the ladder's held-out text, and the recipe joins the ladder's table and chart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QLineEdit, QPushButton, QWidget

from medcal_gui.core.errors import InputError
from medcal_gui.core.jobs import CancelToken, ProgressCallback
from medcal_gui.core.units import format_bytes, parse_size
from medcal_gui.ui.jobs.job_controls import JobControls
from medcal_gui.ui.widgets.stage_progress import StageProgress
from medcal_gui.workflows.ladder.results import LadderResult
from medcal_gui.workflows.recipe.candidates import check_candidate_types, default_candidate_types
from medcal_gui.workflows.recipe.recipe import run_recipe
from medcal_gui.workflows.recipe.results import RecipeResult

_BPW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:bpw|bits?(?: per weight)?)\s*$", re.IGNORECASE)


def parse_target(text: str) -> dict[str, Any]:
    """`{"target_bytes": N}` for a size ("250MB", "1.2 GB"), `{"target_bpw": X}` for "4.5bpw"."""
    m = _BPW.match(text)
    if m:
        return {"target_bpw": float(m.group(1))}
    return {"target_bytes": parse_size(text)}


class RecipeControls(JobControls):
    """"Recipe at" a target size, for a ladder's view; `finished` carries the RecipeResult."""

    finished = Signal(object)

    def __init__(self, ladder: LadderResult, bench: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("recipe_controls")
        self.ladder, self.bench = ladder, bench
        self.target = QComboBox()
        self.target.setObjectName("recipe_target")
        self.target.setEditable(True)
        self.target.setToolTip("A stock type's size (the recipe may not be larger), a size such as 250MB, "
                               "or bits per weight such as 4.5bpw")
        for r in sorted(ladder.rungs, key=lambda r: r.bytes):
            self.target.addItem(f"{r.type}'s size: {format_bytes(r.bytes)} ({r.bpw:.2f} bpw)", r.bytes)
        # Q4_K_M's size by default: the size most people ship at
        self.target.setCurrentIndex(max(0, self.target.findText("Q4_K_M's", Qt.MatchFlag.MatchStartsWith)))
        defaults = ", ".join(default_candidate_types())
        self.types = QLineEdit(bench.settings.get_str("recipe/types") or defaults)
        self.types.setObjectName("recipe_types")
        self.types.setPlaceholderText(defaults)
        self.types.setToolTip("The tensor types the recipe chooses from (medcal recipe --types): each one is "
                              "tried on every tensor and measured, so fewer types build sooner. F16 is the "
                              f"base itself. Empty: {defaults}.")
        self.button = QPushButton("Build recipe")
        self.button.setObjectName("recipe_button")
        self.button.setToolTip("Choose one type per tensor to come as close to the base as this size allows "
                               "(measured errors, exact size), write it as a GGUF and a llama-quantize "
                               "--tensor-type-file, and score it on the ladder's held-out text.")
        self.button.clicked.connect(self.start)
        self.progress = StageProgress("Recipe")
        self.progress.reset("")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel("Per-tensor recipe at"), 0, 0)
        grid.addWidget(self.target, 0, 1)
        grid.addWidget(self.button, 0, 2)
        grid.addWidget(QLabel("from the types"), 1, 0)
        grid.addWidget(self.types, 1, 1, 1, 2)
        grid.addWidget(self.progress, 2, 0, 1, 3)
        grid.addWidget(self.status, 3, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        self.result: RecipeResult | None = None
        bench.jobs.progress.connect(self._progress)

    def target_kwargs(self) -> dict[str, Any]:
        i = self.target.currentIndex()
        if i >= 0 and self.target.currentText() == self.target.itemText(i):
            return {"target_bytes": int(self.target.itemData(i))}
        return parse_target(self.target.currentText())

    def job_inputs(self) -> dict[str, Any]:
        lad = self.ladder
        if not lad.imatrix or not lad.imatrix.get("path"):
            raise InputError("This ladder has no importance matrix on record; run the ladder again.")
        base = Path(lad.base["file"])
        target = self.target_kwargs()
        types = check_candidate_types(re.split(r"[\s,]+", self.types.text())
                                      if self.types.text().strip() else default_candidate_types())
        tag = (f"{target['target_bytes'] / 1e6:.1f}MB" if "target_bytes" in target
               else f"{target['target_bpw']:g}bpw")
        folder = Path(lad.outputs["json"]).parent if lad.outputs.get("json") else lad.heldout.parent
        # the ladder's rungs serve as the stock files near the recipe's size (same base, imatrix and text)
        return {"base": base, "imatrix": Path(lad.imatrix["path"]), "heldout": lad.heldout,
                "out": folder / f"{base.stem}-recipe-{tag}.gguf", "n_ctx": lad.n_ctx, "threads": lad.threads,
                "ladder": folder, "types": types, **target}

    def start(self) -> bool:
        try:
            kw = self.job_inputs()
        except InputError as exc:
            self.bench.show_error(exc)
            return False
        self.bench.settings.set("recipe/types", ", ".join(kw["types"]))

        def job(progress: ProgressCallback, cancel: CancelToken) -> RecipeResult:
            return run_recipe(progress=progress, cancel=cancel, **kw)

        return self.run_job(job, f"Building a recipe at {self.target.currentText()}", on_done=self._done,
                            running=f"Building {kw['out'].name}…",
                            cancelled="Cancelled: the measured candidates are kept and a new run reuses them.")

    def _progress(self, p: Any) -> None:
        if self._running:
            self.progress.set_progress(p)

    def _done(self, res: RecipeResult) -> None:
        self.result = res
        kld = (res.kld or {}).get("kld_mean")
        near = min((r for r in self.ladder.rungs if r.bytes >= res.bytes), key=lambda r: r.bytes, default=None)
        versus = ""
        if kld is not None and near is not None and near.kld_mean > 0:
            versus = (f"; {near.type} ({format_bytes(near.bytes)}): {near.kld_mean:.5f}, "
                      f"{100 * (kld / near.kld_mean - 1):+.0f} %")
        self._ended(f"<b>Recipe</b> {res.out.name}: {format_bytes(res.bytes)} ({res.bpw:.2f} bpw), mean KLD "
                    + (f"{kld:.5f}" if kld is not None else "not measured") + versus
                    + f". Rebuild with stock tools: <code>{res.recipe_file.name}</code>.")
        self.finished.emit(res)
