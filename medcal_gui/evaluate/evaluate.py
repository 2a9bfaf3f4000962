"""Verify a quant against its base: perplexity and KL divergence, the way `llama-perplexity --kl-divergence`
measures them.

The text is tokenized whole (BOS added when the vocabulary asks for it; special tokens parsed unless told
not to - llama-perplexity never parses them) and cut into chunks of n_ctx tokens; the tail that does not fill
a chunk is dropped. Each chunk is decoded in one batch with BOS in first place and a cleared KV cache, and
scored on its second half: positions first = n_ctx/2 .. n_ctx-2 predict the tokens after them, and only
those positions' logits are asked of llama.cpp. The base runs once per (base file, text, n_ctx,
parse_special) and what the KLD needs is cached on disk (`eval_cache`, `eval_math` for the format); each
model is then decoded over the same tokens and compared row by row while its logits are still in
llama.cpp's output buffer, so memory stays at one chunk of logits whatever the text's length.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medcal_gui.budget.limits import check, eval_needs
from medcal_gui.core.errors import Cancelled, InputError, ModelError, OutputError
from medcal_gui.core.file_hashes import file_sha256
from medcal_gui.core.fsutil import check_input_file
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, RateMeter, no_progress
from medcal_gui.core.text_files import FORMAT_FIRST, read_utf8
from medcal_gui.evaluate.eval_cache import (
    BaseCache,
    BaseCacheWriter,
    BaseKey,
    cache_limit_bytes,
    check_cache_folder,
    claim_cache_folder,
    open_cached,
    text_sha256,
)
from medcal_gui.evaluate.eval_math import CUTOFF, BaseRows, ModelRows, Summary, base_rows, model_rows, summarize
from medcal_gui.llama import ggml_ctypes as gc
from medcal_gui.llama.chunks import ChunkPlan
from medcal_gui.llama.context import ChunkContext

log = logging.getLogger(__name__)

STAGE = "eval"


@dataclass
class ModelEval(Summary):
    """One model's figures against the base (JSON keys as the CLI prints them): the summary, and whose."""

    model: Path
    name: str
    seconds: float
    tokens_per_s: float
    kld_values: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "kld_values"}
        d["model"] = str(self.model)
        return d


@dataclass
class EvalResult:
    base: Path
    text: str  # the text's file name, or "<text>"
    n_ctx: int
    parse_special: bool
    chunks: int
    tokens_total: int
    tokens_scored: int
    base_from_cache: bool  # True when the base pass was read from the cache instead of run
    base_seconds: float  # time of the base pass (0 when cached)
    cache_dir: Path | None
    cutoff: float
    models: list[ModelEval]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "models"}
        d["base"] = str(self.base)
        d["cache_dir"] = str(self.cache_dir) if self.cache_dir else None
        d["models"] = [m.to_json() for m in self.models]
        return d


class EvalModel(ChunkContext):
    """A model with a context for chunked scoring: n_ctx = n_batch = n_ubatch, logits for the scored half."""

    def __init__(self, path: Path, n_ctx: int, threads: int, cancel: CancelToken) -> None:
        super().__init__(path, n_ctx, threads, should_abort=lambda: cancel.cancelled)
        self.first = n_ctx // 2
        self.n_scored = n_ctx - 1 - self.first
        self.prepare_chunks(slice(self.first, n_ctx - 1))  # only the scored positions: half the output-layer work

    def tokenize(self, text: str, parse_special: bool) -> np.ndarray:
        return gc.tokenize(self.vocab, text.encode("utf-8"), True, parse_special)

    def decode(self, chunk: np.ndarray, cancel: CancelToken) -> np.ndarray:
        """Decode one chunk; returns a view (n_scored, n_vocab) of llama.cpp's logits, valid until the next."""
        self.decode_chunk(chunk, f"a chunk with {self.path.name}", lambda: Cancelled() if cancel.cancelled else None)
        return self.logits(self.n_scored)


def read_text(text: str | Path) -> tuple[str, str]:
    """(text, label): a Path is read as UTF-8; a str is the text itself."""
    if isinstance(text, Path):
        content = read_utf8(text, "evaluation text", not_utf8_hint=FORMAT_FIRST)
        label = str(text)
    else:
        content, label = text, "<text>"
    if not content.strip():
        raise InputError(f"The evaluation text {label} is empty.")
    return content, label


class _Pacer:
    """Progress across all passes: chunks done of chunks to run, rate of the current pass, overall ETA."""

    def __init__(self, progress: ProgressCallback, total_chunks: int, n_ctx: int) -> None:
        self.progress, self.total, self.n_ctx = progress, total_chunks, n_ctx
        self.overall = RateMeter()
        self.done = 0

    def start_pass(self, label: str) -> RateMeter:
        self.progress(Progress(STAGE, self.done, self.total, unit="chunks", message=label))
        return RateMeter()

    def chunk(self, meter: RateMeter, i: int, label: str, extra: dict[str, float]) -> None:
        self.done += 1
        self.progress(Progress(STAGE, self.done, self.total, unit="chunks", message=label,
                               rate=meter.rate((i + 1) * self.n_ctx), rate_unit="tokens",
                               eta_s=self.overall.eta(self.done, self.total), extra=extra))


def _run_base(base: Path, key: BaseKey, text: str, n_ctx: int, threads: int, n_chunks: int | None,
              cutoff: float, pacer_factory: Any, n_models: int, cancel: CancelToken,
              warnings: list[str], root: Path, shared: bool) -> tuple[BaseCache, float, Any]:
    with EvalModel(base, n_ctx, threads, cancel) as em:
        if n_ctx > em.n_ctx_train:
            warnings.append(f"The base was trained on {em.n_ctx_train} tokens of context; {n_ctx} were asked for.")
        tokens = em.tokenize(text, key.parse_special)
        plan = ChunkPlan(len(tokens), n_ctx, n_chunks)
        if plan.n_chunks < 1:
            raise InputError(f"The evaluation text tokenizes to only {len(tokens)} tokens; one chunk needs "
                             f"{n_ctx}. Add text or lower the context size (--ctx).")
        n_chunk = plan.n_chunks
        if plan.available < 2:
            warnings.append("The text fills a single chunk; llama-perplexity would refuse it (it needs "
                            "2 x n_ctx tokens). Figures from so few tokens are noisy.")
        pacer = pacer_factory(n_chunk * (1 + n_models))
        writer = BaseCacheWriter(key, tokens[: plan.tokens_used], em.n_scored, n_chunk,
                                 {"base": str(base), "n_vocab": em.n_vocab, "tokens_total": int(len(tokens)),
                                  "add_bos": em.add_bos, "bos": em.bos}, root=root, shared=shared)
        try:
            meter = pacer.start_pass(f"base {base.name}")
            nll = 0.0
            for i, chunk in enumerate(plan.chunks(tokens)):
                cancel.check()
                logits = em.decode(chunk, cancel)
                rows: BaseRows = base_rows(logits, chunk[em.first + 1:].astype(np.int64), cutoff)
                writer.add(rows)
                nll -= float(rows.tgt_lp.sum(dtype=np.float64))
                pacer.chunk(meter, i, f"base {base.name}",
                            {"ppl": float(np.exp(nll / ((i + 1) * em.n_scored)))})
            cancel.check()
            seconds = meter.elapsed()
            cache = writer.commit({"base_seconds": seconds})
        except BaseException:
            writer.discard()
            raise
    return cache, seconds, pacer


def _run_model(path: Path, cache: BaseCache, n_ctx: int, threads: int, pacer: _Pacer,
               cancel: CancelToken) -> ModelEval:
    with EvalModel(path, n_ctx, threads, cancel) as em:
        if em.n_vocab != int(cache.meta["n_vocab"]):
            raise ModelError(f"{path.name} has a vocabulary of {em.n_vocab} tokens, the base "
                             f"{cache.meta['n_vocab']}: it is not a quant of that base.")
        meter = pacer.start_pass(path.name)
        parts: list[ModelRows] = []
        ksum = 0.0
        for i, chunk in enumerate(ChunkPlan(len(cache.tokens), n_ctx, cache.n_chunks).chunks(cache.tokens)):
            cancel.check()
            logits = em.decode(chunk, cancel)
            try:
                rows = model_rows(logits, chunk[em.first + 1:].astype(np.int64), cache.chunk(i))
            except FloatingPointError:
                raise ModelError(f"{path.name} produced inf/NaN logits on chunk {i + 1}: the file may be "
                                 "damaged, or this quantization breaks the model.") from None
            parts.append(rows)
            ksum += float(rows.kld.sum())
            pacer.chunk(meter, i, path.name, {"kld": ksum / ((i + 1) * em.n_scored)})
        seconds = meter.elapsed()
    all_rows = ModelRows(*(np.concatenate([getattr(p, f) for p in parts])
                           for f in ("kld", "nll", "nll_base", "same_top", "p_diff", "kld_bound")))
    s = summarize(all_rows)
    n_tok = cache.n_chunks * n_ctx
    return ModelEval(model=path, name=path.name, **s.__dict__, seconds=seconds,
                     tokens_per_s=n_tok / seconds if seconds > 0 else 0.0, kld_values=all_rows.kld)


def evaluate(base: Path, models: Sequence[Path], text: str | Path, *, n_ctx: int = 512,
             threads: int | None = None, parse_special: bool = True, n_chunks: int | None = None,
             use_cache: bool = True, cutoff: float = CUTOFF, progress: ProgressCallback = no_progress,
             cancel: CancelToken | None = None) -> EvalResult:
    """Score each of `models` against `base` on `text` (a Path is read as UTF-8, a str is the text).

    The base's pass is read from the cache when an entry matches (base file sha256, text sha256, n_ctx,
    parse_special, n_chunks); `use_cache=False` runs it again and refreshes the entry. Cancel stops inside
    the running chunk (llama.cpp's abort callback); a base pass cancelled midway leaves no cache entry.
    """
    cancel = cancel or CancelToken()
    base = Path(base)
    model_paths = [Path(m) for m in models]
    if n_ctx < 16 or n_ctx % 2:
        raise InputError(f"The context size must be an even number of at least 16 tokens (got {n_ctx}).")
    for p in (base, *model_paths):
        check_input_file(p, "model file", error=ModelError)
    cache_limit_bytes()  # a bad MEDCAL_EVAL_CACHE_MB is refused now, not after the base pass
    content, label = read_text(text)
    warnings: list[str] = []
    root = _cache_folder(lambda folder: check(eval_needs(base, model_paths, n_ctx, content, n_chunks,
                                                         cache_folder=folder)), warnings)
    threads = threads or os.cpu_count() or 1

    progress(Progress(STAGE, 0, None, message=f"hashing {base.name}"))
    key = BaseKey(file_sha256(base), text_sha256(content), n_ctx, parse_special, n_chunks, float(cutoff))
    cache = open_cached(key, root) if use_cache and root is not None else None
    from_cache = cache is not None
    base_seconds = 0.0
    scratch = None if root is not None else _scratch_folder()
    try:
        if cache is not None:
            pacer = _Pacer(progress, cache.n_chunks * len(model_paths), n_ctx)
            log.info("base pass read from the cache %s", cache.folder)
        else:
            cache, base_seconds, pacer = _run_base(
                base, key, content, n_ctx, threads, n_chunks, cutoff,
                lambda total: _Pacer(progress, total, n_ctx), len(model_paths), cancel, warnings,
                root=scratch or root or Path(), shared=scratch is None)
        if ChunkPlan(int(cache.meta.get("tokens_total", 0)), n_ctx).available < 2 and from_cache:
            warnings.append("The text fills a single chunk; figures from so few tokens are noisy.")

        results = [_run_model(p, cache, n_ctx, threads, pacer, cancel) for p in model_paths]
        return EvalResult(
            base=base, text=label, n_ctx=n_ctx, parse_special=parse_special, chunks=cache.n_chunks,
            tokens_total=int(cache.meta.get("tokens_total", 0)),
            tokens_scored=cache.n_chunks * cache.rows_per_chunk, base_from_cache=from_cache,
            base_seconds=base_seconds, cache_dir=None if scratch else cache.folder, cutoff=float(cutoff),
            models=results, warnings=warnings,
        )
    finally:
        del cache
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)  # this run's own, made by _scratch_folder


def _cache_folder(check_needs: Callable[[Path], object], warnings: list[str]) -> Path | None:
    """The evaluation cache's folder, ready for writing; None, with a warning, when it cannot be used (not
    writable, a file in its place, or a folder holding files medcal did not write): the cache only saves
    time, so the evaluation goes on without it. `check_needs(folder)` refuses what does not fit there; it runs
    before the folder is created or marked."""
    temp = Path(tempfile.gettempdir())
    try:
        root: Path | None = check_cache_folder()  # writes nothing
    except OutputError as exc:
        _not_used(exc, warnings)
        root = None
    check_needs(root or temp)
    if root is not None:
        try:
            root = claim_cache_folder()
        except OutputError as exc:
            _not_used(exc, warnings)
            root = None
            check_needs(temp)
    return root


def _not_used(exc: OutputError, warnings: list[str]) -> None:
    msg = (f"The evaluation cache was not used ({exc.message}) The base pass runs without it, in a temporary "
           "folder removed afterwards.")
    log.warning("%s", msg)
    warnings.append(msg)


def _scratch_folder() -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix="medcal-eval-"))
    except OSError as exc:
        raise OutputError(f"Neither the evaluation cache nor the temporary folder {tempfile.gettempdir()} can be "
                          f"written ({exc.strerror or exc}). Set MEDCAL_EVAL_CACHE or TMPDIR to a folder you "
                          "can write to.") from None
