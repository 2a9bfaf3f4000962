"""Route llama.cpp's own log into Python logging (`medcal_gui.llama`), one record per line.

llama.cpp writes a line in pieces (the quantizer prints a tensor's name, then "converting to ..", then the
size), so pieces are joined until a newline. Extra listeners get every complete line with its ggml level;
the quantize child uses one to send its per-tensor lines to the parent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from medcal_gui.engine import ggml_ctypes as gc

LOG = logging.getLogger("medcal_gui.llama")

LineListener = Callable[[int, str], None]

_LEVELS = {
    gc.GGML_LOG_LEVEL_NONE: logging.INFO,
    gc.GGML_LOG_LEVEL_DEBUG: logging.DEBUG,
    gc.GGML_LOG_LEVEL_INFO: logging.INFO,
    gc.GGML_LOG_LEVEL_WARN: logging.WARNING,
    gc.GGML_LOG_LEVEL_ERROR: logging.ERROR,
}

# Routine notices llama.cpp logs as warnings; logged at INFO so a terminal is not flooded (the quantizer
# prints one per tensor whose row length does not fit a k-quant; medcal summarises them instead).
_DEMOTE = ("not divisible by", "was not control-type", "using full-size SWA cache")
# What llama.cpp logs as errors when medcal's abort callback stops a decode (a cancel): status 1 is
# GGML_STATUS_ABORTED, llama_decode's 2 "aborted". A normal cancel is not an error: logged at INFO.
_ABORTED = ("failed with error 1", "compute status: 1", "failed to decode, ret = 2",
            "removing memory module entries")

_lock = threading.Lock()
_listeners: list[LineListener] = []
_pending: list[str] = []
_pending_level = gc.GGML_LOG_LEVEL_INFO
# The C side keeps a raw pointer to this callback for the rest of the process: never drop it.
_callback: Any = None


def _emit(level: int, line: str) -> None:
    py_level = _LEVELS.get(level, logging.INFO)
    if py_level == logging.WARNING and any(d in line for d in _DEMOTE) or any(a in line for a in _ABORTED):
        py_level = logging.INFO
    LOG.log(py_level, "%s", line)
    for fn in list(_listeners):
        try:
            fn(level, line)
        except Exception:  # a listener must never break llama.cpp's logging
            LOG.debug("log listener failed", exc_info=True)


def _on_log(level: int, raw: bytes) -> None:
    global _pending_level
    text = raw.decode("utf-8", "replace")
    lines: list[tuple[int, str]] = []
    with _lock:
        if level != gc.GGML_LOG_LEVEL_CONT:
            # a warning or error finishing an info line raises the whole line's level
            _pending_level = level if not _pending else max(level, _pending_level)
        _pending.append(text)
        joined = "".join(_pending)
        if "\n" in joined:
            *complete, rest = joined.split("\n")
            lines = [(_pending_level, ln) for ln in complete if ln.strip()]
            _pending.clear()
            if rest:
                _pending.append(rest)
    for lvl, ln in lines:
        _emit(lvl, ln.rstrip())


def route_llama_logs() -> None:
    """Send llama.cpp's log to logging. Safe to call any number of times."""
    global _callback
    with _lock:
        if _callback is not None:
            return
        _callback = gc.make_log_callback(_on_log)
    gc.set_llama_log_callback(_callback)


def add_line_listener(fn: LineListener) -> Callable[[], None]:
    """Call `fn(level, line)` for every complete llama.cpp log line; returns a function removing it."""
    route_llama_logs()
    with _lock:
        _listeners.append(fn)

    def remove() -> None:
        with _lock:
            if fn in _listeners:
                _listeners.remove(fn)

    return remove


def flush_pending() -> None:
    """Emit a trailing line that never got its newline (llama.cpp's progress dots, a crash message)."""
    with _lock:
        text = "".join(_pending)
        _pending.clear()
        level = _pending_level
    if text.strip():
        _emit(level, text.rstrip())
