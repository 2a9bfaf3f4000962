"""Window sizes that fit the screen they open on: a 1280x720 laptop has about 680 pixels under a title bar."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QWidget

TITLE_BAR = 40  # what a window manager's frame adds above the window, at most


def fitted_size(available: QSize, wanted: tuple[int, int], minimum: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """`wanted`, or the screen's free area less a title bar when that is smaller, never below `minimum`."""
    return (max(minimum[0], min(wanted[0], available.width())),
            max(minimum[1], min(wanted[1], available.height() - TITLE_BAR)))


def fit_to_screen(widget: QWidget, wanted: tuple[int, int]) -> None:
    """Resize `widget` to `wanted`, made to fit its screen (never below its minimum size)."""
    hint = widget.minimumSizeHint()
    minimum = (max(widget.minimumWidth(), hint.width()), max(widget.minimumHeight(), hint.height()))
    widget.resize(*fitted_size(widget.screen().availableGeometry().size(), wanted, minimum))
