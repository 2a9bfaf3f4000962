"""Gemma's chat template, for models that do not embed one (Gemma 3 270M, the demo model, is a base model).

The text lives in `resources/gemma_chat_template.jinja`: Gemma 3's own template, text-only. A system message
is folded into the first user turn, as Gemma has no system role (llama-cpp-python's built-in "gemma" format
silently drops it instead).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from medcal_gui.errors import InputError
from medcal_gui.resources import resources_dir

TEMPLATE_FILE = "gemma_chat_template.jinja"


@functools.cache
def gemma_chat_template() -> str:
    """The template's text (jinja2), as a GGUF's tokenizer.chat_template would hold it."""
    return (resources_dir() / TEMPLATE_FILE).read_text(encoding="utf-8")


def render_gemma(messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = False,
                 bos_token: str = "<bos>") -> str:
    """Render `messages` ({"role": "system"|"user"|"assistant", "content": ...}) in Gemma's format, in the
    same sandboxed jinja2 environment llama-cpp-python uses for embedded templates."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> str:
        raise InputError(f"Cannot format the conversation for Gemma: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(gemma_chat_template())
    try:
        return template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                bos_token=bos_token, raise_exception=raise_exception)
    except TemplateError as exc:
        raise InputError(f"Cannot format the conversation for Gemma: {exc}") from exc
