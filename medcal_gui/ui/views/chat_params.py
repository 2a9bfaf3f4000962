"""The sampling parameters of a chat (temperature, top-p, top-k, repeat penalty, max tokens, seed), kept in
the settings (`chat/...`)."""

from __future__ import annotations

from PySide6.QtWidgets import QDoubleSpinBox, QGridLayout, QLabel, QSpinBox, QWidget

from medcal_gui.chat.chat import SamplingParams
from medcal_gui.ui.settings import Settings

_D = SamplingParams()
# key, label, default, minimum, maximum, step, decimals (None: an integer), tooltip
FIELDS = (
    ("temperature", "Temperature", _D.temperature, 0.0, 2.0, 0.05, 2, "0 = always the most likely token"),
    ("top_p", "Top-p", _D.top_p, 0.0, 1.0, 0.05, 2, "Sample from the smallest set of tokens this likely"),
    ("top_k", "Top-k", _D.top_k, 0, 1000, 1, None, "Sample from the k most likely tokens (0 = all)"),
    ("repeat_penalty", "Repeat penalty", _D.repeat_penalty, 0.5, 2.0, 0.05, 2, "1 = no penalty"),
    ("max_tokens", "Max tokens", _D.max_tokens, 1, 8192, 16, None, "Longest reply"),
    ("seed", "Seed", -1, -1, 2**31 - 1, 1, None, "The same seed gives the same reply; random = a new one each time"),
)


class ChatParams(QWidget):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.boxes: dict[str, QSpinBox | QDoubleSpinBox] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        for i, (key, label, default, lo, hi, step, decimals, tip) in enumerate(FIELDS):
            box: QSpinBox | QDoubleSpinBox
            if decimals is None:
                box = QSpinBox()
                box.setRange(int(lo), int(hi))
                box.setSingleStep(int(step))
                box.setValue(int(settings.chat(key, int(default))))
            else:
                box = QDoubleSpinBox()
                box.setDecimals(decimals)
                box.setRange(lo, hi)
                box.setValue(float(settings.chat(key, float(default))))
                box.setSingleStep(step)
            box.setToolTip(tip)
            if key == "seed":
                box.setSpecialValueText("random")
            box.valueChanged.connect(lambda v, k=key: self.settings.set_chat(k, v))
            name = QLabel(label)
            name.setToolTip(tip)
            grid.addWidget(name, i // 3, (i % 3) * 2)
            grid.addWidget(box, i // 3, (i % 3) * 2 + 1)
            self.boxes[key] = box
        for c in (1, 3, 5):
            grid.setColumnStretch(c, 1)

    def set(self, key: str, value: float) -> None:
        self.boxes[key].setValue(value)  # type: ignore[arg-type]

    def show_default(self, key: str, value: float) -> None:
        """Show `value` without remembering it (a default for this model, not the user's choice)."""
        box = self.boxes[key]
        box.blockSignals(True)
        box.setValue(value)  # type: ignore[arg-type]
        box.blockSignals(False)

    def sampling(self) -> SamplingParams:
        b = self.boxes
        seed = int(b["seed"].value())
        return SamplingParams(temperature=float(b["temperature"].value()), top_p=float(b["top_p"].value()),
                              top_k=int(b["top_k"].value()), repeat_penalty=float(b["repeat_penalty"].value()),
                              max_tokens=int(b["max_tokens"].value()), seed=None if seed < 0 else seed)
