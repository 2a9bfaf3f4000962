"""The window at a laptop's smallest sizes: it fits, nothing overlaps, nothing is cut off, nothing jumps."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtWidgets import QApplication, QComboBox, QLayout, QSplitter, QWidget

from medcal_gui.ui.main_window import MIN_SIZE, MainWindow
from medcal_gui.ui.widgets.table_models import ENCODINGS

SCREENS = [(1280, 720), (1366, 768)]
TITLE_AND_PANEL = 64  # what a desktop's title bar and panel take from the screen's height


def _layout_widgets(layout: QLayout) -> list[QWidget]:
    out: list[QWidget] = []
    for i in range(layout.count()):
        item = layout.itemAt(i)
        if item.widget() is not None:
            out.append(item.widget())
        elif item.layout() is not None:
            out += _layout_widgets(item.layout())
    return out


def overlaps(root: QWidget, skip: tuple[QWidget, ...] = ()) -> list[str]:
    """Pairs of visible widgets placed side by side (by one layout or one splitter) whose rectangles overlap."""
    found: list[str] = []
    for w in [root, *root.findChildren(QWidget)]:
        if not w.isVisible() or any(s is w or s.isAncestorOf(w) for s in skip):
            continue
        groups = []
        if w.layout() is not None:
            groups.append(_layout_widgets(w.layout()))
        if isinstance(w, QSplitter):
            groups.append([w.widget(i) for i in range(w.count())])
        for group in groups:
            shown = [c for c in group if c.isVisible() and c.width() > 0 and c.height() > 0]
            for a, b in itertools.combinations(shown, 2):
                if a.geometry().intersects(b.geometry()):
                    found.append(f"{type(w).__name__}[{w.objectName()}]: {type(a).__name__}[{a.objectName()}] "
                                 f"{a.geometry().getRect()} overlaps {type(b).__name__}[{b.objectName()}] "
                                 f"{b.geometry().getRect()}")
    return found


def _settle(qtbot, win: MainWindow) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        QApplication.processEvents()
    qtbot.waitUntil(lambda: not win.bench.busy(), timeout=15000)
    QApplication.processEvents()


def test_minimum_size_fits_a_1280x720_screen(window) -> None:  # type: ignore[no-untyped-def]
    limit = (1280, 720 - TITLE_AND_PANEL)
    for size in (window.minimumSize(), window.minimumSizeHint()):
        assert size.width() <= limit[0] and size.height() <= limit[1], size
    assert (window.minimumSize().width(), window.minimumSize().height()) == MIN_SIZE


@pytest.mark.parametrize("screen", SCREENS)
def test_nothing_overlaps_on_a_small_screen(qtbot, window, screen) -> None:  # type: ignore[no-untyped-def]
    window.resize(screen[0], screen[1] - TITLE_AND_PANEL)
    window.show()
    qtbot.waitExposed(window)
    assert window.width() == screen[0] and window.height() == screen[1] - TITLE_AND_PANEL
    others = tuple(p for p in window.panes if p.key not in ("narratives", "format"))  # uiB's panes: their tests
    for index in (0, 1):
        window.set_current(index)
        _settle(qtbot, window)
        assert overlaps(window, skip=others) == []
        page = window.stack.currentWidget()
        # The pane fits its page: no scroll bar is needed to reach any of it.
        assert window.panes[index].minimumSizeHint().width() <= page.width()
        assert window.panes[index].minimumSizeHint().height() <= page.height()
        assert not page.verticalScrollBar().isVisible() and not page.horizontalScrollBar().isVisible()
        assert window.panes[index].size() == page.viewport().size()
    window.format.set_side_by_side(True, columns=3)
    _settle(qtbot, window)
    assert overlaps(window.format) == []
    for combo in window.format.side.combos:  # every variant's name whole in each of the three columns
        for i in range(combo.count()):
            need = combo.fontMetrics().horizontalAdvance(combo.itemText(i))
            assert need + 24 <= combo.width(), (combo.itemText(i), combo.width())


def test_a_pane_larger_than_its_page_scrolls_and_keeps_its_minimum(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    from medcal_gui.ui.widgets.page import Page

    window.resize(*MIN_SIZE)
    window.show()
    qtbot.waitExposed(window)
    big = QWidget()
    big.setMinimumSize(1400, 900)
    page = Page(big)
    window.stack.addWidget(page)
    window.stack.setCurrentWidget(page)
    QApplication.processEvents()
    assert (window.width(), window.height()) == MIN_SIZE  # the pane did not grow the window
    assert big.width() >= 1400 and big.height() >= 900
    assert page.verticalScrollBar().isVisible() and page.horizontalScrollBar().isVisible()
    page.verticalScrollBar().setValue(page.verticalScrollBar().maximum())
    assert page.verticalScrollBar().maximum() >= 900 - page.viewport().height()  # the bottom is reachable


def test_decode_as_list_and_cell_show_whole_names(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    window.resize(1280, 720 - TITLE_AND_PANEL)
    window.show()
    qtbot.waitExposed(window)
    pane = window.narratives
    view = pane.file_view
    editor = view.indexWidget(pane.files.index(0, pane.files.OVERRIDE))
    assert isinstance(editor, QComboBox)
    widest = max(editor.fontMetrics().horizontalAdvance(e) for e in ENCODINGS)
    assert editor.view().minimumWidth() >= widest
    assert view.columnWidth(pane.files.OVERRIDE) >= widest + 20


def test_preview_checklist_split_does_not_move_with_the_variant(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    window.resize(1280, 720 - TITLE_AND_PANEL)
    window.show()
    window.set_current(1)
    _settle(qtbot, window)
    split = window.format.findChild(QSplitter)
    before = split.sizes()
    preview_top = window.format.stack.mapTo(window.format, window.format.stack.rect().topLeft()).y()
    for name in ("clinical_analysis", "night_sentinel", "quantization_calibration", "night_sentinel"):
        window.format.set_variant(name)
        _settle(qtbot, window)
        assert split.sizes() == before, name
        assert window.format.stack.mapTo(window.format, window.format.stack.rect().topLeft()).y() == preview_top


def test_overlap_finder_sees_an_overlap(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QLabel, QVBoxLayout

    box = QWidget()
    qtbot.addWidget(box)
    lay = QVBoxLayout(box)
    a, b = QLabel("a"), QLabel("b")
    lay.addWidget(a)
    lay.addWidget(b)
    box.resize(200, 100)
    box.show()
    qtbot.waitExposed(box)
    assert overlaps(box) == []
    lay.setEnabled(False)  # freeze the layout, then put b over a, as a misplaced widget would be
    b.setGeometry(a.geometry().translated(0, a.height() // 2))
    assert len(overlaps(box)) == 1
