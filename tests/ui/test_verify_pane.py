"""Pane 4 (Verify & chat) with real widgets, the tiny real Gemma-3 GGUF and its Q8_0 quant."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from medcal_gui.core.jobs import CancelToken, no_progress
from medcal_gui.dataset.reading.loader import LoadOptions
from medcal_gui.quantize.quantize import quantize_model
from medcal_gui.ui.panes.narratives_pane import load_inputs
from medcal_gui.ui.panes.verify_pane import VerifyPane
from medcal_gui.ui.workbench import Workbench


@pytest.fixture(scope="session")
def tiny_q8(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tinyq8") / "tiny-Q8_0.gguf"
    return quantize_model(tiny_model, out, "Q8_0").out  # type: ignore[return-value]


@pytest.fixture
def pane(qtbot, bench: Workbench, sample_file: Path, tiny_model: Path) -> VerifyPane:  # type: ignore[no-untyped-def]
    bench.set_loaded(load_inputs([sample_file], LoadOptions(), no_progress, CancelToken()))
    p = VerifyPane(bench)
    qtbot.addWidget(p)
    p.set_models(tiny_model, tiny_model)
    p.params.set("temperature", 0.8)
    p.params.set("seed", 7)
    p.params.set("max_tokens", 24)
    return p


def test_a_reply_streams_in_pieces_with_its_speed(qtbot, pane: VerifyPane) -> None:  # type: ignore[no-untyped-def]
    appended: list[str] = []
    orig = pane.quant_view.append
    pane.quant_view.append = lambda piece: (appended.append(piece), orig(piece))  # type: ignore[method-assign]
    with qtbot.waitSignal(pane.reply_done, timeout=30000) as sig:
        assert pane.send("The patient has atrial fibrillation. Summarise.")
    stats = sig.args[0]["quant"]
    assert stats.completion_tokens > 1 and len(appended) > 1
    assert pane.quant_view.reply_text() == "".join(appended) != ""
    assert "The patient has atrial fibrillation" in pane.quant_view.view.toPlainText()
    assert f"{stats.completion_tokens} tokens" in pane.quant_view.stats.text()
    assert "tokens/s" in pane.quant_view.stats.text() and "first token after" in pane.quant_view.stats.text()
    assert pane.bench.settings.chat("max_tokens", 0) == 24
    assert pane.send_btn.isEnabled() and not pane.stop_btn.isEnabled()


def test_stop_ends_the_reply_within_a_token(qtbot, pane: VerifyPane) -> None:  # type: ignore[no-untyped-def]
    pane.params.set("max_tokens", 1500)
    pane.params.set("temperature", 1.5)
    assert pane.send("Tell me a long story")
    qtbot.waitUntil(lambda: len(pane.quant_view.reply_text()) > 0, timeout=20000)
    with qtbot.waitSignal(pane.reply_done, timeout=10000) as sig:
        pane.stop_btn.click()
    stats = sig.args[0]["quant"]
    assert stats.finish_reason == "stopped"
    assert stats.completion_tokens < 1500
    assert "stopped by you" in pane.quant_view.stats.text()


def test_side_by_side_shows_both_answers_and_speeds(qtbot, pane: VerifyPane, tiny_model: Path,  # type: ignore[no-untyped-def]
                                                    tiny_q8: Path) -> None:
    pane.set_models(tiny_q8, tiny_model)
    pane.side_check.setChecked(True)
    assert pane.base_view.isVisibleTo(pane)
    with qtbot.waitSignal(pane.reply_done, timeout=30000) as sig:
        assert pane.send("Heart rate 62 bpm at night: what next?")
    assert set(sig.args[0]) == {"base", "quant"}
    for key in ("base", "quant"):
        view = pane.views[key]
        assert view.reply_text().strip(), key
        assert "tokens/s" in view.stats.text()
    assert pane.base_view.title.text().endswith(tiny_model.name)
    assert pane.quant_view.title.text().endswith(tiny_q8.name)


def test_presets_follow_the_variant(pane: VerifyPane) -> None:
    pane.bench.settings.variant = "night_sentinel"
    pane.activated()
    titles = [pane.preset_combo.itemText(i) for i in range(1, pane.preset_combo.count())]
    assert titles[0].startswith("Night sentinel")
    pane.preset_combo.setCurrentIndex(1)
    pane._preset_chosen(1)
    assert pane.input.toPlainText() == pane.presets[0].prompt


def test_evaluating_a_model_against_itself_shows_zero_kld(qtbot, pane: VerifyPane) -> None:  # type: ignore[no-untyped-def]
    pane.ctx_spin.setValue(128)
    pane.chunks_spin.setValue(2)
    assert "The last 8 of the 38 loaded narratives" in pane.split_label.text()
    with qtbot.waitSignal(pane.evaluated, timeout=60000) as sig:
        assert pane.evaluate()
    m = sig.args[0].models[0]
    assert m.tokens_scored == 2 * (128 - 1 - 64)
    assert pane.figures.value("kld_mean") == "0.000000" and pane.figures.value("kld_max") == "0.000000"
    assert pane.figures.value("ppl_ratio") == "1.0000"
    assert pane.figures.value("same_top_pct") == "100.00 %"
    assert pane.figures.value("tokens_scored") == f"{m.tokens_scored:,}"
    assert pane.figures.value("ppl_base") == f"{m.ppl_base:.4f}"
    assert pane.chart.n == m.tokens_scored and pane.chart.counts[0] == m.tokens_scored
    assert pane.results.stage.bar.value() == 1000  # the evaluation has a bar, not only a percentage
    assert "usually indistinguishable from the base" in pane.results.reading.text()
    assert "below 0.01 is usually indistinguishable, above 0.1 noticeable" in pane.results.reading.text()
    assert pane.bench.is_step_done("verify")


def test_focus_returns_to_the_message_box_after_send_and_reply(qtbot, pane: VerifyPane) -> None:  # type: ignore[no-untyped-def]
    pane.show()
    qtbot.waitExposed(pane)
    temperature = pane.params.boxes["temperature"].value()
    pane.input.setPlainText("Hello")
    pane.send_btn.setFocus()
    with qtbot.waitSignal(pane.reply_done, timeout=30000):
        qtbot.mouseClick(pane.send_btn, Qt.MouseButton.LeftButton)
        assert pane.focusWidget() is pane.input  # Send turned off: the focus did not wander to a box
    assert pane.focusWidget() is pane.input
    qtbot.keyClicks(pane.focusWidget(), "Hello 2")  # the next message, typed at once
    assert pane.input.toPlainText() == "Hello 2"
    assert pane.params.boxes["temperature"].value() == temperature


def test_the_quant_waits_without_a_turn_it_was_never_sent(qtbot, pane: VerifyPane, tiny_model: Path,  # type: ignore[no-untyped-def]
                                                          tiny_q8: Path) -> None:
    pane.set_models(tiny_q8, tiny_model)
    pane.side_check.setChecked(True)
    pane.params.set("max_tokens", 3000)
    pane.params.set("temperature", 1.5)
    assert pane.send("Tell me a long story")
    assert "You" in pane.base_view.view.toPlainText()
    assert pane.quant_view.view.toPlainText() == ""
    assert "Waiting for the base" in pane.quant_view.stats.text() and "Thinking" not in pane.quant_view.stats.text()
    qtbot.waitUntil(lambda: len(pane.base_view.reply_text()) > 0, timeout=20000)
    with qtbot.waitSignal(pane.reply_done, timeout=10000) as sig:
        pane.stop_btn.click()
    assert set(sig.args[0]) == {"base"}
    assert pane.quant_view.view.toPlainText() == ""  # no "You" turn the quant never got
    assert "Not sent" in pane.quant_view.stats.text()
    assert pane.sessions[str(tiny_model)].history and str(tiny_q8) not in pane.sessions


def test_the_demo_chat_says_it_is_a_base_model_and_keeps_replies_short(qtbot, bench: Workbench,  # type: ignore[no-untyped-def]
                                                                       demo_model: Path) -> None:
    p = VerifyPane(bench)
    qtbot.addWidget(p)
    assert not p.demo_note.isVisibleTo(p)
    p.set_models(demo_model.with_name(demo_model.stem + "-Q4_K_M.gguf"), demo_model)
    assert p.demo_note.isVisibleTo(p) and "base model" in p.demo_note.text()
    assert p.params.sampling().max_tokens == 64
    assert bench.settings.chat("max_tokens", -1) == -1  # a default for the demo, not remembered
