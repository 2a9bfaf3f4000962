"""Chat templates: Gemma's own (for models that embed none: Gemma 3 270M, the demo model, is a base model),
and a bounded renderer for any template, including one read from an untrusted GGUF.

Gemma's text lives in `resources/gemma_chat_template.jinja`: Gemma 3's own template, text-only. A system
message is folded into the first user turn, as Gemma has no system role (llama-cpp-python's built-in "gemma"
format silently drops it instead).

Every template renders in jinja2's ImmutableSandboxedEnvironment (as llama-cpp-python renders embedded
templates: no payload runs) with limits on top: at most RENDER_TIME_S seconds, at most RENDER_MAX_CHARS
characters of output, and no single operation that would build a huge string or number (`'A' * 4000000000`,
`'x'.ljust(10**9)`, `2 ** 10**9`). Every failure - a syntax error, an exception in the template, a limit -
becomes one `ChatTemplateError` that offers Gemma's built-in template.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

from medcal_gui.core.errors import ModelError
from medcal_gui.core.resources import resources_dir

TEMPLATE_FILE = "gemma_chat_template.jinja"
RENDER_TIME_S = 2.0
RENDER_MAX_CHARS = 4_000_000  # far above any prompt a context can hold (~4 characters per token)
MAX_OPERAND = 1_000_000  # the largest size any one operation in a template may ask for
_HUGE_WIDTH = re.compile(r"\d{7,}")  # a format width or precision of a million or more
BUILTIN_HINT = "Use Gemma's built-in template instead (medcal chat --template gemma)."
_SAMPLE = [{"role": "system", "content": "You are a careful clinical assistant."},
           {"role": "user", "content": "Summarise: 67 y/o, chest pain, troponin 0.8."},
           {"role": "assistant", "content": "Likely NSTEMI."},
           {"role": "user", "content": "Next step?"}]


class ChatTemplateError(ModelError):
    """A chat template cannot be rendered (broken, hostile, or over the limits). `builtin_works` tells a
    front end that it may offer Gemma's built-in template instead."""

    builtin_works = True


@functools.cache
def gemma_chat_template() -> str:
    """The template's text (jinja2), as a GGUF's tokenizer.chat_template would hold it."""
    return (resources_dir() / TEMPLATE_FILE).read_text(encoding="utf-8")


class _Limit(Exception):
    """A template went over a limit (time, output size, operand size)."""


def _big(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_OPERAND


@functools.cache
def _environment() -> Any:
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class IgnoreGenerationTags(jinja2.ext.Extension):
        """HuggingFace's `{% generation %}` tag passes its body through (as llama-cpp-python does)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "%", "+"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            if any(_big(a) for a in (*args, *kwargs.values())):
                raise _Limit("it calls a function with a huge size")
            return super().call(__context, __obj, *args, **kwargs)

        def wrap_str_format(self, value: Any) -> Any:
            wrapped = super().wrap_str_format(value)
            if wrapped is not None and _HUGE_WIDTH.search(value.__self__):
                def refuse(*_a: Any, **_k: Any) -> str:
                    raise _Limit("it formats with a huge width")

                return refuse
            return wrapped

    env = BoundedEnvironment(loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True,
                             extensions=[IgnoreGenerationTags, jinja2.ext.loopcontrols])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: (
        json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys))
    for name in ("center", "indent", "wordwrap", "truncate"):  # width arguments, bounded like calls
        env.filters[name] = _bounded_filter(env.filters[name])
    replace, join = env.filters["replace"], env.filters["join"]

    def bounded_replace(*args: Any, **kwargs: Any) -> Any:
        texts = [a for a in (*args, *kwargs.values()) if isinstance(a, str)]  # value, old, new
        if len(texts) >= 3 and texts[1]:
            _check_size(len(texts[0]) + texts[0].count(texts[1]) * (len(texts[2]) - len(texts[1])))
        return replace(*args, **kwargs)

    def bounded_join(*args: Any, **kwargs: Any) -> Any:
        items = [a for a in args if isinstance(a, list | tuple)]
        sep = [a for a in (*args[1:], *kwargs.values()) if isinstance(a, str)]
        if items and sep:
            _check_size(len(items[0]) * len(sep[0]))
        return join(*args, **kwargs)

    for f, new_f in ((replace, bounded_replace), (join, bounded_join)):
        if hasattr(f, "jinja_pass_arg"):
            new_f.jinja_pass_arg = f.jinja_pass_arg  # type: ignore[attr-defined]
    env.filters["replace"], env.filters["join"] = bounded_replace, bounded_join
    return env


def _check_size(n: int) -> None:
    if n > RENDER_MAX_CHARS:
        raise _Limit(f"it builds a text of {n:,} characters")


def _seq_len(v: object) -> int | None:
    return len(v) if isinstance(v, str | list | tuple) else None


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse, before it runs, an operation whose result would be huge."""
    ll, rl = _seq_len(left), _seq_len(right)
    if operator == "*":
        if ll is not None and isinstance(right, int):
            _check_size(ll * right)
        if rl is not None and isinstance(left, int):
            _check_size(rl * left)
    elif operator == "+" and ll is not None and rl is not None:
        _check_size(ll + rl)
    elif operator == "**" and isinstance(right, int | float):
        base_bits = left.bit_length() if isinstance(left, int) else 64
        if abs(right) > 4096 or base_bits * abs(right) > 1 << 20:
            raise _Limit(f"it raises a number to the power {right}")
    elif operator == "%" and isinstance(left, str):
        args = right if isinstance(right, tuple) else (right,)
        if _HUGE_WIDTH.search(left) or any(_big(a) for a in args):
            raise _Limit("it formats with a huge width")


def _bounded_join_strings(join: Any) -> Any:
    def bounded(seq: Any) -> Any:
        items = list(seq)
        _check_size(sum(len(str(x)) for x in items))
        return join(items)

    return bounded


def _bounded_filter(f: Any) -> Any:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if any(_big(a) for a in (*args[1:], *kwargs.values())):
            raise _Limit("it asks a filter for a huge width")
        return f(*args, **kwargs)

    for attr in ("jinja_pass_arg",):
        if hasattr(f, attr):
            setattr(bounded, attr, getattr(f, attr))
    return bounded


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    line = getattr(exc, "lineno", None)
    where = f" (template line {line})" if isinstance(line, int) else ""
    return (text[:200] + ("..." if len(text) > 200 else "")) + where


def render_template(template: str, messages: Sequence[Mapping[str, str]], *, bos_token: str = "<bos>",
                    eos_token: str = "<eos>", add_generation_prompt: bool = True, source: str = "the chat template",
                    time_limit_s: float = RENDER_TIME_S, max_chars: int = RENDER_MAX_CHARS) -> str:
    """Render `template` (jinja2 text) for `messages` with the variables llama-cpp-python passes (bos_token,
    eos_token, add_generation_prompt, raise_exception, strftime_now, tools=None), within the limits.
    Raises ChatTemplateError naming `source` ("the chat template embedded in X.gguf")."""
    import jinja2

    def fail(why: str) -> ChatTemplateError:
        return ChatTemplateError(f"{source[:1].upper()}{source[1:]} cannot be used: {why}. {BUILTIN_HINT}")

    def raise_exception(message: str) -> str:
        raise _Limit(f"the template refuses this conversation: {message}")

    try:
        compiled = _environment().from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise fail(f"it is not a valid template: {_one_line(exc)}") from None
    except (jinja2.TemplateError, RecursionError, MemoryError, ValueError, TypeError) as exc:
        raise fail(f"it cannot be compiled: {_one_line(exc)}") from None
    # `a ~ b` compiles to a call of str_join/markup_join in the template's own namespace: bound them too
    names = compiled.root_render_func.__globals__
    for name in ("str_join", "markup_join"):
        if name in names:
            names[name] = _bounded_join_strings(names[name])

    deadline = time.monotonic() + time_limit_s
    old_trace = sys.gettrace()

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if time.monotonic() > deadline:
            raise _Limit(f"rendering took longer than {time_limit_s:g} s (a loop that never ends?)")
        return tracer

    pieces: list[str] = []
    size = 0
    sys.settrace(tracer)  # checks the clock on every line the template's compiled code runs
    try:
        for piece in compiled.generate(
                messages=[dict(m) for m in messages], bos_token=bos_token, eos_token=eos_token,
                add_generation_prompt=add_generation_prompt, raise_exception=raise_exception,
                strftime_now=lambda f: _dt.datetime.now().strftime(str(f)), tools=None, functions=None):
            size += len(piece)
            if size > max_chars:
                raise _Limit(f"its output is longer than {max_chars:,} characters")
            pieces.append(piece)
    except _Limit as exc:
        raise fail(str(exc)) from None
    except RecursionError:
        raise fail("it recurses without end") from None
    except MemoryError:
        raise fail("it needs more memory than there is") from None
    except Exception as exc:  # anything the template itself raised: one line, never a traceback
        raise fail(f"{type(exc).__name__}: {_one_line(exc)}") from None
    finally:
        sys.settrace(old_trace)
    return "".join(pieces)


def check_template(template: str, source: str = "the chat template") -> str | None:
    """None when `template` renders a sample conversation within the limits, else the reason (one line)."""
    try:
        render_template(template, _SAMPLE, source=source)
    except ChatTemplateError as exc:
        return exc.message
    return None


def embedded_template_problem(fields: Mapping[str, Any], file_name: str) -> str | None:
    """Why the chat template a GGUF embeds (`tokenizer.chat_template` in its header `fields`) cannot be used;
    None when it renders, or when the file embeds none."""
    template = fields.get("tokenizer.chat_template")
    if not (isinstance(template, str) and template.strip()):
        return None
    return check_template(template, source=f"the chat template embedded in {file_name}")


def render_gemma(messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = False,
                 bos_token: str = "<bos>") -> str:
    """Render `messages` ({"role": "system"|"user"|"assistant", "content": ...}) in Gemma's format, in the
    same sandboxed jinja2 environment llama-cpp-python uses for embedded templates."""
    try:
        return render_template(gemma_chat_template(), messages, add_generation_prompt=add_generation_prompt,
                               bos_token=bos_token, source="Gemma's chat template")
    except ChatTemplateError as exc:
        msg = exc.message.replace(" " + BUILTIN_HINT, "")
        raise ChatTemplateError(msg.replace("Gemma's chat template cannot be used: ",
                                            "Cannot format the conversation for Gemma: ")) from None
