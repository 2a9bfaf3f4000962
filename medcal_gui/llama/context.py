"""A model and one llama.cpp context sized for whole chunks, with a reusable batch: what the importance
matrix, the evaluation and the behaviour checks run on, and the one decoder of a chunk (`decode_chunk`).
Frees everything on close; keeps every callback handed to C."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import llama_cpp
import numpy as np

from medcal_gui.core.errors import ModelError
from medcal_gui.llama import ggml_ctypes as gc
from medcal_gui.llama.cpu_quirks import model_params
from medcal_gui.llama.log import route_llama_logs

_backend_ready = False
_backend_lock = threading.Lock()


def ensure_backend() -> None:
    """Route llama.cpp's log into Python logging and initialise its backend (once per process)."""
    global _backend_ready
    route_llama_logs()
    with _backend_lock:  # two threads may load models at once (the quantize dry run beside the shape read)
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _backend_ready = True


def model_meta(model: Any, key: str, size: int = 256) -> str | None:
    """A metadata value of a loaded llama_model as text (llama_model_meta_val_str, at most `size` - 1 bytes),
    None when the model has no such key."""
    buf = (ctypes.c_char * size)()
    n = llama_cpp.llama_model_meta_val_str(model, key.encode(), buf, size)
    return buf.value.decode("utf-8", "replace") if n >= 0 else None


class ChunkContext:
    """`n_ctx` tokens per decode (n_batch = n_ctx, so every chunk is one batch, as `llama-imatrix -b n_ctx`)."""

    def __init__(self, model_path: Path, n_ctx: int, threads: int, *, n_gpu_layers: int = 0,
                 n_ubatch: int | None = None, cb_eval: Any = None,
                 should_abort: Callable[[], bool] | None = None, n_seq_max: int = 1) -> None:
        ensure_backend()
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ModelError(f"The model file {model_path} does not exist.")
        self.path = model_path
        self.model: Any = llama_cpp.llama_model_load_from_file(str(model_path).encode(), model_params(n_gpu_layers))
        if not self.model:
            raise ModelError(f"llama.cpp could not load the model {model_path}: it is damaged, truncated or "
                             "not a GGUF model (run `medcal inspect` on it).")
        self.ctx: Any = None
        self.batch: Any = None
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = cp.n_batch = n_ctx
        cp.n_ubatch = n_ubatch or n_ctx
        cp.n_seq_max = n_seq_max
        if n_seq_max > 1:
            cp.kv_unified = True  # sequences that share a prefix share its KV cells (behave_context)
        cp.n_threads = cp.n_threads_batch = threads
        cp.no_perf = True
        if cb_eval is not None:
            cp.cb_eval = cb_eval
        self._cb_eval = cb_eval  # C calls it for every graph node while the context lives
        self.ctx = llama_cpp.llama_init_from_model(self.model, cp)
        if not self.ctx:
            self.close()
            raise ModelError(f"llama.cpp could not create a context of {n_ctx} tokens for {model_path}.")
        self._abort = None
        if should_abort is not None:
            self._abort = gc.make_abort_callback(should_abort)  # referenced here while C holds it
            gc.set_abort_callback(self.ctx, self._abort)
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(self.model))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.n_ctx = n_ctx
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)
        self.views = gc.batch_views(self.batch, n_ctx)  # numpy views into the batch: kept with it

    def decode_batch(self, n_tokens: int, what: str, *, batch: Any = None,
                     stopped: Callable[[], BaseException | None] | None = None) -> None:
        """llama_decode over the first `n_tokens` of `batch` (the context's own when None). What stopped it is
        raised first: `stopped()`'s exception (a callback's error, a cancel), else a ModelError naming `what`."""
        b = self.batch if batch is None else batch
        b.n_tokens = n_tokens
        rc = llama_cpp.llama_decode(self.ctx, b)
        err = stopped() if stopped is not None else None
        if err is not None:
            raise err
        if rc != 0:
            raise ModelError(f"llama.cpp failed to evaluate {what} (code {rc}).")

    def prepare_chunks(self, logits: slice) -> None:
        """Set the batch up for `decode_chunk`: positions 0..n_ctx-1 in one sequence, logits asked for the
        positions in `logits` only."""
        v = self.views
        v.pos[:] = np.arange(self.n_ctx, dtype=np.int32)
        v.n_seq_id[:] = 1
        v.logits[:] = 0
        v.logits[logits] = 1

    def decode_chunk(self, chunk: Sequence[int] | np.ndarray, what: str,
                     stopped: Callable[[], BaseException | None] | None = None) -> None:
        """Decode one chunk of n_ctx tokens as llama-imatrix and llama-perplexity do: from an empty KV cache, in
        one batch, its first token replaced by BOS when the vocabulary adds one (after `prepare_chunks`)."""
        self.views.token[:] = chunk
        if self.add_bos:
            self.views.token[0] = self.bos
        llama_cpp.llama_memory_clear(self.mem, True)
        self.decode_batch(self.n_ctx, what, stopped=stopped)

    def logits(self, n_rows: int) -> np.ndarray:
        """The last decode's logits, (n_rows, n_vocab): a view of llama.cpp's buffer, valid until the next."""
        return gc.logits_view(self.ctx, n_rows, self.n_vocab)

    def close(self) -> None:
        if self.batch is not None:
            llama_cpp.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
