"""Steps 3 and 4 at a laptop's screen size, checked from the widgets' geometry: nothing overlaps, nothing is
squeezed below its minimum, and a status line appearing moves no other widget (a click lands where it aimed)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from PySide6.QtCore import QRect
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QTextBrowser,
    QWidget,
)

from medcal_gui.ui.views.kld_chart import KldHistogram

LEAVES = (QLabel, QAbstractButton, QLineEdit, QAbstractSpinBox, QComboBox, QAbstractItemView, QProgressBar,
          QPlainTextEdit, QTextBrowser, KldHistogram)
SCREENS = [(1280, 720), (1366, 768)]


def leaves(pane: QWidget) -> dict[QWidget, QRect]:
    """The visible leaf widgets (not the parts of a composite one) and their rectangles in pane coordinates.
    Widgets of another window the pane owns (a dialog) are not the pane's: where a window manager places that
    window says nothing about the pane's layout."""
    out = {}
    for w in pane.findChildren(QWidget):
        if not isinstance(w, LEAVES) or not w.isVisibleTo(pane) or w.width() <= 0 or w.height() <= 0:
            continue
        if w.window() is not pane.window():
            continue
        p, inner = w.parentWidget(), False
        while p is not None and p is not pane:
            inner = inner or isinstance(p, LEAVES)
            p = p.parentWidget()
        if not inner:
            out[w] = QRect(w.mapTo(pane, w.rect().topLeft()), w.size())
    return out


def name(w: QWidget) -> str:
    text = w.text() if hasattr(w, "text") and callable(w.text) else ""
    return f"{type(w).__name__}({str(text)[:30]!r})"


def check_fits(pane: QWidget) -> dict[QWidget, QRect]:
    rects = leaves(pane)
    assert len(rects) > 10
    overlaps = [(name(a), name(b)) for (a, ra), (b, rb) in itertools.combinations(rects.items(), 2)
                if ra.intersects(rb)]
    assert overlaps == []
    squeezed = [name(w) for w in rects if w.height() < w.minimumSizeHint().height() - 1
                and not isinstance(w, QLabel | QAbstractItemView | QTextBrowser | QPlainTextEdit)]
    assert squeezed == []
    return rects


def window_at(window, qtbot, size: tuple[int, int], index: int, model: Path) -> QWidget:  # type: ignore[no-untyped-def]
    window.resize(*size)
    window.set_current(index)
    window.show()
    qtbot.waitExposed(window)
    pane = window.current_pane()
    if index == 2:
        pane.set_model(model)
        qtbot.waitUntil(lambda: pane.info is not None and pane.tokens is not None, timeout=20000)
    else:
        pane.set_models(model, model)
    qtbot.waitUntil(lambda: pane.ready(), timeout=20000)
    qtbot.wait(50)
    return pane


@pytest.mark.parametrize("size", SCREENS)
def test_quantize_pane_fits_and_nothing_jumps_when_a_status_line_appears(qtbot, window, size, tiny_model: Path) -> None:  # type: ignore[no-untyped-def]
    pane = window_at(window, qtbot, size, 2, tiny_model)
    for label in (pane.tokens_label, pane.result_label, pane.advice):
        label.setText("")  # as before a count, a run or a note
    qtbot.wait(50)
    before = check_fits(pane)
    pane.result_label.setText("Cancelled: the importance matrix was kept: /a/long/folder/name/model-Q4_K_M."
                              "imatrix.gguf (choose “Load a file” to quantize with it later). No quant was "
                              "written; earlier files in the folder were not touched.")
    pane.imatrix_stage.set_detail("3/4 chunks · 812 tokens/s · PPL 9.50 · ETA 0:30")
    pane.tokens_label.setText("<b>12,345</b> tokens from 30 records (quantization_calibration, seed layout; 8 "
                              "held out) → <b>24</b> chunks of 512, <b>57</b> tokens dropped at the end; 24 "
                              "chunk(s) will run.")
    pane.advice.setText("ℹ Q4_K_M is a low-bit type: an importance matrix from calibration text usually "
                        "improves it noticeably.<br>ℹ llama.cpp's dry run (253 MB) is above the ≈ estimate.")
    qtbot.wait(50)
    after = check_fits(pane)
    moved = [name(w) for w, r in before.items() if w in after and after[w].topLeft() != r.topLeft()]
    assert moved == []


@pytest.mark.parametrize("size", SCREENS)
def test_verify_pane_fits_and_the_chart_never_covers_the_figures(qtbot, window, size, tiny_model: Path) -> None:  # type: ignore[no-untyped-def]
    pane = window_at(window, qtbot, size, 3, tiny_model)
    before = check_fits(pane)
    fig = before[pane.figures]
    chart = QRect(pane.chart.mapTo(pane, pane.chart.rect().topLeft()), pane.chart.size())
    assert chart.top() >= fig.bottom() and pane.figures.height() >= pane.figures.minimumHeight()
    pane.results.started("Evaluating the quant against the base on the last 8 of 38 narratives "
                         "(quantization_calibration, seed layout)…")
    pane.quant_view.set_waiting("Not sent: the chat was stopped before its turn.")
    pane.base_view.stats.setText("41 tokens · 0.4 tokens/s · first token after 14.54 s · prompt 205 tokens · "
                                 "stopped by you")
    pane.results.reading.setText("KLD mean 0.004: usually indistinguishable from the base. Lower is better.")
    qtbot.wait(50)
    after = check_fits(pane)
    moved = [name(w) for w, r in before.items() if w in after and after[w].topLeft() != r.topLeft()]
    assert moved == []


@pytest.mark.parametrize("size", SCREENS)
def test_the_evaluation_side_is_never_cut_off_sideways(qtbot, window, size, tiny_model: Path) -> None:  # type: ignore[no-untyped-def]
    pane = window_at(window, qtbot, size, 3, tiny_model)
    box = pane.eval_scroll.widget()
    assert not pane.eval_scroll.horizontalScrollBar().isVisible()
    assert box.width() >= box.minimumSizeHint().width()
    btn = QRect(pane.eval_btn.mapTo(box, pane.eval_btn.rect().topLeft()), pane.eval_btn.size())
    assert btn.right() <= pane.eval_scroll.viewport().width()  # the Evaluate button is on screen
