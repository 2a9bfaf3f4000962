"""Terminal rendering of the job protocol: a one-line progress bar on stderr, and Ctrl-C as cancel."""

from __future__ import annotations

import _thread
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from medcal_gui.core.jobs import CancelToken, Progress


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return ""
    s = int(s)
    return f" ETA {s // 60}:{s % 60:02d}"


class TerminalProgress:
    """Callable progress sink that redraws one line per stage (plain lines when not a tty)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self._stage: str | None = None
        self._last_pct = -1

    def __call__(self, p: Progress) -> None:
        if self.quiet:
            return
        frac = p.fraction
        parts = [f"{p.stage}:"]
        if p.total:
            parts.append(f"{p.done:g}/{p.total:g} {p.unit}".rstrip())
        elif p.done:
            parts.append(f"{p.done:g} {p.unit}".rstrip())
        if p.rate:
            parts.append(f"{p.rate:.1f} {p.rate_unit}/s" if p.rate_unit else f"{p.rate:.1f}/s")
        for k, v in p.extra.items():
            parts.append(f"{k} {v:.4g}")
        if p.message:
            parts.append(p.message)
        text = " ".join(parts) + _fmt_eta(p.eta_s)
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns
            bar = ""
            if frac is not None:
                n = 20
                filled = int(frac * n)
                bar = "[" + "#" * filled + "." * (n - filled) + f"] {frac * 100:5.1f}% "
            line = (bar + text)[: width - 1]
            end = "\n" if (frac is not None and frac >= 1.0) else ""
            self.stream.write("\r\x1b[K" + line + end)
        else:
            pct = int(frac * 100) if frac is not None else -1
            if p.stage == self._stage and pct == self._last_pct and not p.message:
                return
            self.stream.write(text + "\n")
            self._last_pct = pct
        self._stage = p.stage
        self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


# After the first Ctrl-C (or SIGTERM) the job stops and removes its partial files within this time (the rule
# every command is tested against): a second signal inside it is a double tap, not a stuck job
GRACE_S = 2.0


@contextmanager
def sigint_cancels(token: CancelToken) -> Iterator[CancelToken]:
    """While active, the first Ctrl-C (or SIGTERM) cancels the job through `token` instead of killing the
    process. A second one within GRACE_S is absorbed: a KeyboardInterrupt raised then lands in the very
    clean-up that removes the partial files (or in a ctypes callback, which prints it as a traceback and
    swallows it). Later, the job is stuck, and the second signal aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield token
        return
    last_signal = signal.SIGINT

    def handler(signum: int, frame: object) -> None:
        nonlocal last_signal
        last_signal = signal.Signals(signum)
        if not token.cancelled:
            print(f"\ncancelling... (if it is not done within {GRACE_S:g} s, Ctrl-C again aborts at once)",
                  file=sys.stderr)
            token.cancel()
            return
        if token.cancelled_at is not None and time.monotonic() - token.cancelled_at < GRACE_S:
            return
        raise KeyboardInterrupt

    old_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        # The KeyboardInterrupt was raised inside a callback C called (llama.cpp's abort, log or eval
        # callback): ctypes cannot pass it on and would print it as a traceback. Deliver the signal again a
        # moment later, when Python code of our own is running.
        if info.exc_type is KeyboardInterrupt:
            retry = threading.Timer(0.05, _thread.interrupt_main, (int(last_signal),))
            retry.daemon = True  # never holds the process open once the job has ended
            retry.start()
            return
        old_hook(info)

    old = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)  # `kill PID` cancels too: children stop, partials go
    sys.unraisablehook = unraisable
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, old)
        signal.signal(signal.SIGTERM, old_term)
        sys.unraisablehook = old_hook
