"""One model driven token by token for the behaviour checks (`agree`, `mcq`): the model's chat template,
decoding at chosen positions with chosen logits, KV cells kept or dropped by position, greedy generation.

Everything runs through llama.cpp's low-level API on a `ChunkContext` (one sequence, batch = context), so
the cost is the forward passes themselves: the question prefix of a multiple-choice item is decoded once
and its KV cells are kept while each option is decoded after it (`llama_memory_seq_rm` drops the option's
cells before the next); greedy generation is argmax over the last row of logits, with no sampler chain.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from medcal_gui.core.errors import Cancelled, InputError, ModelError
from medcal_gui.core.jobs import CancelToken
from medcal_gui.llama import ggml_ctypes as gc
from medcal_gui.llama.context import ChunkContext


def token_logprobs(rows: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """log-softmax of row j at targets[j] (rows: (n, n_vocab) float32 logits); exp in float32, sums in
    float64 (a float64 copy of each 262k-wide row would cost more than the forward pass for its row)."""
    m = rows.max(axis=1)
    lse = m.astype(np.float64) + np.log(np.exp(rows - m[:, None]).sum(axis=1, dtype=np.float64))
    return rows[np.arange(len(targets)), np.asarray(targets)].astype(np.float64) - lse


def check_model_file(path: Path) -> None:
    """Refuse, before llama.cpp opens it, a model path that is not a regular file: a FIFO would block the
    load until some writer came, /dev/zero would be read without end, and a folder or a device was
    reported as "does not exist"."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ModelError(f"The model file {path} is a symbolic link to {os.readlink(path)}, which does "
                             "not exist.") from None
        raise ModelError(f"The model file {path} does not exist. Check the path.") from None
    except OSError as exc:
        raise ModelError(f"Cannot read the model file {path}: {exc.strerror or exc}.") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelError(f"The model path {path} is a folder, not a model file. Give the .gguf file inside it.")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise ModelError(f"The model file {path} is {kind}, not a file: give a .gguf model file.")


class BehaveModel(ChunkContext):
    """A model with a context of `n_ctx` tokens for prompt rendering, scoring and greedy generation."""

    def __init__(self, path: Path, *, n_ctx: int = 2048, threads: int = 1, cancel: CancelToken | None = None,
                 n_ubatch: int = 512, n_seq_max: int = 8) -> None:
        self.cancel = cancel or CancelToken()
        token = self.cancel
        check_model_file(Path(path))
        super().__init__(Path(path), n_ctx, threads, n_ubatch=min(n_ubatch, n_ctx),
                         should_abort=lambda: token.cancelled, n_seq_max=n_seq_max)
        self.n_seq_max = n_seq_max
        # a batch whose tokens may belong to several sequences at once (a shared prefix): llama_batch_init
        # sizes each token's seq_id array by its third argument
        self.mbatch = llama_cpp.llama_batch_init(n_ctx, 0, n_seq_max)
        self.mviews = gc.batch_views(self.mbatch, n_ctx)
        self.eos = int(llama_cpp.llama_vocab_eos(self.vocab))
        raw = llama_cpp.llama_model_chat_template(self.model, None)
        self.chat_template: str | None = raw.decode("utf-8", "replace") if raw else None
        self.last_prompt_s = self.last_gen_s = 0.0

    def _stopped(self) -> BaseException | None:
        return Cancelled() if self.cancel.cancelled else None

    def close(self) -> None:
        if getattr(self, "mbatch", None) is not None:
            llama_cpp.llama_batch_free(self.mbatch)
            self.mbatch = None
        super().close()

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------------ text <-> tokens
    def token_text(self, tok: int) -> str:
        return bytes(self.token_bytes(tok, special=True)).decode("utf-8", "replace")

    def token_bytes(self, tok: int, *, special: bool = False) -> bytes:
        return gc.token_piece(self.vocab, tok, special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.token_bytes(int(t)) for t in tokens).decode("utf-8", "replace")

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt for `messages` ending with the model turn's opening: the GGUF's own chat template
        (rendered with the variables llama-cpp-python passes, in the same sandbox, within `chat`'s limits of
        time and size: a template comes with a model file, which may be hostile) or, for a model without
        one, Gemma's (as `chat` does)."""
        from medcal_gui.chat.chat_template import BUILTIN_HINT, ChatTemplateError, render_gemma, render_template

        if self.chat_template:
            try:
                return render_template(self.chat_template, messages, bos_token=self.token_text(self.bos),
                                       eos_token=self.token_text(self.eos), add_generation_prompt=True,
                                       source=f"the chat template embedded in {self.path}")
            except ChatTemplateError as exc:
                # `chat --template gemma` is no option of mcq or agree: the message keeps only what failed
                raise ModelError(exc.message.replace(BUILTIN_HINT, "").strip()) from None
        return render_gemma(messages, add_generation_prompt=True, bos_token=self.token_text(self.bos))

    def prompt_tokens(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The rendered prompt tokenized with special tokens parsed, BOS first when the vocabulary wants it."""
        toks = [int(t) for t in gc.tokenize(self.vocab, self.render(messages).encode("utf-8"), False, True)]
        if self.add_bos and self.bos >= 0 and (not toks or toks[0] != self.bos):
            toks.insert(0, self.bos)
        return toks

    def text_tokens(self, text: str) -> list[int]:
        """Plain text (an answer, an option) as tokens: no BOS, special-token text not parsed."""
        return [int(t) for t in gc.tokenize(self.vocab, text.encode("utf-8"), False, False)]

    # ------------------------------------------------------------------ decoding
    def check_fits(self, n_tokens: int, what: str) -> None:
        if n_tokens > self.n_ctx:
            raise InputError(f"{what} needs {n_tokens} tokens; the context holds {self.n_ctx}. "
                             "Raise --ctx or shorten it.")

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self.mem, True)

    def drop_from(self, pos: int, seq: int = 0) -> None:
        """Forget sequence `seq`'s KV cells at positions >= pos (the cells before stay: a shared prefix)."""
        llama_cpp.llama_memory_seq_rm(self.mem, seq, pos, -1)

    def decode_shared(self, prefix: Sequence[int], parts: Sequence[Sequence[int]]) -> np.ndarray:
        """One batch from an empty cache: `prefix` at positions 0.. in sequences 0..k-1 at once (its cells
        computed once, seen by all), then parts[s] in sequence s after it. Logits for the prefix's last
        token and every part token; returns those (1 + sum of part lengths, n_vocab) rows in that order."""
        k, n_pre = len(parts), len(prefix)
        n = n_pre + sum(len(p) for p in parts)
        if k > self.n_seq_max or n > self.n_ctx:
            raise InputError(f"{n} tokens in {k} sequences do not fit one batch of {self.n_ctx} tokens and "
                             f"{self.n_seq_max} sequences. Raise --ctx.")
        b, v = self.mbatch, self.mviews
        v.token[:n_pre] = prefix
        v.pos[:n_pre] = np.arange(n_pre, dtype=np.int32)
        v.n_seq_id[:n_pre] = k
        for i in range(n_pre):
            for s in range(k):
                b.seq_id[i][s] = s
        v.logits[:n] = 0
        v.logits[n_pre - 1] = 1
        at = n_pre
        for s, toks in enumerate(parts):
            m = len(toks)
            v.token[at:at + m] = toks
            v.pos[at:at + m] = np.arange(n_pre, n_pre + m, dtype=np.int32)
            v.n_seq_id[at:at + m] = 1
            v.logits[at:at + m] = 1
            for i in range(at, at + m):
                b.seq_id[i][0] = s
            at += m
        self.clear()
        self.decode_batch(n, f"{n} tokens with {self.name}", batch=b, stopped=self._stopped)
        return self.logits(1 + n - n_pre)

    def decode(self, tokens: Sequence[int], start: int, logits_from: int | None = None) -> np.ndarray:
        """Decode `tokens` at positions start.. in one batch; returns a (n_out, n_vocab) view of the logits
        of tokens[logits_from:] (the last token only when None), valid until the next decode."""
        n = len(tokens)
        if n == 0:
            raise ValueError("nothing to decode")
        if start + n > self.n_ctx:
            raise InputError(f"{n + start} tokens do not fit the context of {self.n_ctx}. Raise --ctx.")
        first = n - 1 if logits_from is None else logits_from
        v = self.views
        v.token[:n] = tokens
        v.pos[:n] = np.arange(start, start + n, dtype=np.int32)
        v.n_seq_id[:n] = 1
        v.logits[:n] = 0
        v.logits[first:n] = 1
        self.decode_batch(n, f"{n} tokens with {self.name}", stopped=self._stopped)
        return self.logits(n - first)

    def greedy(self, prompt: Sequence[int], n_max: int) -> tuple[list[int], str]:
        """Greedy continuation of `prompt` (argmax each step) up to `n_max` tokens or an end-of-generation
        token; returns (tokens, finish) with finish "stop" or "length"."""
        self.check_fits(len(prompt) + n_max, "The prompt and its answer")
        self.clear()
        t0 = time.perf_counter()
        logits = self.decode(prompt, 0)
        self.last_prompt_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            return self._greedy_loop(logits, len(prompt), n_max)
        finally:
            self.last_gen_s = time.perf_counter() - t0  # the generation loop alone (for tokens/s)

    def _greedy_loop(self, logits: np.ndarray, pos: int, n_max: int) -> tuple[list[int], str]:
        out: list[int] = []
        while len(out) < n_max:
            tok = int(np.argmax(logits[-1]))
            if llama_cpp.llama_vocab_is_eog(self.vocab, tok):
                return out, "stop"
            out.append(tok)
            if len(out) == n_max:
                break
            logits = self.decode([tok], pos)
            pos += 1
        return out, "length"
