"""Chat with a GGUF to check a quant on its own task: streaming, stoppable within one token, and A/B.

The prompt is the model's own chat template when the GGUF carries one (`tokenizer.chat_template`, rendered
as llama-cpp-python's `Jinja2ChatFormatter` renders it, in jinja2's ImmutableSandboxedEnvironment, with
limits on time and size: `chat_template.render_template`; a broken one is refused when the session opens),
else Gemma's template (`chat_template.render_gemma`, which folds a system prompt into the first user turn
- llama-cpp-python's built-in "gemma" format would drop it). The rendered text is tokenized with special
tokens parsed and generated with `Llama.generate`, one token at a time: the stop flag is checked before
every token, so a stop takes effect within one token. Sampling: temperature (0 = greedy), top-p, top-k,
min-p, repeat penalty, max tokens and a seed; with temperature 0, or the same seed, a reply is repeatable.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import MedcalError, ModelError

log = logging.getLogger(__name__)

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


class ContextFull(MedcalError):
    """The conversation no longer fits the model's context."""


@dataclass
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 256
    seed: int | None = None  # None: a random seed per reply

    @classmethod
    def greedy(cls, max_tokens: int = 256) -> SamplingParams:
        return cls(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, max_tokens=max_tokens,
                   seed=0)


@dataclass
class ChatStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None  # time to first token (includes reading the prompt)
    tokens_per_s: float | None = None  # generation speed after the first token
    prompt_tokens_per_s: float | None = None
    seconds: float = 0.0
    finish_reason: str = ""  # "stop" (end of turn), "length" (max tokens), "context", "stopped" (by the user)
    message: str = ""  # a plain-words note for the user when the reply was cut short

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChatReply:
    model: str
    text: str
    stats: ChatStats = field(default_factory=ChatStats)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "text": self.text, "stats": self.stats.to_json()}


class StopFlag:
    """Set from any thread to stop a reply; anything with a `cancelled` attribute works too (CancelToken)."""

    def __init__(self) -> None:
        self.cancelled = False

    def set(self) -> None:
        self.cancelled = True

    def clear(self) -> None:
        self.cancelled = False


_SKIP_LOCK = threading.Lock()


@contextlib.contextmanager
def _embedded_templates_not_compiled() -> Iterator[None]:
    """While active, `llama_cpp.Llama(...)` does not compile the chat templates a GGUF embeds.

    Llama's constructor compiles every embedded template into a chat handler, without limits: jinja2 folds
    constant expressions at compile time, so a template holding `'A' * 4000000000` allocates gigabytes while
    the model loads, and a syntax error aborts the load with a raw traceback. medcal never uses those
    handlers (it renders templates itself, bounded: chat_template.render_template), so it skips that step.
    """
    from llama_cpp import llama_chat_format as lcf

    class _NotCompiled:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def to_chat_handler(self) -> None:
            return None

    with _SKIP_LOCK:
        original = lcf.Jinja2ChatFormatter
        lcf.Jinja2ChatFormatter = _NotCompiled  # type: ignore[misc,assignment]
        try:
            yield
        finally:
            lcf.Jinja2ChatFormatter = original  # type: ignore[misc]


class ChatSession:
    """A conversation with one model. `stream()` yields text pieces; `history` holds finished turns."""

    def __init__(self, model_path: Path, *, n_ctx: int = 4096, threads: int | None = None,
                 system: str | None = None, template: str = "auto", llama: Any = None) -> None:
        self.model_path = Path(model_path)
        self.system = system or None
        self.history: list[Message] = []
        self.last_stats = ChatStats()
        self.llm = llama if llama is not None else self._load(n_ctx, threads, template)
        # llama.cpp may pad the context it allocates; llama-cpp-python's token buffer has the size asked for
        self.n_ctx = min(int(self.llm.n_ctx()), int(self.llm.input_ids.shape[0]))
        self._vocab = self.llm._model.vocab  # the llama_vocab pointer, for end-of-generation checks
        # A reply that opens a new turn has ended its own: a base model (the demo) never writes <end_of_turn>.
        start = list(self.llm.tokenize(b"<start_of_turn>", add_bos=False, special=True))
        self._turn_start = start[0] if len(start) == 1 else None
        gguf_template = (self.llm.metadata or {}).get("tokenizer.chat_template")
        if template not in ("auto", "gguf", "gemma"):
            raise ValueError(f"unknown template choice {template!r}")
        if template == "gguf" and not gguf_template:
            raise ModelError(f"{self.model_path.name} carries no chat template.")
        self.template_source = "gguf" if gguf_template and template != "gemma" else "gemma"
        self._template: str | None = None
        if self.template_source == "gguf":
            self._template = str(gguf_template)
            try:  # a broken or hostile template is refused here, in one message, before any chat
                self.render(self.messages("Hello"))
            except BaseException:
                if llama is None:
                    self.close()
                raise

    def _load(self, n_ctx: int, threads: int | None, template: str) -> Any:
        from medcal_gui.llama.cpu_quirks import install_llama_defaults
        from medcal_gui.llama.log import route_llama_logs

        route_llama_logs()
        install_llama_defaults()
        import llama_cpp

        if not self.model_path.is_file():
            raise ModelError(f"The model file {self.model_path} does not exist.")
        from medcal_gui.budget.limits import chat_needs, check
        from medcal_gui.chat.chat_template import ChatTemplateError, embedded_template_problem
        from medcal_gui.gguf_files.gguf_check import model_header

        header = model_header(self.model_path)  # a damaged file fails here, clearly
        problem = embedded_template_problem(header.fields, self.model_path.name) if template != "gemma" else None
        if problem:  # refused before the model loads
            raise ChatTemplateError(problem)
        trained = header.context_length
        check(chat_needs(self.model_path, min(n_ctx, trained or n_ctx)))
        if trained:
            n_ctx = min(n_ctx, trained)  # beyond what it was trained on, a model only degrades
        try:
            with _embedded_templates_not_compiled():
                return llama_cpp.Llama(str(self.model_path), n_ctx=n_ctx,
                                       n_threads=threads or os.cpu_count() or 1, n_batch=min(512, n_ctx),
                                       verbose=False)
        except ValueError as exc:
            raise ModelError(f"llama.cpp could not load the model {self.model_path}: it is damaged, truncated "
                             "or not a GGUF model (run `medcal inspect` on it).", details=str(exc)) from exc

    def _token_text(self, tok: int) -> str:
        return bytes(self.llm.detokenize([tok], special=True)).decode("utf-8", "replace")

    @property
    def name(self) -> str:
        return self.model_path.name

    def messages(self, user_text: str | None = None) -> list[Message]:
        msgs: list[Message] = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        msgs += self.history
        if user_text is not None:
            msgs.append({"role": "user", "content": user_text})
        return msgs

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for `messages`, ending with the model turn's opening."""
        from medcal_gui.chat.chat_template import render_gemma, render_template

        if self._template is not None:
            return render_template(self._template, messages, bos_token=self._token_text(self.llm.token_bos()),
                                   eos_token=self._token_text(self.llm.token_eos()), add_generation_prompt=True,
                                   source=f"the chat template embedded in {self.name}")
        return render_gemma(messages, add_generation_prompt=True,
                            bos_token=self._token_text(self.llm.token_bos()))

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        toks: list[int] = list(self.llm.tokenize(self.render(messages).encode("utf-8"), add_bos=False,
                                                 special=True))
        bos = self.llm.token_bos()
        if self.llm._model.add_bos_token() and bos >= 0 and (not toks or toks[0] != bos):
            toks.insert(0, bos)
        return toks

    def reset(self) -> None:
        self.history.clear()

    def stream(self, user_text: str, params: SamplingParams | None = None, stop: Any = None) -> Iterator[str]:
        """Yield the reply to `user_text` piece by piece; the turn joins `history` when the reply ends.

        `stop` is anything with a truthy `cancelled` attribute once the user wants to stop (StopFlag,
        CancelToken); it is checked before every token. `last_stats` describes the reply afterwards.
        Raises ContextFull before generating when the conversation itself fills the context.
        """
        import llama_cpp

        params = params or SamplingParams()
        stats = self.last_stats = ChatStats()
        msgs = self.messages(user_text)
        tokens = self.prompt_tokens(msgs)
        stats.prompt_tokens = len(tokens)
        if len(tokens) >= self.n_ctx - 1:
            raise ContextFull(
                f"The conversation ({len(tokens)} tokens) no longer fits {self.name}'s context of {self.n_ctx} "
                "tokens. Start a new chat (or shorten the message, or load the model with a larger context).")
        room = self.n_ctx - len(tokens)
        budget = min(params.max_tokens, room)
        self.llm.set_seed(params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "little"))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        t0 = time.perf_counter()
        t_first: float | None = None
        finish = ""
        gen = self.llm.generate(tokens, top_k=params.top_k, top_p=params.top_p, min_p=params.min_p,
                                temp=params.temperature, repeat_penalty=params.repeat_penalty, reset=True)
        try:
            for tok in gen:
                if stop is not None and getattr(stop, "cancelled", False):
                    finish = "stopped"
                    break
                if t_first is None:
                    t_first = time.perf_counter()
                    stats.ttft_s = t_first - t0
                if llama_cpp.llama_vocab_is_eog(self._vocab, tok) or tok == self._turn_start:
                    finish = "stop"
                    break
                stats.completion_tokens += 1
                text = decoder.decode(bytes(self.llm.detokenize([tok], prev_tokens=None)))
                if text:
                    pieces.append(text)
                    yield text
                if stop is not None and getattr(stop, "cancelled", False):
                    finish = "stopped"
                    break
                if stats.completion_tokens >= budget:
                    finish = "length" if budget == params.max_tokens else "context"
                    break
        finally:
            gen.close()
            tail = decoder.decode(b"", final=True)
            if tail:
                pieces.append(tail)
            t_end = time.perf_counter()
            stats.seconds = t_end - t0
            if t_first is not None:
                if stats.completion_tokens > 1 and t_end > t_first:
                    stats.tokens_per_s = (stats.completion_tokens - 1) / (t_end - t_first)
                if stats.ttft_s:
                    stats.prompt_tokens_per_s = stats.prompt_tokens / stats.ttft_s
            stats.finish_reason = finish or "stopped"
            if finish == "context":
                stats.message = (f"The reply was cut off: the context of {self.n_ctx} tokens is full. Start a new "
                                 "chat to continue.")
            elif finish == "stopped":
                stats.message = "Stopped."
            reply = "".join(pieces)
            self.history.append({"role": "user", "content": user_text})
            self.history.append({"role": "assistant", "content": reply.strip()})
        if tail:
            yield tail

    def reply(self, user_text: str, params: SamplingParams | None = None, stop: Any = None,
              on_piece: Callable[[str], None] | None = None) -> ChatReply:
        """Run `stream` to the end; returns the whole reply with its stats."""
        pieces = []
        for p in self.stream(user_text, params, stop):
            pieces.append(p)
            if on_piece is not None:
                on_piece(p)
        return ChatReply(self.name, "".join(pieces), self.last_stats)

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.close()

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ABReply:
    a: ChatReply
    b: ChatReply

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a.to_json(), "b": self.b.to_json()}


def ab_chat(a: ChatSession, b: ChatSession, user_text: str, params: SamplingParams | None = None,
            stop: Any = None, on_piece: Callable[[str, str], None] | None = None) -> ABReply:
    """Send the same turn to two sessions in turn (A then B) and return both replies with their speeds.

    Both use the same sampling parameters and seed (a fixed one is drawn when `params.seed` is None), so with
    temperature 0 the comparison is deterministic. `on_piece(which, text)` gets "a"/"b" and each piece.
    """
    params = params or SamplingParams()
    if params.seed is None:
        params = SamplingParams(**{**asdict(params), "seed": int.from_bytes(os.urandom(4), "little")})
    ra = a.reply(user_text, params, stop, (lambda t: on_piece("a", t)) if on_piece else None)
    if stop is not None and getattr(stop, "cancelled", False):
        return ABReply(ra, ChatReply(b.name, "", ChatStats(finish_reason="stopped", message="Stopped.")))
    rb = b.reply(user_text, params, stop, (lambda t: on_piece("b", t)) if on_piece else None)
    return ABReply(ra, rb)
