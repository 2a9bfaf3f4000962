"""Pane 3 (Quantize) with real widgets, the tiny real Gemma-3 GGUF and real llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcal_gui.calibrate.tokens import count_tokens
from medcal_gui.core.errors import Cancelled
from medcal_gui.core.fsutil import TMP_PREFIX
from medcal_gui.core.jobs import CancelToken, Progress, no_progress
from medcal_gui.core.units import format_bytes
from medcal_gui.dataset.holdout import calibration_text, split_records
from medcal_gui.dataset.reading.loader import LoadOptions
from medcal_gui.ui.panes.narratives_pane import load_inputs
from medcal_gui.ui.panes.quantize_pane import QuantizePane
from medcal_gui.ui.workbench import Workbench
from medcal_gui.workflows.calibrate_quantize import RunPlan, run_quantize

N_CTX = 128


@pytest.fixture
def loaded_bench(bench: Workbench, sample_file: Path) -> Workbench:
    bench.set_loaded(load_inputs([sample_file], LoadOptions(), no_progress, CancelToken()))
    return bench


@pytest.fixture
def pane(qtbot, loaded_bench: Workbench, tiny_model: Path, tmp_path: Path) -> QuantizePane:  # type: ignore[no-untyped-def]
    loaded_bench.model_path = tiny_model  # as `medcal gui --model`: the pane starts with it
    p = QuantizePane(loaded_bench)
    qtbot.addWidget(p)
    p.ctx_spin.setValue(N_CTX)
    p.out_dir_edit.setText(str(tmp_path / "out"))
    assert p.model == tiny_model
    qtbot.waitUntil(lambda: p.info is not None and p.tokens is not None and p.ready(), timeout=20000)
    return p


def test_picking_the_tiny_model_shows_its_card(pane: QuantizePane, tiny_model: Path) -> None:
    card = pane.card
    assert card.value("architecture") == "gemma3"
    assert card.value("turns").startswith("✔ control tokens")
    assert "<start_of_turn> = " in card.value("turns") and "(control)" in card.value("turns")
    assert card.value("params") == f"{pane.info.parameter_count:,} (1M)"
    assert card.value("file_type") == "F32"
    assert card.value("template") == "embedded"
    assert card.value("quantized") == "no"
    assert pane.bench.settings.model_path == str(tiny_model)
    assert pane.bench.settings.get_list("model/recent")[0] == str(tiny_model)


def test_token_and_chunk_counts_are_count_tokens_figures(pane: QuantizePane, tiny_model: Path) -> None:
    cal = pane.calibration()
    assert cal.held_out == len(split_records(pane.bench.records)[1]) > 0
    rep = count_tokens(tiny_model, [cal.text], n_ctx=N_CTX)
    assert (pane.tokens.tokens, pane.tokens.n_chunks, pane.tokens.tokens_dropped) == (
        rep.tokens, rep.n_chunks, rep.tokens_dropped)
    text = pane.tokens_label.text()
    assert f"<b>{rep.tokens:,}</b> tokens" in text
    assert f"<b>{rep.n_chunks}</b> chunks of {N_CTX}" in text
    assert f"<b>{rep.tokens_dropped:,}</b> tokens dropped" in text


def test_sizes_are_estimates_until_the_dry_run_gives_the_selected_one(qtbot, pane: QuantizePane) -> None:  # type: ignore[no-untyped-def]
    pane.table.select("Q8_0")
    qtbot.waitUntil(lambda: pane.table.is_exact("Q8_0"), timeout=10000)
    assert pane.table.size_cell("Q8_0") == format_bytes(pane.table.exact["Q8_0"])
    assert pane.table.item(pane.table.row_of("Q8_0"), 2).font().bold()
    q2k = int(pane.info.parameter_count * 3.16 / 8)  # Q2_K: 3.16 bits per weight
    assert pane.table.size_cell("Q2_K") == f"≈{format_bytes(q2k)}"
    assert pane.table.item(pane.table.row_of("IQ2_XXS"), 3).text() == "requires"
    assert "ignores the importance matrix" in pane.advice.text()
    assert pane.run_btn.text() == "Run: quantize"


def test_a_type_llama_cpp_refuses_without_an_imatrix_needs_one(qtbot, pane: QuantizePane) -> None:  # type: ignore[no-untyped-def]
    pane.none_radio.setChecked(True)
    pane.table.select("IQ2_XXS")
    qtbot.waitUntil(lambda: "IQ2_XXS" in pane._refusals, timeout=10000)
    assert not pane.run_btn.isEnabled()
    assert "requires an importance matrix" in pane.run_btn.toolTip()
    assert pane.table.size_cell("IQ2_XXS").startswith("≈")  # no dry run without one: the estimate stays
    pane.compute_radio.setChecked(True)
    assert pane.run_btn.isEnabled()


def test_run_computes_the_imatrix_then_quantizes(qtbot, pane: QuantizePane, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pane.table.select("Q4_K_M")
    pane.chunks_spin.setValue(3)
    seen: list[Progress] = []
    pane.bench.jobs.progress.connect(seen.append)
    assert pane.run_btn.isEnabled(), pane.run_btn.toolTip()
    with qtbot.waitSignal(pane.quantized, timeout=90000) as sig:
        assert pane.run()
    res = sig.args[0]
    best = {st: max(p.fraction or 0 for p in seen if p.stage == st) for st in ("imatrix", "quantize")}
    assert best == {"imatrix": 1.0, "quantize": 1.0}
    assert pane.imatrix_stage.fraction == 1.0 and pane.quant_stage.fraction == 1.0
    assert any("ppl" in p.extra for p in seen if p.stage == "imatrix")
    out = tmp_path / "out" / "tiny-gemma3-f32-Q4_K_M.gguf"
    assert res.quant.out == out and out.is_file()
    assert (out.parent / (out.name + ".sha256")).read_text().split()[0] == res.quant.sha256
    manifest = json.loads((out.parent / (out.name + ".manifest.json")).read_text())
    assert manifest["imatrix"]["chunk_count"] == 3
    assert manifest["metadata_written"]["medcal.calibration.variant"] == "quantization_calibration"
    assert (out.parent / "tiny-gemma3-f32-Q4_K_M.imatrix.gguf").is_file()
    assert res.imatrix.chunks == 3
    assert pane.bench.is_step_done("quantize")
    assert pane.bench.last_quant == out
    assert pane.bench.settings.get_str("quantize/last_output") == str(out)
    assert "Done" in pane.result_label.text()
    assert not list(out.parent.glob(TMP_PREFIX + "*"))


def test_cancelling_the_run_leaves_no_file(qtbot, pane: QuantizePane, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pane.table.select("Q4_K_M")
    pane.chunks_spin.setValue(0)  # every chunk: long enough to cancel in the middle
    chunks: list[Progress] = []
    pane.bench.jobs.progress.connect(lambda p: chunks.append(p) if p.stage == "imatrix" and p.done else None)
    assert pane.run()
    qtbot.waitUntil(lambda: bool(chunks), timeout=30000)
    with qtbot.waitSignal(pane.bench.jobs.cancelled, timeout=20000):
        pane.cancel_btn.click()
    assert "Cancelled" in pane.result_label.text()
    assert "nothing from this run was left behind; earlier files in the folder were not touched" in (
        pane.result_label.text())
    assert not pane.bench.is_step_done("quantize")
    assert list((tmp_path / "out").rglob("*")) == []  # no imatrix, no quant, no .medcal-partial-*
    assert pane.run_btn.isEnabled()


def test_a_cancel_after_the_imatrix_keeps_it(loaded_bench: Workbench, tiny_model: Path,
                                                   tmp_path: Path) -> None:
    from medcal_gui.dataset.variants import get_variant

    token = CancelToken()

    def progress(p: Progress) -> None:
        if p.stage.startswith("quantize"):  # the imatrix is on disk by now
            assert (tmp_path / "q.imatrix.gguf").is_file()
            token.cancel()

    cal = calibration_text(loaded_bench.records, get_variant("quantization_calibration"), "seed")
    plan = RunPlan(tiny_model, tmp_path / "q.gguf", "Q4_K_M", "compute", cal, n_ctx=N_CTX, n_chunks=2)
    with pytest.raises(Cancelled):
        run_quantize(plan, progress, token)
    assert [p.name for p in tmp_path.iterdir()] == ["q.imatrix.gguf"]  # finished work is kept (issue 11.5)


def test_the_chunks_that_will_run_follow_the_chunks_box(qtbot, pane: QuantizePane) -> None:  # type: ignore[no-untyped-def]
    n = pane.tokens.n_chunks
    assert n > 2
    assert f"{n} chunk(s) will run" in pane.tokens_label.text()
    pane.chunks_spin.setValue(2)
    assert "; 2 chunk(s) will run." in pane.tokens_label.text()
    assert pane.plan().n_chunks == 2  # what the run does is what the line says
    pane.chunks_spin.setValue(0)
    assert f"; {n} chunk(s) will run." in pane.tokens_label.text()


def test_the_dry_run_size_says_why_it_is_above_the_estimate(qtbot, pane: QuantizePane) -> None:  # type: ignore[no-untyped-def]
    from medcal_gui.presenters.quantize_facts import size_note
    from medcal_gui.quantize.quant_types import get_quant_type

    pane.table.select("Q2_K")
    qtbot.waitUntil(lambda: pane.table.is_exact("Q2_K"), timeout=20000)
    note = size_note(get_quant_type("Q2_K"), pane.info.parameter_count, pane.table.exact["Q2_K"])
    assert note and "token embeddings" in note  # the tiny model: a big vocabulary for its size
    assert note in pane.advice.text()


def test_the_run_button_says_what_the_run_needs_and_warns_when_it_does_not_fit(
        qtbot, pane: QuantizePane, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 16: the memory and disk estimate next to Run, against what is free (a fake small figure)."""
    from medcal_gui.presenters.quantize_facts import run_needs
    from medcal_gui.quantize.quant_types import get_quant_type

    qtbot.waitUntil(lambda: pane.shape is not None, timeout=20000)
    pane._update()
    text = pane.needs_label.text()
    assert text.startswith("This run needs about ") and "of memory (" in text and "of disk (" in text
    qt = get_quant_type(pane.qtype())
    needs = run_needs(pane.shape, pane.output_path(), qt, N_CTX, True, pane.table.exact.get(qt.name))
    assert needs.memory > 0 and needs.disk > 0
    monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", "1K")
    pane._update()
    assert pane.needs_label.text().startswith("⚠ This run needs about") and "too little" in pane.needs_label.text()
