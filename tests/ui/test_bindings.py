"""The Qt bindings in use keep Python's reference counts balanced (why pyproject bounds out 6.12.0).

PySide6 6.12.0 drops one reference to None on every call of a void method and one to True on every emit;
on Python 3.11 neither is immortal, so a long session ends in "deallocating None/True" or a crash inside
garbage collection. A few calls are enough to see it without killing the test process.
"""

from __future__ import annotations

import sys

import PySide6
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

CALLS = 50


class _Source(QObject):
    sig = Signal(object)


def _delta(obj: object, fn) -> int:  # type: ignore[no-untyped-def]
    before = sys.getrefcount(obj)
    for _ in range(CALLS):
        fn()
    return sys.getrefcount(obj) - before


def test_emit_keeps_true_balanced(qapp) -> None:  # type: ignore[no-untyped-def]
    src = _Source()
    got: list[object] = []
    src.sig.connect(got.append)
    assert abs(_delta(True, lambda: src.sig.emit(1))) <= 2, f"PySide6 {PySide6.__version__} leaks True in emit"
    assert len(got) == CALLS


def test_void_calls_keep_none_balanced(qapp) -> None:  # type: ignore[no-untyped-def]
    w = QWidget()
    d = _delta(None, lambda: (w.setWindowTitle("x"), w.setVisible(False), qapp.processEvents()))
    assert abs(d) <= 2, f"PySide6 {PySide6.__version__} drops {-d} references to None in {3 * CALLS} calls"
