"""The two places `llama_model_quantize` runs: in-process (`run_quantize`, used for the quick dry run) and
in a spawned child process (`child_main`), because the real run cannot be interrupted any other way.

The child sends its llama.cpp log lines to the parent over a pipe as ("log", level, line) and finishes with
("done", return_code). Keep this module light: the child imports it fresh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class QuantizeJob:
    """Everything `llama_model_quantize` needs, in picklable form."""

    model: str
    out: str
    ftype: int
    nthread: int
    allow_requantize: bool
    pure: bool
    dry_run: bool
    output_tensor_type: int | None
    token_embedding_type: int | None
    imatrix: Mapping[str, np.ndarray] | None
    kv_overrides: Sequence[tuple[str, int | str]]


def run_quantize(job: QuantizeJob, on_line: Callable[[int, str], None]) -> int:
    """Run llama_model_quantize here, passing every complete log line to `on_line`; returns its code."""
    from medcal_gui.engine import ggml_ctypes as gc
    from medcal_gui.engine.llama_log import add_line_listener, flush_pending, route_llama_logs

    route_llama_logs()
    remove = add_line_listener(on_line)
    try:
        qa = gc.quantize_params(
            ftype=job.ftype, nthread=job.nthread, allow_requantize=job.allow_requantize, pure=job.pure,
            dry_run=job.dry_run, output_tensor_type=job.output_tensor_type,
            token_embedding_type=job.token_embedding_type, imatrix=job.imatrix, kv_overrides=job.kv_overrides,
        )
        rc = gc.model_quantize(Path(job.model), Path(job.out), qa)
        flush_pending()
        return rc
    finally:
        remove()


def child_main(conn: Any, job: QuantizeJob) -> None:
    """Entry point of the spawned child process."""
    import logging

    # the lines go to the parent; keep this process's own stderr quiet
    logging.getLogger("medcal_gui.llama").propagate = False
    logging.getLogger("medcal_gui.llama").addHandler(logging.NullHandler())
    rc = 1
    try:
        rc = run_quantize(job, lambda level, line: conn.send(("log", level, line)))
    except BaseException as exc:  # report, then exit non-zero
        try:
            conn.send(("log", 4, f"medcal quantize child: {type(exc).__name__}: {exc}"))
        except Exception:
            pass
    finally:
        try:
            conn.send(("done", rc))
            conn.close()
        except Exception:
            pass
