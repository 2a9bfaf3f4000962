"""Step 4: Verify & chat. Chat with the quant (streamed, stoppable within a token; side by side with the
base, with each one's speed) using preset prompts for the variant, and measure the quant against the base:
perplexity and KL divergence on held-out text, with a histogram of the per-token divergence."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from medcal_gui.chat.chat import ChatSession, ChatStats, SamplingParams
from medcal_gui.chat.chat_presets import ChatPreset, presets_for_variant, stream_to_boundary
from medcal_gui.core.errors import InputError
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback
from medcal_gui.evaluate.evaluate import EvalResult, evaluate
from medcal_gui.presenters.verify_facts import (
    DEMO_CHAT_NOTE,
    DEMO_MAX_TOKENS,
    held_out_count,
    held_out_percent,
    heldout_split,
    is_demo_model,
)
from medcal_gui.ui.panes.base import Pane
from medcal_gui.ui.views.chat_params import ChatParams
from medcal_gui.ui.views.chat_view import ChatTranscript, PieceBuffer
from medcal_gui.ui.views.eval_view import EvalResults
from medcal_gui.ui.widgets.fields import reserved_label, spin
from medcal_gui.ui.workbench import Workbench

CHAT_CTX = 2048
STARTED = "\x00started"  # a piece that says a target's turn began (the pane shows its user turn then)


class VerifyPane(Pane):
    key = "verify"
    title = "Verify & chat"

    reply_done = Signal(object)  # {"base"|"quant": ChatStats}
    evaluated = Signal(object)  # EvalResult

    def __init__(self, bench: Workbench, parent: QWidget | None = None) -> None:
        super().__init__(bench, parent)
        self.sessions: dict[str, ChatSession] = {}  # model path -> session; used by the chat worker only
        self.presets: list[ChatPreset] = []
        self.eval_result: EvalResult | None = None
        self._seen_quant: Path | None = None
        self._chat = bench.create_runner(heavy=True)  # never beside an evaluation
        self._turn: dict[str, Any] = {}
        self.pieces = PieceBuffer(self)
        self.pieces.arrived.connect(self._drain)
        self._evaluating = False
        self._build()
        bench.jobs.progress.connect(self._job_progress)
        self._chat.busy_changed.connect(lambda _b: self._update())
        self._pick_up_quant()
        self.refresh_presets()
        self._update()

    # -- layout -------------------------------------------------------------------------------------------
    def _build(self) -> None:
        s = self.bench.settings
        self.quant_edit = QLineEdit()
        self.base_edit = QLineEdit()
        self.quant_edit.setPlaceholderText("the quantized GGUF (step 3 fills this in)")
        self.base_edit.setPlaceholderText("the model it was quantized from")
        paths = QGridLayout()
        for row, (label, edit) in enumerate((("Quant", self.quant_edit), ("Base", self.base_edit))):
            btn = QPushButton("Browse…")
            btn.clicked.connect(lambda _c=False, e=edit: self._browse_model(e))
            edit.editingFinished.connect(self._models_changed)
            paths.addWidget(QLabel(label), row, 0)
            paths.addWidget(edit, row, 1)
            paths.addWidget(btn, row, 2)

        # chat
        self.preset_combo = QComboBox()
        self.preset_combo.setMinimumContentsLength(28)
        self.preset_combo.activated.connect(self._preset_chosen)
        self.side_check = QCheckBox("Side by side with the base")
        self.side_check.toggled.connect(self._side_toggled)
        self.new_btn = QPushButton("New chat")
        self.new_btn.clicked.connect(self.new_chat)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Preset"))
        bar.addWidget(self.preset_combo, 1)
        bar.addWidget(self.side_check)
        bar.addWidget(self.new_btn)
        self.base_view = ChatTranscript("Base")
        self.quant_view = ChatTranscript("Quant")
        self.views = {"base": self.base_view, "quant": self.quant_view}
        self.base_view.setVisible(False)
        self.demo_note = QLabel(f"<small>ℹ {DEMO_CHAT_NOTE}</small>")
        self.demo_note.setWordWrap(True)
        self.demo_note.setVisible(False)
        talk = QSplitter(Qt.Orientation.Horizontal)
        talk.addWidget(self.base_view)
        talk.addWidget(self.quant_view)
        self.input = QPlainTextEdit()
        self.input.setPlaceholderText("Message (Ctrl+Enter sends)")
        self.input.setFixedHeight(self.fontMetrics().height() * 4)
        self.send_btn = QPushButton("Send")
        self.send_btn.clicked.connect(lambda: self.send())
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.clicked.connect(self.stop)
        send_key = QShortcut(QKeySequence("Ctrl+Return"), self.input)
        send_key.activated.connect(lambda: self.send())
        btns = QVBoxLayout()
        btns.addWidget(self.send_btn)
        btns.addWidget(self.stop_btn)
        btns.addStretch(1)
        entry = QHBoxLayout()
        entry.addWidget(self.input, 1)
        entry.addLayout(btns)
        self.params = ChatParams(s)
        chat = QWidget()
        cl = QVBoxLayout(chat)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addLayout(bar)
        cl.addWidget(self.demo_note)
        cl.addWidget(talk, 1)
        cl.addLayout(entry)
        cl.addWidget(self.params)

        # evaluation
        box = QGroupBox("Evaluate: KL divergence against the base")
        self.split_radio = QRadioButton("Held-out narratives")
        self.file_radio = QRadioButton("A file")
        self.split_radio.setChecked(not s.get_bool("verify/use_file", False))
        self.file_radio.setChecked(s.get_bool("verify/use_file", False))
        self.split_label = reserved_label(2)
        self.heldout_edit = QLineEdit(s.get_str("verify/heldout_file", ""))
        self.heldout_edit.setPlaceholderText("UTF-8 text, formatted like the calibration")
        hb = QPushButton("Browse…")
        hb.clicked.connect(self._browse_heldout)
        self.ctx_spin = spin(16, 8192, s.get_int("verify/n_ctx", 512), step=64)
        self.chunks_spin = spin(0, 100000, s.get_int("verify/chunks", 0), "all")
        self.eval_btn = QPushButton("Evaluate")
        self.eval_btn.clicked.connect(lambda: self.evaluate())
        self.results = EvalResults()
        self.figures, self.chart, self.eval_label = self.results.figures, self.results.chart, self.results.label
        g = QGridLayout(box)
        g.addWidget(self.split_radio, 0, 0, 1, 3)
        g.addWidget(self.split_label, 1, 0, 1, 3)
        g.addWidget(self.file_radio, 2, 0)
        g.addWidget(self.heldout_edit, 2, 1)
        g.addWidget(hb, 2, 2)
        figs = QHBoxLayout()
        for text, sp in (("Context", self.ctx_spin), ("Chunks", self.chunks_spin)):
            figs.addWidget(QLabel(text))
            figs.addWidget(sp)
        figs.addStretch(1)
        figs.addWidget(self.eval_btn)
        g.addLayout(figs, 3, 0, 1, 3)
        g.addWidget(self.results, 4, 0, 1, 3)
        g.setRowStretch(4, 1)
        g.setColumnStretch(1, 1)
        # On a short screen the box scrolls: the chart is never squeezed over the figures table.
        self.eval_scroll = QScrollArea()
        self.eval_scroll.setWidgetResizable(True)
        self.eval_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.eval_scroll.setWidget(box)
        self.eval_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        bar_w = self.eval_scroll.verticalScrollBar().sizeHint().width()
        self.eval_scroll.setMinimumWidth(box.minimumSizeHint().width() + bar_w + 4)  # scrolls down, never across

        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(chat)
        split.addWidget(self._behaviour_tabs(self.eval_scroll))
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(paths)
        lay.addWidget(split, 1)
        for radio in (self.split_radio, self.file_radio):
            radio.toggled.connect(lambda *_: self._eval_inputs_changed())
        self.heldout_edit.textChanged.connect(lambda *_: self._eval_inputs_changed())
        self.ctx_spin.valueChanged.connect(lambda *_: self._eval_inputs_changed())
        self.chunks_spin.valueChanged.connect(lambda *_: self._eval_inputs_changed())
        bench = self.bench
        bench.dataset_changed.connect(lambda _l: self._update())

    def _behaviour_tabs(self, figures: QWidget) -> QWidget:
        """The figures box next to the Answers and Questions checks (issue 15), as tabs."""
        from medcal_gui.ui.views.behaviour_tabs import behaviour_tabs

        self.behaviour, self.answers, self.questions = behaviour_tabs(self, figures)
        return self.behaviour

    # -- models -------------------------------------------------------------------------------------------
    def quant_path(self) -> Path | None:
        t = self.quant_edit.text().strip()
        return Path(t) if t else None

    def base_path(self) -> Path | None:
        t = self.base_edit.text().strip()
        return Path(t) if t else None

    def set_models(self, quant: Path | None, base: Path | None) -> None:
        self.quant_edit.setText(str(quant) if quant else "")
        self.base_edit.setText(str(base) if base else "")
        self._models_changed()

    def _pick_up_quant(self) -> None:
        """Take step 3's latest quant (this session's, else the last one remembered) and its base."""
        s = self.bench.settings
        quant = self.bench.last_quant
        if quant is None and s.get_str("quantize/last_output"):
            quant = Path(s.get_str("quantize/last_output"))
            if not quant.is_file():
                quant = None
        if quant is not None and quant != self._seen_quant:
            self._seen_quant = quant
            base = s.get_str("quantize/last_base") or s.model_path
            self.set_models(quant, Path(base) if base else None)
        elif not self.base_edit.text() and (self.bench.model_path or s.model_path):
            self.base_edit.setText(str(self.bench.model_path or s.model_path))
            self._models_changed()

    def _browse_model(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model", edit.text(),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            edit.setText(path)
            self._models_changed()

    def _models_changed(self) -> None:
        wanted = {str(p) for p in (self.quant_path(), self.base_path()) if p}
        if not self._chat.is_running():
            for key in [k for k in self.sessions if k not in wanted]:
                self.sessions.pop(key).close()
        q, b = self.quant_path(), self.base_path()
        self.quant_view.set_title(f"<b>Quant</b>: {q.name}" if q else "<b>Quant</b>: (none)")
        self.base_view.set_title(f"<b>Base</b>: {b.name}" if b else "<b>Base</b>: (none)")
        demo = self.is_demo()
        self.demo_note.setVisible(demo)
        if demo and self.bench.settings.chat("max_tokens", -1) == -1:  # never set by the user
            self.params.show_default("max_tokens", DEMO_MAX_TOKENS)
        self._update()

    def is_demo(self) -> bool:
        """Chatting with the demo model (a base model) or a quant of it."""
        return any(is_demo_model(p) for p in (self.quant_path(), self.base_path()))

    def activated(self) -> None:
        self._pick_up_quant()
        self.refresh_presets()
        self._update()

    # -- chat ---------------------------------------------------------------------------------------------
    def refresh_presets(self) -> None:
        variant = self.bench.settings.variant or "quantization_calibration"
        try:
            self.presets = presets_for_variant(variant)
        except InputError as exc:
            self.presets = []
            self.bench.message.emit(exc.message)
        self.preset_combo.clear()
        self.preset_combo.addItem(f"Choose a preset prompt ({variant} first)…", None)
        for p in self.presets:
            self.preset_combo.addItem(p.title, p.name)

    def _preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        preset = next((p for p in self.presets if p.name == name), None)
        if preset is not None:
            self.input.setPlainText(preset.prompt)

    def _side_toggled(self, on: bool) -> None:
        self.base_view.setVisible(on)
        self.new_chat()

    def new_chat(self) -> None:
        if self._chat.is_running():
            return
        for s in self.sessions.values():
            s.reset()
        for v in self.views.values():
            v.clear()

    def _targets(self) -> list[tuple[str, Path]]:
        q, b = self.quant_path(), self.base_path()
        out = [("base", b)] if self.side_check.isChecked() and b else []
        return out + ([("quant", q)] if q else [])

    def send(self, text: str | None = None, params: SamplingParams | None = None) -> bool:
        """Send `text` (default: the message box) to the quant, and to the base when side by side."""
        text = (text if text is not None else self.input.toPlainText()).strip()
        targets = self._targets()
        if not text or not targets or self._chat.is_running() or not self.bench.may_start(self._chat):
            return False
        missing = [str(p) for _, p in targets if not p.is_file()]
        if missing:
            self.bench.show_error(InputError(f"The model file {missing[0]} does not exist. Choose it again."))
            return False
        params = params or self.params.sampling()
        if params.seed is None and len(targets) > 1:  # the same seed for both: a fair comparison
            params.seed = int.from_bytes(os.urandom(4), "little")
        threads = self.bench.settings.threads or None
        turn: dict[str, Any] = {"stats": {}, "keys": [k for k, _ in targets], "text": text, "started": set()}
        self._turn = turn
        first = targets[0][0]
        self._start_turn(first)
        for key, _ in targets[1:]:  # its turn comes after the first reply: nothing is sent to it yet
            self.views[key].set_waiting(f"Waiting for the {first}'s reply.")
        self.input.clear()
        cut = self.is_demo()  # a base model: its reply ends where it writes the next turn

        def job(progress: ProgressCallback, cancel: CancelToken) -> dict[str, ChatStats]:
            for key, path in targets:
                if cancel.cancelled:
                    break
                if key != first:
                    self.pieces.put(key, STARTED)
                session = self._session(path, threads)
                pieces = (stream_to_boundary(session, text, params, stop=cancel) if cut
                          else session.stream(text, params, stop=cancel))
                for piece in pieces:
                    self.pieces.put(key, piece)
                turn["stats"][key] = session.last_stats
            return turn["stats"]

        self._chat.start(job, "Chat", on_done=lambda _r: self._reply_ended(),
                         on_failed=lambda *_: self._reply_ended("failed: see the message"),
                         on_cancelled=lambda: self._reply_ended())
        self._update()
        self.input.setFocus()
        return True

    def _start_turn(self, key: str) -> None:
        self.views[key].add_user(self._turn["text"])
        self._turn["started"].add(key)

    def _session(self, path: Path, threads: int | None) -> ChatSession:
        """(Worker thread) the session for `path`, loaded on first use."""
        s = self.sessions.get(str(path))
        if s is None:
            s = ChatSession(path, n_ctx=CHAT_CTX, threads=threads)
            self.sessions[str(path)] = s
        return s

    def stop(self) -> None:
        self._chat.cancel()
        self.input.setFocus()

    def close_models(self) -> None:
        """Free every chat model now (the window closes); call only while no reply runs."""
        for key in list(self.sessions):
            self.sessions.pop(key).close()

    def _drain(self) -> None:
        for key, piece in self.pieces.take():
            if piece == STARTED:
                self._start_turn(key)
            else:
                self.views[key].append(piece)

    def _reply_ended(self, note: str = "") -> None:
        self._drain()
        stats: dict[str, ChatStats] = self._turn.get("stats", {})
        for key in self._turn.get("keys", []):
            st = stats.get(key)
            if key not in self._turn.get("started", set()):
                self.views[key].set_waiting("Not sent: the chat was stopped before its turn.")
                continue
            self.views[key].finish(st, note if st is None and note else ("" if st else "not sent (stopped)"))
        self._models_changed()  # frees the models deselected during the reply; updates the pane
        self.input.setFocus()  # the next message goes in the message box, never in a parameter box
        self.reply_done.emit(dict(stats))

    # -- evaluation ---------------------------------------------------------------------------------------
    def _browse_heldout(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Held-out text", "", "Text (*.txt);;All files (*)")
        if path:
            self.heldout_edit.setText(path)
            self.file_radio.setChecked(True)

    def _eval_inputs_changed(self) -> None:
        s = self.bench.settings
        s.set("verify/use_file", self.file_radio.isChecked())
        s.set("verify/heldout_file", self.heldout_edit.text())
        s.set("verify/n_ctx", self.ctx_spin.value())
        s.set("verify/chunks", self.chunks_spin.value())
        self._update()

    def heldout(self) -> tuple[str | Path, str]:
        """The evaluation text (the held-out split's text, or a file) and a description of it."""
        if self.file_radio.isChecked():
            p = Path(self.heldout_edit.text().strip())
            return p, p.name
        return heldout_split(self.bench.records, self.bench.settings.variant, self.bench.settings.layout)

    def evaluate(self, n_chunks: int | None = None) -> bool:
        """Score the quant against the base on the held-out text (`n_chunks` overrides the Chunks box)."""
        base, quant = self.base_path(), self.quant_path()
        if not base or not quant:
            self.bench.message.emit("Choose the quant and its base first.")
            return False
        text, what = self.heldout()
        n_ctx, chunks = self.ctx_spin.value(), n_chunks or self.chunks_spin.value() or None
        threads = self.bench.settings.threads or None

        def job(progress: ProgressCallback, cancel: CancelToken) -> EvalResult:
            return evaluate(base, [quant], text, n_ctx=n_ctx, n_chunks=chunks, threads=threads,
                            progress=progress, cancel=cancel)

        self._evaluating = True
        self.results.started(f"Evaluating the quant against the base on {what}…")
        if not self.bench.start_job(job, "Evaluating", on_done=self._evaluated,
                                    on_failed=lambda *_: self._eval_ended("Evaluation failed."),
                                    on_cancelled=lambda: self._eval_ended("Evaluation cancelled.")):
            self._evaluating = False
            return False
        self._update()
        return True

    def _job_progress(self, p: Progress) -> None:
        if self._evaluating and p.stage == "eval":
            self.results.progress(p)

    def _eval_ended(self, text: str) -> None:
        self._evaluating = False
        self.results.ended(text)
        self._update()

    def _evaluated(self, res: EvalResult) -> None:
        self.eval_result = res
        m = res.models[0]
        self.results.show_result(m, res.chunks)
        cached = " (base pass from the cache)" if res.base_from_cache else ""
        self._eval_ended(f"{m.name} against {res.base.name}: {res.chunks} chunks of {res.n_ctx} tokens{cached}."
                         + "".join(f"<br>ℹ {w}" for w in res.warnings))
        self.set_done(True)
        self.evaluated.emit(res)

    # -- state --------------------------------------------------------------------------------------------
    def _update(self) -> None:
        chatting = self._chat.is_running()
        busy = chatting or self._evaluating
        self.send_btn.setEnabled(not chatting and bool(self._targets()))
        self.send_btn.setToolTip("" if self._targets() else "Choose a quant first.")
        self.stop_btn.setEnabled(chatting)
        self.new_btn.setEnabled(not chatting)
        self.side_check.setEnabled(not chatting)
        for e in (self.quant_edit, self.base_edit):
            e.setEnabled(not busy)
        n = len(self.bench.records)
        held = held_out_count(n)
        seen = "" if self.bench.settings.get_bool("quantize/hold_out", True) else (
            " Step 3 calibrated on every record, so the quant has seen these.")
        self.split_label.setText(
            f"<small>The last {held} of the {n} loaded narratives ({held_out_percent()}%), formatted like the "
            "calibration text: "
            f"the records step 3 keeps out of the importance matrix.{seen}</small>" if n >= 2
            else "<small>Load narratives in step 1, or choose a file.</small>")
        can_eval = bool(self.base_path() and self.quant_path()) and (
            self.file_radio.isChecked() and bool(self.heldout_edit.text().strip()) or
            self.split_radio.isChecked() and held > 0)
        self.eval_btn.setEnabled(can_eval and not self._evaluating)

    def show_example(self) -> bool:
        """For the screenshots: a short real exchange side by side (the first preset, greedy, 48 tokens) and a
        two-chunk evaluation, when the quant and its base exist. Nothing is persisted."""
        q, b = self.quant_path(), self.base_path()
        if not (q and b and q.is_file() and b.is_file()) or not self.presets:
            return False
        self.side_check.setChecked(True)
        self.preset_combo.setCurrentIndex(1)
        self.evaluate(n_chunks=2)
        return self.send(self.presets[0].prompt, SamplingParams.greedy(max_tokens=48))

    def ready(self) -> bool:
        return not self._chat.is_running() and not self._evaluating
