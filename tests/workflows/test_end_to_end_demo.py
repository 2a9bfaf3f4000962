"""The real demo model end to end: imatrix from the sample data, IQ3_XXS with and without it, both load and
generate, the imatrix is recorded in one and absent from the other, and on held-out chat text the one made
with it stays closer to the base (LLAMA_NOTES: mean KLD 0.078 with, 0.205 without)."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from medcal_gui.calibrate.imatrix_io import ImatrixData

pytestmark = pytest.mark.slow


def _types(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in gguf.GGUFReader(path).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return counts


def test_demo_imatrix_covers_every_layer(demo_imatrix: Path) -> None:
    data = ImatrixData.load(demo_imatrix)
    # Gemma 3 270M: 18 blocks × 7 matrices (q, k, v, output, gate, up, down) = 126 entries.
    assert len(data.entries) == 126
    assert data.chunk_count == 8
    assert all(e.counts.min() == 8 * 512 for e in data.entries.values())


def test_demo_iq3_xxs_with_and_without_imatrix_load_and_generate(demo_iq3_with_imatrix: Path,
                                                                 demo_iq3_without_imatrix: Path) -> None:
    from medcal_gui.chat.chat import ChatSession, SamplingParams

    with_kv = gguf.GGUFReader(demo_iq3_with_imatrix).fields
    without_kv = gguf.GGUFReader(demo_iq3_without_imatrix).fields
    assert "quantize.imatrix.entries_count" in with_kv
    assert "quantize.imatrix.entries_count" not in without_kv
    # With an imatrix the 18 ffn_down matrices (2048 wide) take IQ3_XXS; without one llama.cpp keeps them
    # in k-quants (Q3_K/Q4_K), since IQ3_XXS without importance weights would be garbage.
    assert _types(demo_iq3_with_imatrix).get("IQ3_XXS") == 18
    assert "IQ3_XXS" not in _types(demo_iq3_without_imatrix)
    assert demo_iq3_with_imatrix.read_bytes() != demo_iq3_without_imatrix.read_bytes()
    for path in (demo_iq3_with_imatrix, demo_iq3_without_imatrix):
        with ChatSession(path, n_ctx=256, threads=2) as chat:
            reply = chat.reply("The heart has four chambers:", SamplingParams.greedy(max_tokens=8))
        assert reply.stats.completion_tokens >= 1
        assert reply.text.strip()


def test_demo_iq3_xxs_with_imatrix_has_lower_kld_on_heldout_chat_text(demo_model: Path, demo_heldout: Path,
                                                                       demo_iq3_with_imatrix: Path,
                                                                       demo_iq3_without_imatrix: Path) -> None:
    from medcal_gui.evaluate.evaluate import evaluate

    res = evaluate(demo_model, [demo_iq3_with_imatrix, demo_iq3_without_imatrix], demo_heldout, n_ctx=512)
    with_m, without_m = res.models
    assert with_m.tokens_scored == without_m.tokens_scored > 500
    assert 0.0 < with_m.kld_mean < 0.8 * without_m.kld_mean
    assert with_m.same_top_pct > without_m.same_top_pct
    assert with_m.ppl_ratio < without_m.ppl_ratio
