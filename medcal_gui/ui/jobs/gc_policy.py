"""Garbage collection on the GUI thread only, while the Qt application runs.

CPython's cyclic collector runs on whichever thread happens to allocate past a threshold: a worker thread
can then free a cycle that holds a Qt object and destroy its C++ side off the GUI thread (a crash inside
"Garbage-collecting"). As mature Qt apps do (Anki's `GarbageCollector`), automatic collection is switched
off while the window lives and a timer on the GUI thread collects whenever the generation counts pass the
interpreter's own thresholds. Worker jobs hold no Qt objects, so their garbage is collected here too.
"""

from __future__ import annotations

import gc
import logging

from PySide6.QtCore import QObject, QTimer

LOG = logging.getLogger("medcal_gui.ui")

INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """While installed, `gc` collects only from this object's timer (the GUI thread)."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.collections = 0  # timer ticks that collected (for tests and the log)
        self._was_enabled = gc.isenabled()
        self._installed = False
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)

    def install(self) -> GuiThreadCollector:
        if not self._installed:
            self._was_enabled = gc.isenabled()
            gc.disable()
            self.timer.start()
            self._installed = True
        return self

    def uninstall(self) -> None:
        """Collect once more here, then give collection back to the interpreter as it was."""
        if self._installed:
            self.timer.stop()
            gc.collect()
            if self._was_enabled:
                gc.enable()
            self._installed = False

    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds (youngest first, as CPython does)."""
        c0, c1, c2 = gc.get_count()
        t0, t1, t2 = self.thresholds
        if c0 <= t0:
            return
        gen = 2 if (c1 > t1 and c2 > t2) else 1 if c1 > t1 else 0
        gc.collect(gen)
        self.collections += 1
