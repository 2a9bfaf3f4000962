"""How soon a busy worker thread hands the GIL to the GUI thread, while the Qt application runs.

While a worker runs pure Python (the converter parsing a 262k-token vocabulary and packing it into the GGUF
header: 1-3 s at 4B), the GUI thread gets the GIL only by asking for it and waiting out the interpreter's
switch interval, 5 ms by default. It asks far more often than its own slots suggest: py-spy showed it waiting
in Shiboken's GIL guard (PySide6 takes the GIL for calls into the widget classes we define) through a repaint.
The longest GUI-thread stall while the window converted the 4B stand-in (bench_scale.py --steps gui_convert,
2026-12-06): 988-1165 ms at 5 ms, 368-451 at 1 ms, 155-168 at 0.2 ms, 116-122 at 0.1 ms, with the
conversion's own time unchanged (10.3-10.7 s): the interval matters only when a thread asks for the GIL.

The interval helps only while the holder runs. A holder the kernel has preempted keeps the GIL until it runs
again, and a thread at the lowest priority waits for that behind all the machine's other work: the output
hash's thread (quantize/output_hash.py) lowers itself to nice 19 for the CLI, and under load the GUI thread waited
65 ms for it while it sat 72-136 ms in the run queue holding the GIL. While the policy is installed no thread of
the app lowers itself (output_hash.LOWER_PRIORITY).
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.0001


class GilPolicy:
    """While installed, a thread holding the GIL hands it over after SWITCH_INTERVAL_S when another asks, and no
    thread of the app runs below the GUI thread's priority."""

    def __init__(self) -> None:
        self._saved: float | None = None
        self._saved_lower = True

    def install(self) -> GilPolicy:
        if self._saved is None:
            from medcal_gui.quantize import output_hash

            self._saved = sys.getswitchinterval()
            self._saved_lower = output_hash.LOWER_PRIORITY
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            output_hash.LOWER_PRIORITY = False
        return self

    def uninstall(self) -> None:
        if self._saved is not None:
            from medcal_gui.quantize import output_hash

            sys.setswitchinterval(self._saved)
            output_hash.LOWER_PRIORITY = self._saved_lower
            self._saved = None
