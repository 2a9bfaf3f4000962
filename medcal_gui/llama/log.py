"""Route llama.cpp's own log into Python logging (`medcal_gui.llama`), one record per line, per thread.

llama.cpp calls the log callback on the thread that called into it, and writes a line in pieces, so pieces
are joined until a newline in a buffer of the calling thread (log_lines.LineJoiner): two jobs running
llama.cpp at once (a token count and a dry-run quantize) never mix their lines. A line listener
(`add_line_listener`, `capture_lines`) hears the lines of the thread that added it only, unless it asks for
every thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from medcal_gui.llama import quantize_ctypes as qc
from medcal_gui.llama.log_lines import LineJoiner

LOG = logging.getLogger("medcal_gui.llama")

LineListener = Callable[[int, str], None]

_LEVELS = {
    qc.GGML_LOG_LEVEL_NONE: logging.INFO,
    qc.GGML_LOG_LEVEL_DEBUG: logging.DEBUG,
    qc.GGML_LOG_LEVEL_INFO: logging.INFO,
    qc.GGML_LOG_LEVEL_WARN: logging.WARNING,
    qc.GGML_LOG_LEVEL_ERROR: logging.ERROR,
}

# Routine notices llama.cpp logs as warnings; logged at INFO so a terminal is not flooded (the quantizer
# prints one per tensor whose row length does not fit a k-quant, and one per --tensor-type override; medcal
# summarises them instead).
_DEMOTE = ("not divisible by", "was not control-type", "using full-size SWA cache", "applying manual override")
# What llama.cpp logs as errors when medcal's abort callback stops a decode (a cancel): status 1 is
# GGML_STATUS_ABORTED, llama_decode's 2 "aborted". A normal cancel is not an error: logged at INFO.
_ABORTED = ("failed with error 1", "compute status: 1", "failed to decode, ret = 2",
            "removing memory module entries")

_lock = threading.Lock()  # guards the listener list and the callback
_listeners: list[tuple[int | None, LineListener]] = []  # (thread ident, or None for every thread; fn)
_pending = LineJoiner()


class _Muted(threading.local):
    on = False


_muted = _Muted()
# The C side keeps a raw pointer to this callback for the rest of the process: never drop it.
_callback: Any = None


def _emit(level: int, line: str) -> None:
    py_level = _LEVELS.get(level, logging.INFO)
    if py_level == logging.WARNING and any(d in line for d in _DEMOTE) or any(a in line for a in _ABORTED):
        py_level = logging.INFO
    if not _muted.on:
        LOG.log(py_level, "%s", line)
    me = threading.get_ident()
    with _lock:
        listeners = [fn for ident, fn in _listeners if ident is None or ident == me]
    for fn in listeners:
        try:
            fn(level, line)
        except Exception:  # a listener must never break llama.cpp's logging
            LOG.debug("log listener failed", exc_info=True)


def _on_log(level: int, raw: bytes) -> None:
    for lv, line in _pending.feed(level, raw):  # this thread's buffer: no lock needed
        _emit(lv, line)


def route_llama_logs() -> None:
    """Send llama.cpp's log to logging. Safe to call any number of times."""
    global _callback
    with _lock:
        if _callback is not None:
            return
        _callback = qc.make_log_callback(_on_log)
    qc.set_log_callback(_callback)


def add_line_listener(fn: LineListener, *, all_threads: bool = False) -> Callable[[], None]:
    """Call `fn(level, line)` for every complete llama.cpp log line logged by the calling thread (by any
    thread with `all_threads=True`); returns a function removing it."""
    route_llama_logs()
    entry = (None if all_threads else threading.get_ident(), fn)
    with _lock:
        _listeners.append(entry)

    def remove() -> None:
        with _lock:
            if entry in _listeners:
                _listeners.remove(entry)

    return remove


@contextlib.contextmanager
def capture_lines(fn: LineListener | None = None) -> Iterator[list[tuple[int, str]]]:
    """Collect (level, line) for the llama.cpp lines logged by this thread inside the block (and pass
    each to `fn` as it comes); the trailing unfinished line is flushed when the block ends."""
    lines: list[tuple[int, str]] = []

    def take(level: int, line: str) -> None:
        lines.append((level, line))
        if fn is not None:
            fn(level, line)

    remove = add_line_listener(take)
    try:
        yield lines
    finally:
        flush_pending()
        remove()


@contextlib.contextmanager
def muted() -> Iterator[None]:
    """Inside the block, this thread's llama.cpp lines reach its listeners but not the log (a dry run done
    beside the real one, whose lines the log already shows)."""
    before, _muted.on = _muted.on, True
    try:
        yield
    finally:
        _muted.on = before


def flush_pending() -> None:
    """Emit this thread's trailing line that never got its newline (progress dots, a crash message)."""
    for lv, line in _pending.flush():
        _emit(lv, line)
