"""Small widgets the panes share: a spin box in one call, and a label that keeps room for its text."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSpinBox


def reserved_label(lines: int) -> QLabel:
    """A wrapping label that keeps room for `lines` lines, so text appearing in it moves nothing below."""
    label = QLabel("")
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    label.setMinimumHeight(label.fontMetrics().lineSpacing() * lines + 4)
    return label


def spin(lo: int, hi: int, value: int, special: str = "", step: int = 1) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    if special:
        s.setSpecialValueText(special)
    s.setValue(value)
    return s
