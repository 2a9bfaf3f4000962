"""Inference speed the way `llama-bench -p 512 -n 128` measures it (tools/llama-bench/llama-bench.cpp).

Two tests on one loaded model, each in a fresh context sized as llama-bench sizes it (n_ctx = the test's
tokens, n_batch 2048 and n_ubatch 512, both capped at n_ctx by llama.cpp):
- pp (prompt processing): `n_prompt` tokens (BOS, then random ids) decoded as one batch with only the last
  token's logits asked for, KV cache cleared before each repetition;
- tg (text generation): `n_gen` single-token decodes, each with its logits and a synchronize, from an empty
  cache.
Each test runs once unmeasured first (llama-bench's warm-up: the whole prompt for pp, one token for tg),
then `reps` times; a repetition's rate is tokens / its wall time, and the figures are the mean and sample
standard deviation of those rates, as llama-bench's `avg_ts` and `stddev_ts`.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from medcal_gui.core.errors import Cancelled, InputError, ModelError
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.llama import ggml_ctypes as gc
from medcal_gui.llama.context import ensure_backend
from medcal_gui.llama.cpu_quirks import model_params

STAGE = "speed"
N_PROMPT = 512
N_GEN = 128
REPS = 5
N_BATCH = 2048  # llama-bench's defaults
N_UBATCH = 512


@dataclass
class SpeedResult:
    model: Path
    threads: int
    reps: int
    n_prompt: int
    n_gen: int
    pp_tokens_per_s: float
    pp_sd: float
    tg_tokens_per_s: float
    tg_sd: float
    seconds: float
    pp_samples_ns: list[int] = field(default_factory=list)
    tg_samples_ns: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = str(self.model)
        return d


def mean_sd(samples_ns: list[int], n_tokens: int) -> tuple[float, float]:
    """llama-bench's avg_ts and stddev_ts: per-repetition rates, their mean and sample standard deviation."""
    rates = [1e9 * n_tokens / t for t in samples_ns if t > 0]
    if not rates:
        return 0.0, 0.0
    return statistics.fmean(rates), (statistics.stdev(rates) if len(rates) > 1 else 0.0)


class _Bench:
    """One loaded model; a context per test, freed after it."""

    def __init__(self, path: Path, threads: int, cancel: CancelToken) -> None:
        ensure_backend()
        self.path, self.threads, self.cancel = path, threads, cancel
        self.model: Any = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params(0))
        if not self.model:
            raise ModelError(f"llama.cpp could not load the model {path}: it is damaged, truncated or not a "
                             "GGUF model (run `medcal inspect` on it).")
        vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(vocab))
        self._abort = gc.make_abort_callback(lambda: cancel.cancelled)  # referenced while C holds it
        self.rng = np.random.default_rng(0)

    def context(self, n_ctx: int) -> Any:
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = N_BATCH
        cp.n_ubatch = N_UBATCH
        cp.n_threads = cp.n_threads_batch = self.threads
        ctx = llama_cpp.llama_init_from_model(self.model, cp)
        if not ctx:
            raise ModelError(f"llama.cpp could not create a context of {n_ctx} tokens for {self.path}.")
        gc.set_abort_callback(ctx, self._abort)
        return ctx

    def timed(self, n_ctx: int, warm_up: Callable[[Any], None], run: Callable[[Any], None], reps: int,
              tick: Callable[[str], None], label: str) -> list[int]:
        """llama-bench's loop: a context of `n_ctx`, one warm-up, then `reps` runs each on an emptied cache;
        the nanoseconds of each run."""
        ctx = self.context(n_ctx)
        out: list[int] = []
        try:
            mem = llama_cpp.llama_get_memory(ctx)
            llama_cpp.llama_memory_clear(mem, False)
            warm_up(ctx)
            tick(f"{label} warm-up")
            for i in range(reps):
                self.cancel.check()
                llama_cpp.llama_memory_clear(mem, False)
                t = time.perf_counter_ns()
                run(ctx)
                out.append(time.perf_counter_ns() - t)
                tick(f"{label} {i + 1}/{reps}")
        finally:
            llama_cpp.llama_free(ctx)
        return out

    def _decode(self, ctx: Any, batch: Any) -> None:
        rc = llama_cpp.llama_decode(ctx, batch)
        if self.cancel.cancelled:
            raise Cancelled()
        if rc != 0:
            raise ModelError(f"llama.cpp failed to decode with {self.path.name} (code {rc}).")

    def prompt(self, ctx: Any, n: int) -> None:
        """llama-bench's test_prompt for n <= n_batch: one batch, BOS first, logits for the last token only."""
        batch = llama_cpp.llama_batch_init(n, 0, 1)
        try:
            v = gc.batch_views(batch, n)
            v.token[:] = self.rng.integers(0, self.n_vocab, n, dtype=np.int32)
            if self.add_bos:
                v.token[0] = self.bos
            v.pos[:] = np.arange(n, dtype=np.int32)
            v.n_seq_id[:] = 1
            v.logits[:] = 0
            v.logits[n - 1] = 1
            batch.n_tokens = n
            self._decode(ctx, batch)
            llama_cpp.llama_synchronize(ctx)
        finally:
            llama_cpp.llama_batch_free(batch)

    def generate(self, ctx: Any, n: int) -> None:
        """llama-bench's test_gen: n single-token decodes after what the cache holds, each synchronized."""
        batch = llama_cpp.llama_batch_init(1, 0, 1)
        try:
            v = gc.batch_views(batch, 1)
            v.n_seq_id[0] = 1
            v.logits[0] = 1
            batch.n_tokens = 1
            pos = int(llama_cpp.llama_memory_seq_pos_max(llama_cpp.llama_get_memory(ctx), 0)) + 1
            token = self.bos if self.add_bos else int(self.rng.integers(0, self.n_vocab))
            for _ in range(n):
                v.token[0] = token
                v.pos[0] = pos
                pos += 1
                self._decode(ctx, batch)
                llama_cpp.llama_synchronize(ctx)
                token = int(self.rng.integers(0, self.n_vocab))
        finally:
            llama_cpp.llama_batch_free(batch)

    def close(self) -> None:
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None


def measure_speed(model: Path, *, threads: int | None = None, reps: int = REPS, n_prompt: int = N_PROMPT,
                  n_gen: int = N_GEN, progress: ProgressCallback = no_progress,
                  cancel: CancelToken | None = None) -> SpeedResult:
    """pp`n_prompt` and tg`n_gen` tokens/s of `model` (mean and sd over `reps` repetitions after a warm-up).

    Cancel stops within the running decode (llama.cpp's abort callback) or between generated tokens.
    """
    cancel = cancel or CancelToken()
    model = Path(model)
    if not model.is_file():
        raise ModelError(f"The model file {model} does not exist.")
    if reps < 1:
        raise InputError(f"The number of repetitions must be at least 1 (got {reps}).")
    if not 1 <= n_prompt <= N_BATCH or n_gen < 1:
        raise InputError(f"The speed test needs 1..{N_BATCH} prompt tokens and at least 1 generated token "
                         f"(got {n_prompt} and {n_gen}).")
    threads = threads or os.cpu_count() or 1
    t0 = time.monotonic()
    total = 2 * (reps + 1)
    step = 0

    def tick(what: str) -> None:
        nonlocal step
        step += 1
        progress(Progress(STAGE, step, total, unit="runs", message=f"{model.name} {what}"))

    progress(Progress(STAGE, 0, total, unit="runs", message=f"{model.name} loading"))
    bench = _Bench(model, threads, cancel)
    try:
        pp_ns = bench.timed(n_prompt, lambda c: bench.prompt(c, n_prompt), lambda c: bench.prompt(c, n_prompt),
                            reps, tick, f"pp{n_prompt}")
        tg_ns = bench.timed(n_gen, lambda c: bench.generate(c, 1), lambda c: bench.generate(c, n_gen),
                            reps, tick, f"tg{n_gen}")
    finally:
        bench.close()
    pp, pp_sd = mean_sd(pp_ns, n_prompt)
    tg, tg_sd = mean_sd(tg_ns, n_gen)
    return SpeedResult(model=model, threads=threads, reps=reps, n_prompt=n_prompt, n_gen=n_gen,
                       pp_tokens_per_s=pp, pp_sd=pp_sd, tg_tokens_per_s=tg, tg_sd=tg_sd,
                       seconds=time.monotonic() - t0, pp_samples_ns=pp_ns, tg_samples_ns=tg_ns)
