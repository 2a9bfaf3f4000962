"""llama.cpp's log pieces become whole lines, per thread, at the level of their most severe piece."""

from __future__ import annotations

import threading

from medcal_gui.llama.log_lines import LineJoiner
from medcal_gui.llama.quantize_ctypes import (
    GGML_LOG_LEVEL_CONT,
    GGML_LOG_LEVEL_ERROR,
    GGML_LOG_LEVEL_INFO,
    GGML_LOG_LEVEL_WARN,
)


def test_pieces_join_into_the_quantizers_tensor_line() -> None:
    j = LineJoiner()
    assert j.feed(GGML_LOG_LEVEL_INFO, b"[   1/ 236]          token_embd.weight - [ 640, 262144], ") == []
    assert j.feed(GGML_LOG_LEVEL_CONT, b"converting to q6_K .. ") == []
    assert j.feed(GGML_LOG_LEVEL_CONT, b"size = 320.00 MiB -> 131.25 MiB\n[   2/ 236] next") == [
        (GGML_LOG_LEVEL_INFO, "[   1/ 236]          token_embd.weight - [ 640, 262144], converting to q6_K .. "
                              "size = 320.00 MiB -> 131.25 MiB")]
    assert j.flush() == [(GGML_LOG_LEVEL_INFO, "[   2/ 236] next")]
    assert j.flush() == []


def test_a_warning_that_finishes_a_line_raises_the_whole_line() -> None:
    j = LineJoiner()
    j.feed(GGML_LOG_LEVEL_INFO, b"[  2/28] blk.0.attn_k.weight ... ")
    j.feed(GGML_LOG_LEVEL_WARN, b"falling back to q5_0")
    assert j.feed(GGML_LOG_LEVEL_ERROR, b" failed to quantize\n") == [
        (GGML_LOG_LEVEL_ERROR, "[  2/28] blk.0.attn_k.weight ... falling back to q5_0 failed to quantize")]
    assert j.feed(GGML_LOG_LEVEL_INFO, b"plain\n\n  \n") == [(GGML_LOG_LEVEL_INFO, "plain")]  # blank lines dropped


def test_each_thread_joins_its_own_pieces() -> None:
    j = LineJoiner()
    j.feed(GGML_LOG_LEVEL_INFO, b"main thread ")
    other: list[tuple[int, str]] = []

    def worker() -> None:
        j.feed(GGML_LOG_LEVEL_WARN, b"worker ")
        other.extend(j.feed(GGML_LOG_LEVEL_CONT, b"line\n"))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert other == [(GGML_LOG_LEVEL_WARN, "worker line")]
    assert j.feed(GGML_LOG_LEVEL_CONT, "ends €\n".encode()) == [(GGML_LOG_LEVEL_INFO, "main thread ends €")]
