"""Preset prompts for every variant, and where a base model's reply ends (the demo never ends its turn)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcal_gui.chat.chat import ChatSession, SamplingParams
from medcal_gui.chat.chat_presets import TurnBoundary, presets_for_variant, stream_to_boundary
from medcal_gui.dataset.variants import load_variants


def test_every_variant_has_a_preset_of_its_own() -> None:
    for name in load_variants():
        own = [p for p in presets_for_variant(name) if p.variant == name]
        assert own, f"no preset for the variant {name}"
        assert presets_for_variant(name)[0].variant == name


def cut(pieces: list[str]) -> tuple[str, bool]:
    b = TurnBoundary()
    shown = "".join(b.feed(p) for p in pieces) + b.flush()
    return shown, b.hit


@pytest.mark.parametrize(("pieces", "shown", "hit"), [
    (["The heart ", "beats.", " mendatang", "user", "\n", "Hello"], "The heart beats. mendatang", True),
    (["Sinus rhythm.", "下一階", "model", "\n", "more"], "Sinus rhythm.下一階", True),
    (["A reply", "<start_", "of_turn>", "user"], "A reply", True),
    (["The model", " is small.\n", "The user", "\n", "reads."], "The model is small.\nThe user\nreads.", False),
    (["It is a mo", "del answer"], "It is a model answer", False),
    (["end with us"], "end with us", False),
])
def test_turn_boundary_cuts_at_a_written_role(pieces: list[str], shown: str, hit: bool) -> None:
    assert cut(pieces) == (shown, hit)


def test_held_back_text_is_never_lost_or_doubled() -> None:
    b = TurnBoundary()
    assert b.feed("Sinus rhythm.mod") == "Sinus rhythm."  # a glued "mod" may become "model\n": held
    assert b.feed("erate.") == "moderate."
    assert b.feed(" Rate mod") == " Rate mod"  # after a space a role word is just a word
    assert b.flush() == "" and b.shown == "Sinus rhythm.moderate. Rate mod"


@pytest.mark.slow
def test_the_demo_reply_stops_at_the_turn_it_writes(demo_model: Path) -> None:
    params = SamplingParams.greedy(max_tokens=40)
    with ChatSession(demo_model, n_ctx=512, threads=2) as s:
        raw = "".join(s.stream("Hello", params))  # the demo continues with "…user\nHello…"
        assert "user\n" in raw and s.last_stats.finish_reason == "length"
        s.reset()
        reply = "".join(stream_to_boundary(s, "Hello", params))
        assert reply and "user\n" not in reply and raw.startswith(reply)
        assert s.last_stats.finish_reason == "turn" and s.last_stats.completion_tokens < 40
        assert s.history[-1] == {"role": "assistant", "content": reply.strip()}
