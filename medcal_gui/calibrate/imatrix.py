"""Compute llama.cpp's importance matrix in-process, the way `llama-imatrix` does.

The text is tokenized whole (BOS added, special tokens parsed unless told not to), cut into chunks of
`n_ctx` tokens (the tail that does not fill a chunk is dropped) and each chunk is decoded in one batch with
logits requested for every token, BOS in first place and the KV cache cleared before it. A `cb_eval`
callback sees every MUL_MAT whose weight is `blk.*` (and `output.weight` with `process_output`) with F32
activations of at least 16 rows, plus every MUL_MAT_ID, and adds the squared activations per input column.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medcal_gui.budget.limits import check, imatrix_needs
from medcal_gui.calibrate.imatrix_io import ImatrixData, ImatrixEntry
from medcal_gui.core.errors import Cancelled, InputError, ModelError
from medcal_gui.core.fsutil import ensure_dir, refuse_input_overwrite
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, RateMeter, no_progress
from medcal_gui.core.text_files import FORMAT_FIRST, read_utf8
from medcal_gui.llama import ggml_ctypes as gc
from medcal_gui.llama.chunks import ChunkPlan
from medcal_gui.llama.context import ChunkContext

log = logging.getLogger(__name__)

def filter_tensor_name(name: str) -> str:
    """`CUDA0#blk.0.attn_k.weight#0` -> `blk.0.attn_k.weight` (llama-imatrix's filter_tensor_name)."""
    if "#" in name:
        rest = name.split("#", 1)[1]
        return rest.split("#", 1)[0]
    return name


class NonFiniteActivations(ModelError):
    pass


class ImatrixCollector:
    """The cb_eval side: decides which nodes to observe and accumulates their squared activations."""

    def __init__(self, process_output: bool = False) -> None:
        ops = gc.op_ids("MUL_MAT", "MUL_MAT_ID")
        self.op_mul_mat = ops["MUL_MAT"]
        self.op_mul_mat_id = ops["MUL_MAT_ID"]
        self.process_output = process_output
        self.entries: dict[str, ImatrixEntry] = {}
        self.error: BaseException | None = None
        self._scratch = [np.empty(0, dtype=np.uint8)]
        self.calls = 0

    def __call__(self, addr: int, ask: bool) -> bool:
        try:
            if ask:
                return self._ask(addr)
            if self.error is not None:
                return False
            self._collect(addr)
            return True
        except BaseException as exc:  # an exception must not cross into C: keep it and stop the graph
            self.error = exc
            return False

    def _ask(self, addr: int) -> bool:
        t = gc.tensor_at(addr)
        op = t.op
        if op == self.op_mul_mat_id:
            return True
        if op != self.op_mul_mat:
            return False
        src1 = gc.tensor_at(t.src[1])
        if src1.ne[1] < 16 or src1.type != gc.GGML_TYPE_F32:
            return False
        wname = filter_tensor_name(gc.tensor_name(gc.tensor_at(t.src[0])))
        return wname.startswith("blk.") or (self.process_output and wname == "output.weight")

    def _collect(self, addr: int) -> None:
        t = gc.tensor_at(addr)
        src0 = gc.tensor_at(t.src[0])
        src1_addr = t.src[1]
        src1 = gc.tensor_at(src1_addr)
        wname = filter_tensor_name(gc.tensor_name(src0))
        if src1.nb[0] != 4:
            raise ModelError(f"Unexpected activation layout for {wname} (element stride {src1.nb[0]}).")
        x = gc.tensor_f32_view(src1_addr, src1, self._scratch)  # (ne3, ne2, ne1, ne0)
        ne0 = x.shape[3]
        self.calls += 1
        if t.op == self.op_mul_mat_id:
            self._collect_moe(t, src0, x, wname)
            return
        n_mat = int(src0.ne[2] * src0.ne[3])
        e = self.entries.get(wname)
        if e is None:
            e = self.entries[wname] = ImatrixEntry.zeros(1, ne0 * n_mat)
        elif e.in_sum2.size != ne0 * n_mat:
            raise ModelError(f"Inconsistent activation size for {wname} ({e.in_sum2.size} vs {ne0 * n_mat}).")
        acc = e.in_sum2.reshape(n_mat, ne0)
        if n_mat == 1:
            rows = x.reshape(-1, ne0)
            acc[0] += np.einsum("ij,ij->j", rows, rows)
        else:
            s0ne2, s0ne3 = int(src0.ne[2]), int(src0.ne[3])
            for i3 in range(x.shape[0]):
                for i2 in range(x.shape[1]):
                    rows = x[i3, i2]
                    acc[(i3 % s0ne3) * s0ne2 + (i2 % s0ne2)] += np.einsum("ij,ij->j", rows, rows)
        if not np.isfinite(acc).all():
            raise NonFiniteActivations(
                f"Non-finite activations reached {wname}: the model produced inf/NaN on this text. The model "
                "file may be damaged, or the text triggers an overflow; try another model precision."
            )
        e.counts += (x.shape[0] * x.shape[1] * x.shape[2]) // n_mat

    def _collect_moe(self, t: Any, src0: Any, x: np.ndarray, wname: str) -> None:
        # ids -> [n_expert_used, n_tokens]; src1 -> [cols, n_expert_used (or 1), n_tokens]
        ids_addr = t.src[2]
        ids = gc.tensor_i32_copy(ids_addr, gc.tensor_at(ids_addr))  # (n_tokens, n_ids)
        n_as = int(src0.ne[2])
        ne0 = x.shape[3]
        xs = x[0]  # (n_tokens, ne1, ne0)
        n_tokens, n_ids = ids.shape
        if xs.shape[0] != n_tokens:
            raise ModelError(f"Unexpected expert routing shape for {wname}.")
        e = self.entries.get(wname)
        if e is None:
            e = self.entries[wname] = ImatrixEntry.zeros(n_as, ne0)
        if e.counts.size == 1 and n_as > 1:
            e.counts = np.full(n_as, e.counts[0], dtype=np.int64)
            e.in_sum2 = e.in_sum2.reshape(n_as, ne0)
        if e.in_sum2.shape != (n_as, ne0):
            raise ModelError(f"Inconsistent expert activation size for {wname}.")
        if ids.size and (ids.min() < 0 or ids.max() >= n_as):
            raise ModelError(f"Expert id out of range for {wname}.")
        sel = xs[:, np.arange(n_ids) % xs.shape[1], :]  # (n_tokens, n_ids, ne0)
        sq = (sel * sel).reshape(-1, ne0)
        ex = ids.reshape(-1)
        touched = np.unique(ex)
        for k in touched:
            e.in_sum2[k] += sq[ex == k].sum(axis=0)
        e.counts += np.bincount(ex, minlength=n_as).astype(np.int64)
        if not np.isfinite(e.in_sum2[touched]).all():
            raise NonFiniteActivations(f"Non-finite activations reached {wname}: the model produced inf/NaN.")


@dataclass
class ImatrixResult:
    out: Path | None
    format: str
    entries: int
    chunks: int  # processed in this run
    chunk_size: int
    chunk_count: int  # in the saved matrix (including merged --in-file data)
    tokens_total: int
    tokens_processed: int
    tokens_dropped: int
    datasets: list[str]
    elapsed_s: float
    tokens_per_s: float
    ppl: float | None = None
    ppl_stderr: float | None = None
    warnings: list[str] = field(default_factory=list)
    data: ImatrixData | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (the matrix itself is left out)."""
        d = {k: v for k, v in self.__dict__.items() if k != "data"}
        d["out"] = str(self.out) if self.out else None
        return d


def read_calibration(inputs: Sequence[str | Path]) -> tuple[str, list[str]]:
    """Texts and dataset names. `Path` items are UTF-8 files; `str` items are the text itself."""
    texts: list[str] = []
    names: list[str] = []
    for item in inputs:
        if isinstance(item, Path):
            text = read_utf8(item, "calibration file", not_utf8_hint=FORMAT_FIRST)
            if not text.strip():
                raise InputError(f"The calibration file {item} is empty.")
            names.append(str(item))
        else:
            text = item
            names.append("<text>")
        if texts and not texts[-1].endswith("\n"):
            texts[-1] += "\n"
        texts.append(text)
    if not texts or not "".join(texts).strip():
        raise InputError("No calibration text was given.")
    return "".join(texts), names


def _chunk_nll(logits: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Sum of -log p(target) and of its square over rows (llama-imatrix's process_logits)."""
    nll = nll2 = 0.0
    for a in range(0, len(targets), 64):
        lg = logits[a: a + 64]
        tg = targets[a: a + 64]
        m = lg.max(axis=1)
        lse = np.log(np.exp(lg - m[:, None]).sum(axis=1, dtype=np.float64)) + m
        v = lse - lg[np.arange(len(tg)), tg]
        nll += float(v.sum())
        nll2 += float((v * v).sum())
    return nll, nll2


def compute_imatrix(model_path: Path, texts_or_files: Sequence[str | Path], *, n_ctx: int = 512,
                    n_chunks: int | None = None, threads: int | None = None, parse_special: bool = True,
                    compute_ppl: bool = False, process_output: bool = False, n_gpu_layers: int = 0,
                    in_files: Sequence[Path] = (), out: Path | None = None, out_format: str = "gguf",
                    progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
                    collect: bool = True) -> ImatrixResult:
    """Collect an importance matrix over the calibration text; save it to `out` when given.

    `in_files` are earlier matrices merged in first (llama-imatrix `--in-file`). `collect=False` runs the
    same forward passes without the callback (the benchmark's baseline). A cancel stops within a node of
    the running graph; nothing is written then.
    """
    cancel = cancel or CancelToken()
    model_path = Path(model_path)
    if n_ctx < 16:
        raise InputError(f"The context size must be at least 16 tokens (got {n_ctx}).")
    if out_format not in ("gguf", "dat"):
        raise InputError(f"Unknown imatrix format {out_format!r}: use gguf or dat.")
    files = [p for p in texts_or_files if isinstance(p, Path)]
    if out is not None:
        out = Path(out)
        refuse_input_overwrite(out, [model_path, *files, *in_files])
        ensure_dir(out.parent)
    text, names = read_calibration(texts_or_files)
    check(imatrix_needs(model_path, n_ctx, out))
    prior = ImatrixData.merged((ImatrixData.load(Path(p), chunk_size=n_ctx) for p in in_files),
                               chunk_size=n_ctx)
    threads = threads or os.cpu_count() or 1
    warnings: list[str] = []

    collector = ImatrixCollector(process_output) if collect else None
    cb_eval = gc.make_eval_callback(collector) if collector else None
    progress(Progress("imatrix", 0, None, message=f"loading {model_path.name}"))

    def stopped() -> BaseException | None:
        """What stops the graph: the collector's error first (it is what went wrong), then a cancel."""
        if collector is not None and collector.error is not None:
            return collector.error
        return Cancelled() if cancel.cancelled else None

    loaded = ChunkContext(model_path, n_ctx, threads, n_gpu_layers=n_gpu_layers, n_ubatch=min(n_ctx, 512),
                          cb_eval=cb_eval, should_abort=lambda: stopped() is not None)
    try:
        if n_ctx > loaded.n_ctx_train:
            warnings.append(f"The model was trained on {loaded.n_ctx_train} tokens of context; "
                            f"{n_ctx} were asked for.")
        tokens = gc.tokenize(loaded.vocab, text.encode("utf-8"), True, parse_special)
        plan = ChunkPlan(len(tokens), n_ctx, n_chunks)
        if plan.n_chunks < 1:
            raise InputError(
                f"The calibration text ({', '.join(names)}) tokenizes to only {len(tokens)} tokens; "
                f"one chunk "
                f"needs {n_ctx}. Add text or lower the context size (--ctx)."
            )
        n_chunk = plan.n_chunks
        loaded.prepare_chunks(slice(None))  # every token: keeps the last layer whole and feeds the perplexity
        meter = RateMeter()
        nll = nll2 = 0.0
        count = 0
        first = n_ctx // 2
        ppl: float | None = None
        for i, chunk in enumerate(plan.chunks(tokens)):
            cancel.check()
            loaded.decode_chunk(chunk, f"chunk {i + 1} of {model_path}", stopped)
            if compute_ppl:
                logits = loaded.logits(n_ctx)
                a, b = _chunk_nll(logits[first: n_ctx - 1], chunk[first + 1: n_ctx].astype(np.int64))
                nll += a
                nll2 += b
                count += n_ctx - 1 - first
                ppl = math.exp(nll / count)
            done_tok = (i + 1) * n_ctx
            progress(Progress("imatrix", i + 1, n_chunk, unit="chunks", rate=meter.rate(done_tok),
                              rate_unit="tokens", eta_s=meter.eta(i + 1, n_chunk),
                              extra={"ppl": ppl} if ppl is not None else {}))
        elapsed = meter.elapsed()
        cancel.check()
    finally:
        loaded.close()

    ppl_err = None
    if compute_ppl and count > 1:
        mean = nll / count
        var = nll2 / count - mean * mean
        if var > 0 and ppl is not None:
            ppl_err = math.sqrt(var / (count - 1)) * ppl
    data = ImatrixData(chunk_size=n_ctx)
    data.merge(prior)
    data.merge(ImatrixData(entries=collector.entries if collector else {}, datasets=names, chunk_size=n_ctx))
    data.chunk_size = n_ctx
    data.update_chunk_count()
    if collector is not None and not data.entries:
        raise ModelError(f"No matrix multiplication of {model_path} reached the collector; the model "
                         "architecture may not be supported.")
    if out is not None:
        cancel.check()
        data.save(out, out_format)
    processed = plan.tokens_used
    return ImatrixResult(
        out=out, format=out_format, entries=len(data.entries), chunks=n_chunk, chunk_size=n_ctx,
        chunk_count=data.chunk_count, tokens_total=int(len(tokens)), tokens_processed=processed,
        tokens_dropped=plan.tokens_dropped, datasets=list(data.datasets), elapsed_s=elapsed,
        tokens_per_s=processed / elapsed if elapsed > 0 else 0.0, ppl=ppl, ppl_stderr=ppl_err,
        warnings=warnings, data=data,
    )
