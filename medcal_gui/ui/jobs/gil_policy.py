"""How soon a busy worker thread hands the GIL to the GUI thread, while the Qt application runs.

While a worker runs pure Python (the converter parsing a 262k-token vocabulary and packing it into the GGUF
header: 1-3 s at 4B), the GUI thread gets the GIL only by asking for it and waiting out the interpreter's
switch interval, 5 ms by default. It asks far more often than its own slots suggest: py-spy showed it waiting
in Shiboken's GIL guard (PySide6 takes the GIL for calls into the widget classes we define) through a repaint.
The longest GUI-thread stall while the window converted the 4B stand-in (bench_scale.py --steps gui_convert,
2026-12-06): 988-1165 ms at 5 ms, 368-451 at 1 ms, 155-168 at 0.2 ms, 116-122 at 0.1 ms, with the
conversion's own time unchanged (10.3-10.7 s): the interval matters only when a thread asks for the GIL.
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.0001


class GilPolicy:
    """While installed, a thread holding the GIL hands it over after SWITCH_INTERVAL_S when another asks."""

    def __init__(self) -> None:
        self._saved: float | None = None

    def install(self) -> GilPolicy:
        if self._saved is None:
            self._saved = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        return self

    def uninstall(self) -> None:
        if self._saved is not None:
            sys.setswitchinterval(self._saved)
            self._saved = None
