"""Chat engine on the tiny model: templates, streaming, stop within one token, A/B determinism, presets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medcal_gui.engine import ggml_ctypes as gc
from medcal_gui.engine.chat import ChatSession, ContextFull, SamplingParams, StopFlag, ab_chat
from medcal_gui.engine.chat_presets import get_preset, load_presets, presets_for_variant
from medcal_gui.errors import InputError


@pytest.fixture(scope="module")
def session(tiny_model: Path) -> Iterator[ChatSession]:
    s = ChatSession(tiny_model, n_ctx=256, threads=2)
    yield s
    s.close()


@pytest.fixture(scope="module")
def tiny_q8(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chatq") / "tiny-q8_0.gguf"
    qa = gc.quantize_params(ftype=7, nthread=2, allow_requantize=False, pure=False, dry_run=False,
                            output_tensor_type=None, token_embedding_type=None, imatrix=None, kv_overrides=[])
    assert gc.model_quantize(tiny_model, out, qa) == 0
    return out


def test_embedded_template_is_used_and_rendered_like_llama_cpp_python(session: ChatSession) -> None:
    assert session.template_source == "gguf"
    text = session.render([{"role": "user", "content": "hello"}])
    assert text == "<bos><start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n"
    toks = session.prompt_tokens([{"role": "user", "content": "hello"}])
    assert toks[0] == 2 and toks.count(2) == 1  # BOS once, parsed from the template's text
    assert 105 not in toks and 4 in toks  # <start_of_turn> is the tiny vocabulary's control token 4


def test_gemma_template_folds_the_system_prompt_into_the_first_user_turn(tiny_model: Path) -> None:
    with ChatSession(tiny_model, n_ctx=128, system="Be brief.", template="gemma") as s:
        assert s.template_source == "gemma"
        text = s.render(s.messages("hi"))
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\n"


def test_stream_yields_pieces_and_records_the_turn(session: ChatSession) -> None:
    session.reset()
    pieces = list(session.stream("the patient has chest pain", SamplingParams(max_tokens=12, seed=7)))
    st = session.last_stats
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert st.completion_tokens <= 12 and st.prompt_tokens > 5
    assert st.finish_reason in ("length", "stop")
    assert st.ttft_s is not None and st.ttft_s > 0
    assert [m["role"] for m in session.history] == ["user", "assistant"]
    # the next turn renders the whole conversation
    assert session.render(session.messages("next")).count("<start_of_turn>") == 4  # user, model, user, model


def test_stop_takes_effect_within_one_token(session: ChatSession) -> None:
    session.reset()
    flag = StopFlag()
    got = []
    for piece in session.stream("blood pressure", SamplingParams(max_tokens=100, temperature=1.0, seed=3,
                                                                 min_p=0.0, top_k=0, top_p=1.0), flag):
        got.append(piece)
        if len(got) == 4:
            flag.set()
    assert session.last_stats.finish_reason == "stopped"
    assert session.last_stats.completion_tokens <= 5  # 4 pieces seen, at most the token in flight after
    assert len(got) == 4


def test_same_seed_gives_the_same_reply_and_temperature_zero_is_greedy(session: ChatSession) -> None:
    params = SamplingParams(max_tokens=10, temperature=0.9, seed=42, min_p=0.0)
    replies = []
    for _ in range(2):
        session.reset()
        replies.append(session.reply("heart rate", params).text)
    assert replies[0] == replies[1] and replies[0]
    greedy = SamplingParams.greedy(8)
    session.reset()
    a = session.reply("heart rate", greedy).text
    session.reset()
    b = session.reply("heart rate", SamplingParams.greedy(8)).text
    assert a == b


def test_ab_chat_is_deterministic_at_temperature_zero(tiny_model: Path, tiny_q8: Path) -> None:
    with ChatSession(tiny_model, n_ctx=256) as base, ChatSession(tiny_q8, n_ctx=256) as quant:
        seen: list[str] = []
        r1 = ab_chat(quant, base, "atrial fibrillation", SamplingParams.greedy(10),
                     on_piece=lambda which, _t: seen.append(which))
        base.reset()
        quant.reset()
        r2 = ab_chat(quant, base, "atrial fibrillation", SamplingParams.greedy(10))
    assert (r1.a.text, r1.b.text) == (r2.a.text, r2.b.text)
    assert r1.a.model == "tiny-q8_0.gguf" and r1.b.model == tiny_model.name
    assert r1.a.stats.completion_tokens > 0 and r1.b.stats.completion_tokens > 0
    assert seen and seen[0] == "a" and seen[-1] == "b"


def test_a_full_context_gives_a_clear_message_not_a_crash(tiny_model: Path) -> None:
    with ChatSession(tiny_model, n_ctx=64) as s:
        with pytest.raises(ContextFull, match="no longer fits"):
            list(s.stream("the patient " * 80, SamplingParams.greedy(4)))
        # a reply that runs into the end of the context stops there, with a note
        s.reset()
        list(s.stream("the patient " * 20, SamplingParams(max_tokens=500, seed=1, temperature=1.0)))
        st = s.last_stats
        assert st.finish_reason in ("context", "stop")
        if st.finish_reason == "context":
            assert "context" in st.message
            assert st.prompt_tokens + st.completion_tokens <= 64


def test_presets_build_the_variant_prompt() -> None:
    presets = load_presets()
    assert len(presets) >= 3
    p = get_preset("night_sentinel_nicu")
    assert p.prompt.startswith("[NIGHT SENTINEL MONITORING]\nReview the following overnight")
    assert "Neonate patient" in p.prompt
    assert presets_for_variant("night_sentinel")[0].variant == "night_sentinel"
    assert any(not q.variant for q in presets_for_variant("night_sentinel"))
    with pytest.raises(InputError, match="Unknown chat preset"):
        get_preset("nope")
