"""What a step needs in memory and disk, checked against what is free before the step starts.

Each estimate is built from the model's own figures (file size, layers, KV heads, vocabulary, read from the
GGUF by llama.cpp with `vocab_only`, which takes a fraction of a second even at 27B) and the step's
settings, and compared with MemAvailable from /proc/meminfo and `shutil.disk_usage` of the output folder.
A step that would not fit stops at once with a plain message ("this needs about 9.1 GB of free memory;
6.2 GB are free") instead of swapping or dying half-way.

MEDCAL_FAKE_FREE_MEM and MEDCAL_FAKE_FREE_DISK (bytes, or a number with K/M/G/T, e.g. "2G") replace the
measured free memory and disk: the tests use them to make a real step refuse, and a user can use them to
keep a margin for other programs. MEDCAL_NO_LIMITS=1 turns the checks off.

The constants below are measured (Gemma 3 4B shapes, F16, 2 cores): imatrix peak RSS 8.8 GB for a 7.8 GB
file, eval 9.9 GB, quantize Q4_K_M 4.6 GB (its largest tensor, token_embd, is 671M values).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import InputError, MedcalError, ModelError
from medcal_gui.core.units import MiB, format_bytes, parse_size
from medcal_gui.core.version_memo import VersionMemo

# A process running Python, numpy and llama.cpp with no model loaded (measured: about 150-250 MB).
BASE_PROCESS = 300 * MiB
# Streaming conversion keeps one slice of rows (4M values) in flight plus the writer's buffers.
CONVERT_MEMORY = 600 * MiB
# Free space kept beyond the estimate, as fsutil.check_free_space keeps 5 %.
DISK_MARGIN = 1.05


class LimitError(MedcalError):
    """A step needs more memory or disk than is free; nothing was started."""

    exit_code = 2


@dataclass(frozen=True)
class ModelShape:
    """The figures of a GGUF model that size its memory (from its metadata, no weights read)."""

    path: Path
    file_bytes: int
    n_layer: int
    n_embd: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    n_ff: int
    n_swa: int  # sliding window (0: none)
    file_type: int
    n_tensors: int = 0  # 0: not known (read by llama.cpp, or computed from a config)
    n_elements: int = 0  # the weights in all tensors
    data_start: int = 0  # bytes before the tensor data: the header, metadata and tensor infos

    def float32_bytes(self) -> int | None:
        """An upper bound on the GGUF llama_model_quantize writes from this model with its own type choices
        (every tensor as F32, the largest type its mixes and fallbacks pick, each padded to the 32-byte
        alignment, with the metadata and 1 MiB for the keys it adds), or None where the tensors are not known."""
        if not self.n_tensors:
            return None
        return self.data_start + 4 * self.n_elements + 32 * self.n_tensors + (1 << 20)

    @property
    def largest_tensor_elements(self) -> int:
        return max(self.n_vocab * self.n_embd, self.n_ff * self.n_embd)

    def kv_bytes(self, n_ctx: int, bytes_per_value: int = 2) -> int:
        """KV cache for `n_ctx` tokens: K and V, F16, every layer at the full context (an upper bound where
        sliding-window layers keep less)."""
        return 2 * self.n_layer * n_ctx * self.n_head_kv * self.head_dim * bytes_per_value


@dataclass
class Needs:
    """What a step needs: memory (bytes), disk (bytes in `folder`), and what makes up each."""

    step: str
    memory: int = 0
    disk: int = 0
    folder: Path | None = None
    memory_parts: list[tuple[str, int]] = field(default_factory=list)
    disk_parts: list[tuple[str, int]] = field(default_factory=list)

    def add_memory(self, what: str, n: int) -> None:
        self.memory += int(n)
        self.memory_parts.append((what, int(n)))

    def add_disk(self, what: str, n: int) -> None:
        self.disk += int(n)
        self.disk_parts.append((what, int(n)))

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "memory": self.memory, "disk": self.disk,
                "folder": str(self.folder) if self.folder else None,
                "memory_parts": dict(self.memory_parts), "disk_parts": dict(self.disk_parts)}


# ---------------------------------------------------------------- free memory and disk

def _fake(name: str) -> int | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return parse_size(raw, allow_zero=True)
    except InputError:
        raise LimitError(f"The environment variable {name}={raw!r} is not a size; give bytes or a number "
                         "with K, M, G or T (e.g. 2G), or unset it.") from None


def free_memory() -> int:
    """Bytes of memory available to a new step: MEDCAL_FAKE_FREE_MEM, else /proc/meminfo's MemAvailable."""
    fake = _fake("MEDCAL_FAKE_FREE_MEM")
    if fake is not None:
        return fake
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def free_disk(folder: Path) -> int:
    """Bytes free in `folder` (its nearest existing parent): MEDCAL_FAKE_FREE_DISK, else disk_usage."""
    fake = _fake("MEDCAL_FAKE_FREE_DISK")
    if fake is not None:
        return fake
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


# ---------------------------------------------------------------- model shapes

# Read once per file version: walking past a 262k-token vocabulary to the tensor table took 45 ms of every
# `medcal quantize` before the quantization could start.
_SHAPES = VersionMemo("model-shapes.json")


@functools.lru_cache(maxsize=16)
def _shape_cached(path: str, size: int, mtime: int) -> ModelShape:
    known = _SHAPES.get(Path(path))
    if isinstance(known, dict):
        with contextlib.suppress(TypeError, ValueError):
            shape = ModelShape(path=Path(path), **{k: int(v) for k, v in known.items()})
            if shape.file_bytes == size:
                return shape
    shape = _shape_read(path, size)
    if shape.n_tensors:  # read by the quick reader: every figure is known
        _SHAPES.put(Path(path), {k: v for k, v in asdict(shape).items() if k != "path"})
    return shape


def _shape_read(path: str, size: int) -> ModelShape:
    from medcal_gui.gguf_files.gguf_header import HeaderError, SkippedStrings, read_header

    try:  # the quick reader, the vocabulary counted, not decoded
        header = read_header(path, decode_strings=False, check_types=False)
    except (HeaderError, OSError):
        return _shape_by_llama(path, size)  # llama.cpp reads it or says it cannot
    fields = header.fields
    arch = str(fields.get("general.architecture", ""))

    def num(key: str, default: int = 0) -> int:
        v = fields.get(f"{arch}.{key}")
        if isinstance(v, list):  # per-layer values (some models): the largest sizes the memory
            v = max(v) if v else None
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else default

    tokens = fields.get("tokenizer.ggml.tokens")
    n_vocab = len(tokens) if isinstance(tokens, SkippedStrings | list) else 0
    n_embd = num("embedding_length")
    n_head = num("attention.head_count", 1)
    ftype = fields.get("general.file_type")
    return ModelShape(path=Path(path), file_bytes=size, n_layer=num("block_count"), n_embd=n_embd,
                      n_head_kv=num("attention.head_count_kv", n_head),
                      head_dim=num("attention.key_length", n_embd // max(1, n_head)), n_vocab=n_vocab,
                      n_ff=num("feed_forward_length", 4 * n_embd), n_swa=num("attention.sliding_window"),
                      file_type=int(ftype) if isinstance(ftype, int) else 0, n_tensors=len(header.tensors),
                      n_elements=sum(t.n_elements for t in header.tensors), data_start=header.data_start)


def _shape_by_llama(path: str, size: int) -> ModelShape:
    import llama_cpp

    from medcal_gui.llama.context import ensure_backend, model_meta
    from medcal_gui.llama.cpu_quirks import model_params

    ensure_backend()
    params = model_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        raise ModelError(f"The model file {path} cannot be read by llama.cpp: it is damaged, truncated or not a "
                         "GGUF model (run `medcal inspect` on it).")
    try:
        def meta(key: str) -> str | None:
            return model_meta(model, key)

        arch = meta("general.architecture") or ""

        def num(key: str, default: int = 0) -> int:
            v = meta(f"{arch}.{key}")
            try:
                return int(float(v)) if v is not None else default
            except ValueError:
                return default

        # vocab_only loads the metadata and the vocabulary but not the per-layer hyperparameters: read keys
        n_embd = num("embedding_length")
        n_head = num("attention.head_count", 1)
        vocab = llama_cpp.llama_model_get_vocab(model)
        return ModelShape(path=Path(path), file_bytes=size, n_layer=num("block_count"), n_embd=n_embd,
                          n_head_kv=num("attention.head_count_kv", n_head),
                          head_dim=num("attention.key_length", n_embd // max(1, n_head)),
                          n_vocab=int(llama_cpp.llama_vocab_n_tokens(vocab)),
                          n_ff=num("feed_forward_length", 4 * n_embd), n_swa=num("attention.sliding_window"),
                          file_type=int(meta("general.file_type") or 0))
    finally:
        llama_cpp.llama_model_free(model)


def model_shape(path: Path | str | ModelShape) -> ModelShape:
    """The model's shape (a ModelShape passes through: the docs compute 27B's needs from its config)."""
    if isinstance(path, ModelShape):
        return path
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise ModelError(f"The model file {p} does not exist.") from None
    return _shape_cached(str(p), st.st_size, st.st_mtime_ns)


def _loaded_model(needs: Needs, shape: ModelShape, n_ctx: int, n_ubatch: int, logits_rows: int,
                  label: str = "model", logits_copies: int = 1) -> None:
    """A model loaded on CPU with one context: weights, KV cache, compute buffer and logits."""
    needs.add_memory(f"{label} weights ({shape.path.name})", shape.file_bytes)
    needs.add_memory(f"KV cache for {n_ctx} tokens", shape.kv_bytes(n_ctx))
    # llama.cpp's compute buffer: a micro-batch's activations, the FFN's the widest (the logits it computes
    # are counted below)
    needs.add_memory("compute buffer", n_ubatch * (4 * shape.n_ff + 8 * shape.n_embd) * 4)
    # the logits llama.cpp returns (and any copy numpy works on)
    needs.add_memory("logits", logits_copies * logits_rows * shape.n_vocab * 4)
    needs.add_memory("process", BASE_PROCESS)


# ---------------------------------------------------------------- the steps

def imatrix_needs(model: Path | str | ModelShape, n_ctx: int = 512, out: Path | str | None = None) -> Needs:
    s = model_shape(model)
    needs = Needs("the importance matrix")
    _loaded_model(needs, s, n_ctx, min(n_ctx, 512), n_ctx)
    if out is not None:
        needs.folder = Path(out).parent
        # one sum per input column and one count per matrix, for the 7 matrices of each layer
        needs.add_disk("importance matrix", s.n_layer * 7 * max(s.n_embd, s.n_ff) * 4 * 2 + MiB)
    return needs


def quantize_needs(model: Path | str | ModelShape, out: Path | str, bpw: float, *, dry_run: bool = False,
                   output_bytes: int | None = None) -> Needs:
    """llama_model_quantize reads one tensor at a time (memory-mapped) and keeps it as float32 with its
    quantized copy: the largest tensor sizes the memory. Disk: the dry run's size when known, else bpw."""
    s = model_shape(model)
    needs = Needs("quantizing")
    src_bytes = 4 if s.file_type == 0 else 2
    big = s.largest_tensor_elements
    needs.add_memory("largest tensor as read", big * src_bytes)
    needs.add_memory("largest tensor as float32", big * 4)
    needs.add_memory("largest tensor quantized", big)
    needs.add_memory("process", BASE_PROCESS)
    if not dry_run:
        needs.folder = Path(out).parent
        est = output_bytes if output_bytes else int(s.file_bytes * min(1.0, bpw / (8 * src_bytes)) * 1.1)
        needs.add_disk("quantized model", est)
    return needs


def eval_cache_bytes(n_scored: int, n_vocab: int, per_token: int | None = None) -> int:
    """Disk for the base pass's cache: the eval cache's own bound per scored token when the evaluation passes
    one, else llama-perplexity's figure of 2 bytes per vocabulary entry (plus the per-token fields)."""
    return n_scored * (per_token if per_token else 2 * n_vocab + 64)


def eval_needs(base: Path | str | ModelShape, models: Sequence[Path | str | ModelShape], n_ctx: int,
               text: str | None = None, n_chunks: int | None = None, cache_folder: Path | None = None,
               cache_bytes_per_token: int | None = None) -> Needs:
    """The base and each model load one after another, never together: the largest one sizes the memory.
    Disk: the base pass's cache for `text` (about one token per 3 characters, at most `n_chunks` chunks) in
    `cache_folder`; the evaluation passes its cache's folder (and bound per token, if it has one) down."""
    n_tokens: int | None = None
    if text is not None:
        n_tokens = len(text) // 3
        if n_chunks is not None:
            n_tokens = min(n_tokens, n_chunks * n_ctx)
    shapes = [model_shape(p) for p in (base, *models)]
    big = max(shapes, key=lambda s: s.file_bytes)
    needs = Needs("the evaluation")
    _loaded_model(needs, big, n_ctx, min(n_ctx, 512), n_ctx, label="largest model", logits_copies=2)
    # log-softmax of the scored half of a chunk, in float64
    needs.add_memory("log-probabilities", (n_ctx // 2) * big.n_vocab * 8)
    if n_tokens is not None and cache_folder is not None:
        needs.folder = cache_folder
        needs.add_disk("evaluation cache (base pass)",
                       eval_cache_bytes(n_tokens // 2, big.n_vocab, cache_bytes_per_token))
    return needs


def chat_needs(model: Path | str | ModelShape, n_ctx: int = 4096, n_batch: int = 512) -> Needs:
    s = model_shape(model)
    needs = Needs("chat")
    _loaded_model(needs, s, n_ctx, min(n_ctx, n_batch), min(n_ctx, n_batch) // 2)
    return needs


def convert_needs(out: Path | str, output_bytes: int, mmproj_bytes: int = 0,
                  mmproj: Path | str | None = None) -> Needs:
    needs = Needs("the conversion")
    needs.folder = Path(out).parent
    needs.add_memory("one slice of rows at a time", CONVERT_MEMORY)
    needs.add_disk("converted model", output_bytes)
    if mmproj_bytes and (mmproj is None or Path(mmproj).parent.resolve() == needs.folder.resolve()):
        needs.add_disk("mmproj", mmproj_bytes)
    return needs


# ---------------------------------------------------------------- check and describe

def _gb(n: float) -> str:
    return format_bytes(n, rough=True)


def _parts(parts: list[tuple[str, int]]) -> str:
    total = sum(n for _, n in parts)
    big = [f"{what} {_gb(n)}" for what, n in sorted(parts, key=lambda p: -p[1])[:3] if n >= 0.05 * total]
    return f" ({', '.join(big)})" if big else ""


def check(needs: Needs) -> Needs:
    """Raise LimitError when `needs` does not fit in free memory or disk; returns `needs` otherwise."""
    if os.environ.get("MEDCAL_NO_LIMITS") == "1":
        return needs
    if needs.memory > 0:
        free = free_memory()
        if needs.memory > free:
            raise LimitError(
                f"{needs.step.capitalize()} needs about {_gb(needs.memory)} of free memory"
                f"{_parts(needs.memory_parts)}; {_gb(free)} are free. Close other programs, use a smaller "
                "model or context, or run it on a machine with more memory."
            )
    if needs.disk > 0 and needs.folder is not None:
        free = free_disk(needs.folder)
        if needs.disk * DISK_MARGIN > free:
            raise LimitError(
                f"{needs.step.capitalize()} needs about {_gb(needs.disk)} of free disk in {needs.folder}"
                f"{_parts(needs.disk_parts)}; {_gb(free)} are free. Free some space or choose another folder."
            )
    return needs


def describe_needs(needs: Needs) -> str:
    """One line for the GUI next to a Run button: 'needs about 8.9 GB of memory (19.6 GB free), 2.5 GB of
    disk (70.1 GB free)'; marks what does not fit."""
    bits = []
    if needs.memory > 0:
        free = free_memory()
        bits.append(f"{_gb(needs.memory)} of memory ({_gb(free)} free{', too little' if needs.memory > free else ''})")
    if needs.disk > 0 and needs.folder is not None:
        free = free_disk(needs.folder)
        short = needs.disk * DISK_MARGIN > free
        bits.append(f"{_gb(needs.disk)} of disk ({_gb(free)} free{', too little' if short else ''})")
    return f"needs about {', '.join(bits)}" if bits else "needs little memory or disk"


