"""Choosing a model: a path field, Open…, Hugging Face folder…, Recent, and "Demo model", which prepares
Gemma 3 270M (once, with a progress bar) as the current job. A Hugging Face folder (config.json and
*.safetensors) is offered for conversion to GGUF first. Emits `chosen(Path)`; the pane reads the model."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QToolButton,
    QWidget,
)

from medcal_gui.convert.hf_to_gguf import convert_hf, is_hf_model_dir
from medcal_gui.core.errors import InputError
from medcal_gui.core.jobs import Progress
from medcal_gui.core.units import format_bytes
from medcal_gui.gguf_files.demo_model import DEMO_MODEL_LABEL, demo_model_path, demo_model_ready, prepare_demo_model
from medcal_gui.ui import dialogs
from medcal_gui.ui.workbench import Workbench

RECENT_KEY = "model/recent"
MAX_RECENT = 8


def model_label(path: Path) -> str:
    """What to call a model beside its path (the demo model says what it is)."""
    return DEMO_MODEL_LABEL if path == demo_model_path() else ""


class ModelPicker(QWidget):
    chosen = Signal(object)  # Path

    def __init__(self, bench: Workbench, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bench = bench
        self.preparing = False
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("a GGUF model (F16, BF16 or F32 is best)")
        self.edit.returnPressed.connect(lambda: self._choose(Path(self.edit.text().strip())))
        self.open_btn = QPushButton("Open…")
        self.open_btn.clicked.connect(self.open_dialog)
        self.hf_btn = QPushButton("HF folder…")
        self.hf_btn.setToolTip("A Hugging Face download (config.json + *.safetensors), e.g. google/medgemma-4b-it: "
                               "medcal converts it to a GGUF first")
        self.hf_btn.clicked.connect(self.open_hf_dialog)
        self.recent_btn = QToolButton()
        self.recent_btn.setText("Recent")
        self.recent_btn.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_menu = QMenu(self)
        self.recent_menu.aboutToShow.connect(self.fill_recent)
        self.recent_btn.setMenu(self.recent_menu)
        self.demo_btn = QPushButton("Demo model")
        self.demo_btn.setToolTip(DEMO_MODEL_LABEL + " (prepared once, about 15 s)")
        self.demo_btn.clicked.connect(self.use_demo_model)
        self.demo_bar = QProgressBar()
        self.demo_bar.setFixedWidth(160)
        self.demo_bar.setVisible(False)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Model"))
        lay.addWidget(self.edit, 1)
        for w in (self.open_btn, self.hf_btn, self.recent_btn, self.demo_btn, self.demo_bar):
            lay.addWidget(w)
        bench.jobs.progress.connect(self._progress)

    def show_path(self, path: Path | None) -> None:
        self.edit.setText(str(path) if path else "")

    def _choose(self, path: Path) -> None:
        if not str(path):
            return
        if path.is_dir():
            if is_hf_model_dir(path):
                self.offer_conversion(path)
            else:
                self.bench.show_error(InputError(
                    f"{path} is a folder but not a Hugging Face model (it needs config.json and *.safetensors). "
                    "Choose a GGUF file, or the folder of a Hugging Face download."))
            return
        self.chosen.emit(path)

    def open_hf_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder")
        if folder:
            self._choose(Path(folder))

    def offer_conversion(self, hf_dir: Path) -> None:
        """Convert a Hugging Face folder to an F16 GGUF beside it (asking first), then choose that."""
        out = hf_dir.parent / f"{hf_dir.name}-f16.gguf"
        if out.is_file():
            if dialogs.ask_yes_no(self, "Use the converted model?",
                                      f"{out.name} was converted from {hf_dir.name} before. Use it?"):
                self.chosen.emit(out)
            return
        size = sum(f.stat().st_size for f in hf_dir.glob("*.safetensors"))
        if not dialogs.ask_yes_no(
                self, "Convert to GGUF?",
                f"{hf_dir.name} is a Hugging Face model folder. llama.cpp reads GGUF files, so medcal converts "
                f"it first (F16, about {format_bytes(size, rough=True)}, written to {out}). Convert now?"):
            return
        self.preparing = True
        self.demo_bar.setVisible(True)
        self.demo_bar.setRange(0, 0)
        started = self.bench.start_job(
            lambda progress, cancel: convert_hf(hf_dir, out, "f16", progress=progress, cancel=cancel),
            "Converting to GGUF", on_done=lambda res: self._demo_ready(res.out),
            on_failed=lambda *_: self._demo_ended(), on_cancelled=self._demo_ended)
        if not started:
            self._demo_ended()

    def open_dialog(self) -> None:
        start = str(Path(self.edit.text()).parent) if self.edit.text() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model", start,
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self._choose(Path(path))

    def fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.bench.settings.get_list(RECENT_KEY):
            act = self.recent_menu.addAction(p)
            act.setEnabled(Path(p).is_file())
            act.triggered.connect(lambda _c=False, p=p: self._choose(Path(p)))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(no recent models)").setEnabled(False)

    def remember(self, path: Path) -> None:
        """A model that could be read: first in the recent list, and the one to start with next time."""
        recent = [p for p in self.bench.settings.get_list(RECENT_KEY) if p != str(path)]
        self.bench.settings.set(RECENT_KEY, [str(path)] + recent[: MAX_RECENT - 1])
        self.bench.settings.model_path = str(path)

    def use_demo_model(self) -> None:
        if demo_model_ready():
            self._choose(demo_model_path())
            return
        self.preparing = True
        self.demo_bar.setVisible(True)
        self.demo_bar.setRange(0, 0)
        if not self.bench.start_job(lambda progress, cancel: prepare_demo_model(progress=progress, cancel=cancel),
                                    "Preparing the demo model", on_done=self._demo_ready,
                                    on_failed=lambda *_: self._demo_ended(), on_cancelled=self._demo_ended):
            self._demo_ended()

    def _demo_ready(self, path: Path) -> None:
        self._demo_ended()
        self._choose(Path(path))

    def _demo_ended(self) -> None:
        self.preparing = False
        self.demo_bar.setVisible(False)

    def _progress(self, p: Progress) -> None:
        if not self.preparing:
            return
        if p.fraction is None:
            self.demo_bar.setRange(0, 0)
        else:
            self.demo_bar.setRange(0, 1000)
            self.demo_bar.setValue(round(p.fraction * 1000))
