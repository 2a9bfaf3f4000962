"""Work-arounds for Qt binding bugs. Emit every Python-side signal through `emit(signal, *args)`.

PySide6 6.12.0's `SignalInstance.emit()` returns `True` without taking a reference to it, so every emit
from Python drops one reference to `True`; after a few thousand emits CPython aborts with
"Fatal Python error: bool_dealloc". We detect the bug once at import (four probe emits) and, where it is
present, give back the reference each emit takes. Where the bindings are fixed, `emit` is a plain emit.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal

_PROBES = 4


class _Probe(QObject):
    ping = Signal()


def _emit_drops_a_reference() -> bool:
    probe = _Probe()
    before_true, before_false = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(_PROBES):
        probe.ping.emit()
    lost = before_true - sys.getrefcount(True) + before_false - sys.getrefcount(False)
    return lost >= _PROBES


_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None

EMIT_DROPS_REFERENCE = _emit_drops_a_reference()
if EMIT_DROPS_REFERENCE:
    for _ in range(_PROBES):
        _incref(True)  # what the probes took


def emit(signal: Any, *args: Any) -> None:
    """`signal.emit(*args)`, without the reference leak of the bindings in use."""
    result = signal.emit(*args)
    if EMIT_DROPS_REFERENCE and isinstance(result, bool):
        _incref(result)
