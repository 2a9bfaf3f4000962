"""llama.cpp writes a log line in pieces (the quantizer prints a tensor's name, then "converting to ..", then
the size); `LineJoiner` joins them into whole lines, per calling thread. Light on purpose: the quantize child
uses it without the rest of the engine."""

from __future__ import annotations

import threading

from medcal_gui.llama.quantize_ctypes import GGML_LOG_LEVEL_CONT, GGML_LOG_LEVEL_INFO


class LineJoiner(threading.local):
    """Each thread's unfinished line; `feed` returns the (level, line) pairs a piece completes."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.level = GGML_LOG_LEVEL_INFO

    def feed(self, level: int, raw: bytes) -> list[tuple[int, str]]:
        text = raw.decode("utf-8", "replace")
        if level != GGML_LOG_LEVEL_CONT:
            # a warning or error finishing an info line raises the whole line's level
            self.level = level if not self.pieces else max(level, self.level)
        self.pieces.append(text)
        if "\n" not in text:
            return []
        *complete, rest = "".join(self.pieces).split("\n")
        self.pieces.clear()
        if rest:
            self.pieces.append(rest)
        return [(self.level, ln.rstrip()) for ln in complete if ln.strip()]

    def flush(self) -> list[tuple[int, str]]:
        """The trailing line that never got its newline (progress dots, a crash message)."""
        text = "".join(self.pieces)
        self.pieces.clear()
        return [(self.level, text.rstrip())] if text.strip() else []
