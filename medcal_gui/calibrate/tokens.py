"""Token accounting for calibration text, done with the model's own tokenizer (llama.cpp, vocabulary only).

Counts follow llama-imatrix (tools/imatrix/imatrix.cpp, compute_imatrix), which medcal's in-process imatrix
mirrors: the whole text is tokenized once with BOS added in front (when the model asks for it); it is cut into
n_tokens // n_ctx chunks of n_ctx tokens (llama.chunks.ChunkPlan, the imatrix's and the evaluation's rule);
the first token of every chunk is overwritten with BOS; the tail after the last full chunk is dropped.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp

from medcal_gui.calibrate.imatrix import read_calibration
from medcal_gui.core.errors import InputError, ModelError
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, RateMeter, no_progress
from medcal_gui.core.markers import TURN_END, TURN_START
from medcal_gui.gguf_files.gguf_check import check_gguf
from medcal_gui.llama import ggml_ctypes as gc
from medcal_gui.llama.chunks import ChunkPlan
from medcal_gui.llama.context import ensure_backend

RECORD_START = TURN_START + "user"
STAGE = "tokens"


@dataclass
class RecordTokens:
    source: str  # file name, or "<text>"
    index: int  # 0-based within its source
    chars: int
    tokens: int


@dataclass
class MarkerCheck:
    text: str
    token_id: int | None  # the single token the marker should become; None when it is not one token
    in_text: int  # occurrences of the marker's text
    as_tokens: int  # occurrences of token_id in the tokenized text
    ok: bool


@dataclass
class TokenReport:
    model: str
    sources: list[str]
    n_ctx: int
    parse_special: bool
    add_bos: bool
    record_format: str  # "chat" (split at <start_of_turn>user) or "plain" (one record per source)
    chars: int
    text_tokens: int  # tokens of the text itself
    tokens: int  # what the imatrix sees: text tokens plus the leading BOS when the model adds one
    n_chunks: int  # tokens // n_ctx
    tokens_used: int  # n_chunks * n_ctx
    tokens_dropped: int  # tail after the last full chunk, never seen
    tokens_replaced_by_bos: int  # first token of chunks 2..n, overwritten with BOS
    chars_per_token: float
    records: list[RecordTokens]
    markers: list[MarkerCheck]
    markers_ok: bool
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary_lines(self) -> list[str]:
        per = [r.tokens for r in self.records]
        lines = [
            f"Model:        {self.model}",
            f"Text:         {self.chars:,} characters in {len(self.sources)} source(s), "
            f"{len(self.records)} record(s) ({self.record_format})",
            f"Tokens:       {self.text_tokens:,} text tokens"
            + (" + 1 BOS" if self.add_bos else "") + f" ({self.chars_per_token:.2f} characters per token)",
        ]
        if per:
            lines.append(f"Per record:   min {min(per)}, mean {sum(per) / len(per):.1f}, max {max(per)}")
        lines += [
            f"Chunks:       {self.n_chunks} of {self.n_ctx} tokens ({self.tokens_used:,} tokens used, "
            f"{self.tokens_dropped:,} dropped at the end)",
        ]
        for m in self.markers:
            state = "ok" if m.ok else "MISMATCH"
            lines.append(f"{m.text + ':':14s}{m.in_text} in the text, {m.as_tokens} as token "
                         f"{m.token_id if m.token_id is not None else '(not a single token)'} - {state}")
        lines += [f"WARNING: {w}" for w in self.warnings]
        return lines


class _Vocab:
    """A vocabulary-only llama.cpp model (no weights, no context): cheap to load, only tokenizes.

    Loaded through llama.cpp's C API rather than llama_cpp.Llama: Llama always builds a context (which a
    vocabulary-only model cannot size, so llama.cpp warns) and, when quiet, redirects the process's stderr.
    Tokenizing goes through the same call the imatrix uses, so the counts are the imatrix's counts.
    """

    def __init__(self, model: Path) -> None:
        ensure_backend()
        if not model.is_file():
            check_gguf(model)  # raises the plain-words reason
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(str(model).encode(), params)
        if not self.model:
            check_gguf(model)  # a damaged file: raise the reason in plain words
            raise ModelError(f"llama.cpp could not read the vocabulary of {model}. Run `medcal inspect` on it.")
        self.lock = threading.Lock()
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self.vocab))

    def tokenize(self, text: str, parse_special: bool) -> list[int]:
        if not text:
            return []
        with self.lock:
            return [int(t) for t in gc.tokenize(self.vocab, text.encode("utf-8"), False, parse_special)]

    def close(self) -> None:
        with self.lock:
            if self.model:
                llama_cpp.llama_model_free(self.model)
                self.model = None

    def close_later(self) -> None:
        """Free it once no thread is tokenizing with it (evicted from the cache while possibly in use)."""
        threading.Thread(target=self.close, name="medcal-vocab-free", daemon=True).start()


_VOCAB_CACHE_SIZE = 4
_vocab_cache: OrderedDict[tuple[str, int, int, int], _Vocab] = OrderedDict()
_vocab_lock = threading.Lock()


def vocab_for(model: Path) -> _Vocab:
    """The vocabulary of `model`, loaded once per file version (path, size, mtime, inode) in this process and
    kept for the last few models, so counting tokens file after file does not reload it (nor log it) again."""
    try:
        st = model.stat()
    except OSError:
        return _Vocab(model)  # raises the plain-words reason
    key = (str(model.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    with _vocab_lock:
        hit = _vocab_cache.get(key)
        if hit is not None:
            _vocab_cache.move_to_end(key)
            return hit
    vocab = _Vocab(model)
    with _vocab_lock:
        if key in _vocab_cache:  # another thread loaded it meanwhile
            vocab.close()
            return _vocab_cache[key]
        # an older version of the same file is stale: drop it
        for old in [k for k in _vocab_cache if k[0] == key[0]]:
            _vocab_cache.pop(old).close_later()
        _vocab_cache[key] = vocab
        while len(_vocab_cache) > _VOCAB_CACHE_SIZE:
            _vocab_cache.popitem(last=False)[1].close_later()
    return vocab


def _segments(text: str, split: bool) -> list[tuple[int, int]]:
    """(start, end) spans: split right before each `<start_of_turn>user`, or the whole text as one."""
    if not split:
        return [(0, len(text))]
    starts = []
    pos = text.find(RECORD_START)
    while pos != -1:
        starts.append(pos)
        pos = text.find(RECORD_START, pos + 1)
    if not starts:
        return [(0, len(text))]
    bounds = ([0] if starts[0] > 0 else []) + starts + [len(text)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def count_tokens(model: Path | str, inputs: Path | str | Sequence[Path | str], *, n_ctx: int = 512,
                 parse_special: bool = True, progress: ProgressCallback = no_progress,
                 cancel: CancelToken | None = None) -> TokenReport:
    """Count the tokens `inputs` make for `model` and how they fill n_ctx chunks.

    `inputs`: a Path or a list of Paths (UTF-8 files, joined as the imatrix joins them) or str items (the
    text itself). Formatted chat text is split into records at each `<start_of_turn>user`; plain text gives
    one record per source.
    """
    if n_ctx < 2:
        raise InputError(f"The context size must be at least 2 tokens (got {n_ctx}).")
    items: list[Path | str] = [inputs] if isinstance(inputs, Path | str) else list(inputs)
    model = Path(model)
    text, names = read_calibration(items)
    # The offsets where each source begins in the joined text (read_calibration adds a newline where a
    # source lacks one); used to say which source a record came from.
    starts: list[int] = []
    pos = 0
    for item in items:
        starts.append(pos)
        one, _ = read_calibration([item])
        pos += len(one) + (0 if one.endswith("\n") else 1)

    progress(Progress(STAGE, 0, None, message=f"loading the vocabulary of {model.name}"))
    vocab = vocab_for(model)
    # the vocabulary stays cached for the next call (vocab_for)
    marker_ids: dict[str, int | None] = {}
    for marker in (TURN_START, TURN_END):
        ids = vocab.tokenize(marker, True)
        marker_ids[marker] = ids[0] if len(ids) == 1 else None
    is_chat = RECORD_START in text
    # Splitting just before a special token is exact: llama.cpp tokenizes the text between special
    # tokens piece by piece anyway. Without special parsing it would not be, so then no split.
    split = is_chat and parse_special and marker_ids[TURN_START] is not None
    spans = _segments(text, split)
    all_tokens: list[int] = []
    span_tokens: list[int] = []
    meter = RateMeter()
    for i, (a, b) in enumerate(spans):
        if cancel is not None:
            cancel.check()
        toks = vocab.tokenize(text[a:b], parse_special)
        all_tokens.extend(toks)
        span_tokens.append(len(toks))
        progress(Progress(STAGE, i + 1, len(spans), unit="records", rate=meter.rate(len(all_tokens)),
                          rate_unit="tokens", eta_s=meter.eta(i + 1, len(spans))))

    records: list[RecordTokens] = []
    if split:
        per_source: dict[int, int] = {}
        for (a, b), n in zip(spans, span_tokens, strict=True):
            src = bisect.bisect_right(starts, a) - 1
            idx = per_source.get(src, 0)
            per_source[src] = idx + 1
            records.append(RecordTokens(names[src], idx, b - a, n))
    elif len(items) == 1:
        records.append(RecordTokens(names[0], 0, len(text), len(all_tokens)))
    else:
        for k, item in enumerate(items):
            one, _ = read_calibration([item])
            records.append(RecordTokens(names[k], 0, len(one), len(vocab.tokenize(one, parse_special))))
    add_bos = vocab.add_bos

    text_tokens = len(all_tokens)
    n_tokens = text_tokens + (1 if add_bos else 0)
    plan = ChunkPlan(n_tokens, n_ctx)
    n_chunks = plan.n_chunks
    markers = []
    for marker, tid in marker_ids.items():
        in_text = text.count(marker)
        as_tokens = all_tokens.count(tid) if tid is not None else 0
        markers.append(MarkerCheck(marker, tid, in_text, as_tokens, tid is not None and in_text == as_tokens))
    markers_ok = all(m.ok for m in markers)

    warnings: list[str] = []
    if is_chat and not markers_ok:
        bad = "; ".join(f"{m.text} appears {m.in_text} times in the text but {m.as_tokens} times as a token"
                        for m in markers if not m.ok)
        why = ("special-token parsing is off" if not parse_special
               else f"{model.name} does not have them as single control tokens")
        warnings.append(f"The chat markers did not become single control tokens ({bad}), because {why}: the "
                        "calibration format would be tokenized as plain text.")
    if text.lstrip().startswith("<bos>") and add_bos:
        warnings.append("The text starts with a literal <bos> and the model adds its own BOS: the first chunk "
                        "would start with two. Remove <bos> from the calibration text.")
    if n_chunks == 0:
        warnings.append(f"The text makes only {n_tokens} tokens: not enough for one chunk of {n_ctx}. "
                        "Add text or lower the context size.")
    elif n_tokens < 2 * n_ctx:
        warnings.append(f"The text makes {n_tokens} tokens, fewer than 2 x {n_ctx}: the llama-imatrix command "
                        "line tool would refuse it (medcal's own imatrix needs only one chunk).")
    return TokenReport(
        model=str(model),
        sources=names,
        n_ctx=n_ctx,
        parse_special=parse_special,
        add_bos=add_bos,
        record_format="chat" if split else "plain",
        chars=len(text),
        text_tokens=text_tokens,
        tokens=n_tokens,
        n_chunks=n_chunks,
        tokens_used=plan.tokens_used,
        tokens_dropped=plan.tokens_dropped,
        tokens_replaced_by_bos=max(0, n_chunks - 1) if add_bos else 0,
        chars_per_token=len(text) / text_tokens if text_tokens else 0.0,
        records=records,
        markers=markers,
        markers_ok=markers_ok,
        warnings=warnings,
    )
