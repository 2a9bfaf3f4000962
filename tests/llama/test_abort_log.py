"""A cancel stops llama.cpp's decode through the abort callback: that is not an error, and the log says so."""

from __future__ import annotations

import logging
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from medcal_gui.llama import log as llama_log
from medcal_gui.llama.context import ChunkContext


def test_an_aborted_decode_logs_no_error(tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    llama_log.route_llama_logs()
    n = 32
    with caplog.at_level(logging.INFO, logger="medcal_gui.llama"), \
            ChunkContext(tiny_model, n, 1, should_abort=lambda: True) as c:
        c.views.token[:] = 1
        c.views.pos[:] = np.arange(n, dtype=np.int32)
        c.views.n_seq_id[:] = 1
        c.views.logits[:] = 1
        c.batch.n_tokens = n
        rc = llama_cpp.llama_decode(c.ctx, c.batch)
        llama_log.flush_pending()
    assert rc == 2  # llama.cpp's "aborted"
    lines = [r for r in caplog.records if r.name == "medcal_gui.llama"]
    assert any("failed to decode, ret = 2" in r.getMessage() for r in lines)  # it was logged ...
    assert [r.getMessage() for r in lines if r.levelno >= logging.ERROR] == []  # ... but not as an error
