"""One chunk plan and one chunk decoder: the token count, the importance matrix, the evaluation and the
Quantize pane's summary cut a text the same way, and the imatrix and the evaluation decode a chunk alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medcal_gui.llama.chunks import ChunkPlan

TEXT = "The patient has chest pain and a history of hypertension; blood pressure was 150/95.\n" * 40


@pytest.mark.parametrize(("n_tokens", "n_ctx", "limit", "chunks", "dropped"), [
    (1000, 128, None, 7, 104),  # llama-imatrix: n_tokens / n_ctx whole chunks, the tail dropped
    (1000, 128, 3, 3, 616),  # --chunks 3: the first three; the rest is never decoded
    (1000, 128, 50, 7, 104),
    (1000, 128, 0, 1, 872),  # --chunks 0 runs one chunk, as it always did
    (100, 128, None, 0, 100),  # too short for one chunk
    (100, 128, 2, 0, 100),
    (256, 128, None, 2, 0),
])
def test_the_chunk_rule(n_tokens: int, n_ctx: int, limit: int | None, chunks: int, dropped: int) -> None:
    plan = ChunkPlan(n_tokens, n_ctx, limit)
    assert (plan.n_chunks, plan.tokens_dropped, plan.tokens_used) == (chunks, dropped, chunks * n_ctx)
    got = list(plan.chunks(np.arange(n_tokens)))
    assert len(got) == chunks and all(len(c) == n_ctx for c in got)
    assert [int(c[0]) for c in got] == [i * n_ctx for i in range(chunks)]


def test_count_imatrix_and_eval_cut_the_text_alike_and_decode_a_chunk_alike(tiny_model: Path) -> None:
    from medcal_gui.calibrate.imatrix import compute_imatrix
    from medcal_gui.calibrate.tokens import count_tokens
    from medcal_gui.evaluate.evaluate import evaluate

    n_ctx = 64
    rep = count_tokens(tiny_model, TEXT, n_ctx=n_ctx)
    imx = compute_imatrix(tiny_model, [TEXT], n_ctx=n_ctx, compute_ppl=True)
    ev = evaluate(tiny_model, [tiny_model], TEXT, n_ctx=n_ctx, use_cache=False)
    assert rep.n_chunks >= 2
    assert (imx.tokens_total, imx.chunks, imx.tokens_dropped) == (rep.tokens, rep.n_chunks, rep.tokens_dropped)
    assert (ev.tokens_total, ev.chunks) == (rep.tokens, rep.n_chunks)
    # both score each chunk's second half: one decoder gives the same perplexity
    assert imx.ppl == pytest.approx(ev.models[0].ppl_base, rel=1e-4)


@pytest.mark.parametrize(("limit", "runs"), [(0, 7), (3, 3), (9, 7)])
def test_the_quantize_pane_counts_the_chunks_the_imatrix_runs(limit: int, runs: int) -> None:
    from medcal_gui.calibrate.tokens import TokenReport
    from medcal_gui.presenters.quantize_facts import token_summary

    plan = ChunkPlan(1000, 128)
    rep = TokenReport(model="m", sources=[], n_ctx=128, parse_special=True, add_bos=True, record_format="plain",
                      chars=0, text_tokens=999, tokens=1000, n_chunks=plan.n_chunks, tokens_used=plan.tokens_used,
                      tokens_dropped=plan.tokens_dropped, tokens_replaced_by_bos=6, chars_per_token=0.0,
                      records=[], markers=[], markers_ok=True)
    assert f"; {runs} chunk(s) will run." in token_summary(rep, 1, "v", "chat", 0, limit)
    assert ChunkPlan(1000, 128, limit or None).n_chunks == runs  # what the pane passes the imatrix
