"""A card with what `inspect_model` reports about a GGUF: one row per fact, then its notes and warnings."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from medcal_gui.core.units import format_bytes
from medcal_gui.inspection.model_info import ModelInfo
from medcal_gui.ui.widgets.highlighter import is_dark

ROWS = (
    ("name", "Name"),
    ("architecture", "Architecture"),
    ("params", "Parameters"),
    ("file_type", "File type"),
    ("size", "Size"),
    ("context", "Context"),
    ("vocab", "Vocabulary"),
    ("turns", "Turn tokens"),
    ("template", "Chat template"),
    ("quantized", "Quantized"),
)


# (light window, dark window), as the validation checklist colours its marks
_COLOURS = {"ok": ("#2e7d32", "#81c784"), "bad": ("#c62828", "#ef9a9a"), "warn": ("#b26a00", "#ffcc80"),
            "info": ("#1565c0", "#90caf9")}


def colour(kind: str, widget: QWidget | None = None) -> str:
    """A mark colour ("ok", "bad", "warn", "info") readable on the window's palette."""
    light, dark = _COLOURS[kind]
    return dark if is_dark(widget.palette() if widget is not None else None) else light



def card_values(info: ModelInfo) -> dict[str, str]:
    """The card's rows as text (also what the tests read)."""
    turns = []
    for t in info.turn_tokens:
        if t.id is None:
            turns.append(f"{t.text}: not in the vocabulary")
        else:
            turns.append(f"{t.text} = {t.id} ({'control' if t.is_control else 'NOT control'})")
    ok = "✔ control tokens" if info.turn_tokens_ok else "✘ not single control tokens"
    return {
        "name": info.name or "(not set)",
        "architecture": info.architecture,
        "params": f"{info.parameter_count:,} ({info.parameter_count / 1e6:,.0f}M)",
        "file_type": info.file_type,
        "size": format_bytes(info.size_bytes),
        "context": f"{info.context_length:,}" if info.context_length else "unknown",
        "vocab": (f"{info.vocab_size:,}" if info.vocab_size else "unknown")
        + (f" ({info.tokenizer_model})" if info.tokenizer_model else ""),
        "turns": f"{ok}: " + "; ".join(turns),
        "template": "embedded" if info.has_chat_template else "none (medcal supplies Gemma's)",
        "quantized": "yes: quantizing again stacks two quantizations" if info.is_quantized else "no",
    }


class ModelCard(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("model_card")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.info: ModelInfo | None = None
        self.title = QLabel("<b>No model chosen</b>")
        self.title.setWordWrap(True)
        self.subtitle = QLabel("")
        self.subtitle.setWordWrap(True)
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(3)
        self.values: dict[str, QLabel] = {}
        for i, (key, label) in enumerate(ROWS):
            name = QLabel(label)
            name.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            value = QLabel("—")
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(name, i, 0)
            grid.addWidget(value, i, 1)
            self.values[key] = value
        grid.setColumnStretch(1, 1)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setTextFormat(Qt.TextFormat.RichText)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.subtitle)
        lay.addLayout(grid)
        lay.addWidget(self.notes)
        lay.addStretch(1)

    def set_loading(self, path: str, label: str = "") -> None:
        self.info = None
        self.title.setText("<b>Reading the model…</b>")
        self.subtitle.setText(label or path)
        for v in self.values.values():
            v.setText("…")
        self.notes.setText("")

    def set_error(self, message: str) -> None:
        self.info = None
        self.title.setText("<b>This model cannot be used</b>")
        for v in self.values.values():
            v.setText("—")
        self.notes.setText(f"<span style='color:{colour('bad', self)}'>{_esc(message)}</span>")

    def clear(self) -> None:
        self.info = None
        self.title.setText("<b>No model chosen</b>")
        self.subtitle.setText("Open a GGUF file, pick a recent one, or prepare the demo model.")
        for v in self.values.values():
            v.setText("—")
        self.notes.setText("")

    def set_info(self, info: ModelInfo, label: str = "") -> None:
        self.info = info
        self.title.setText(f"<b>{_esc(info.path.rsplit('/', 1)[-1])}</b>")
        self.subtitle.setText(label or info.path)
        self.subtitle.setToolTip(info.path)
        for key, text in card_values(info).items():
            self.values[key].setText(text)
        self.values["turns"].setStyleSheet(f"color:{colour('ok' if info.turn_tokens_ok else 'bad', self)}")
        lines = [f"<span style='color:{colour('warn', self)}'>⚠ {_esc(w)}</span>" for w in info.warnings]
        lines += [f"<span style='color:{colour('info', self)}'>ℹ {_esc(n)}</span>" for n in info.notes]
        self.notes.setText("<br>".join(lines))

    def value(self, key: str) -> str:
        return self.values[key].text()


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
