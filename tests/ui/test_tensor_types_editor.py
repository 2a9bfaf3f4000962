"""The Quantize pane's "Advanced: per-tensor types" editor, with real widgets, the tiny model and llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest

from medcal_gui.core.jobs import CancelToken, no_progress
from medcal_gui.dataset.reading.loader import LoadOptions
from medcal_gui.quantize.tensor_types import parse_tensor_type
from medcal_gui.ui.panes.narratives_pane import load_inputs
from medcal_gui.ui.panes.quantize_pane import QuantizePane
from medcal_gui.ui.widgets.tensor_types_editor import SIZE, TENSORS
from medcal_gui.ui.workbench import Workbench


@pytest.fixture
def pane(qtbot, bench: Workbench, sample_file: Path, tiny_model: Path, tmp_path: Path) -> QuantizePane:  # type: ignore[no-untyped-def]
    bench.set_loaded(load_inputs([sample_file], LoadOptions(), no_progress, CancelToken()))
    bench.model_path = tiny_model
    p = QuantizePane(bench)
    qtbot.addWidget(p)
    p.ctx_spin.setValue(128)
    p.out_dir_edit.setText(str(tmp_path / "out"))
    qtbot.waitUntil(lambda: p.info is not None and p.tokens is not None and p.ready(), timeout=20000)
    return p


def _cell(pane: QuantizePane, row: int, col: int) -> str:
    item = pane.tensor_types.table.item(row, col)
    return item.text() if item is not None else ""


def test_editor_is_collapsed_and_a_row_shows_its_matches_and_reaches_the_quant(
        qtbot, pane: QuantizePane, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ed = pane.tensor_types
    assert not ed.body.isVisible() and ed.rules() == []
    ed.toggle.click()
    assert ed.body.isVisible()
    with qtbot.waitSignal(ed.matched, timeout=20000):
        row = ed.add_row("ATTN_V", "q8_0")
    qtbot.waitUntil(lambda: _cell(pane, row, TENSORS) == "2", timeout=20000)
    assert _cell(pane, row, SIZE) == "262 kB → 70 kB"  # 2 x 256x128 F32 -> 2 x 128 rows of 8 q8_0 blocks
    assert "(1 rule, 2 tensors)" in ed.toggle.text()
    with qtbot.waitSignal(ed.matched, timeout=20000):
        bad = ed.add_row("nosuch", "q6_K")
    qtbot.waitUntil(lambda: _cell(pane, bad, TENSORS) == "0", timeout=20000)
    assert "nosuch=q6_K matches no quantized tensor" in ed.status.text()
    ed.table.selectRow(bad)
    ed.remove_row()
    with qtbot.waitSignal(ed.matched, timeout=20000):
        ed.add_row("attn_k[", "q8_0")  # not a regular expression: shown, and left out of the run
    assert _cell(pane, 1, TENSORS) == "ignored"
    assert ed.rules() == [parse_tensor_type("attn_v=q8_0")]

    pane.table.select("Q4_K_M")
    pane.none_radio.setChecked(True)
    assert pane.run_btn.isEnabled(), pane.run_btn.toolTip()
    with qtbot.waitSignal(pane.quantized, timeout=90000) as sig:
        assert pane.run()
    out = sig.args[0].quant.out
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(out)).tensors}
    assert types["blk.0.attn_v.weight"] == types["blk.1.attn_v.weight"] == "Q8_0"
    assert types["blk.0.attn_k.weight"] == "Q4_K"
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text(encoding="utf-8"))
    assert [(m["pattern"], m["type"], m["tensors"]) for m in manifest["tensor_types"]] == [("attn_v", "q8_0", 2)]


def test_save_and_load_a_tensor_type_file(qtbot, pane: QuantizePane, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ed = pane.tensor_types
    ed.add_row("attn_v", "q6_K")
    ed.add_row(r"blk\.1\.ffn_down", "q8_0")
    f = tmp_path / "types.txt"
    assert ed.save(f)
    assert f.read_text(encoding="utf-8") == "attn_v=q6_K\nblk\\.1\\.ffn_down=q8_0\n"
    ed.set_rules([])
    assert ed.table.rowCount() == 0
    with qtbot.waitSignal(ed.matched, timeout=20000):
        assert ed.load(f)
    qtbot.waitUntil(lambda: _cell(pane, 1, TENSORS) == "1", timeout=20000)
    assert ed.rules() == [parse_tensor_type("attn_v=q6_k"), parse_tensor_type(r"blk\.1\.ffn_down=q8_0")]
    f.write_text("attn_v = q6_k\n", encoding="utf-8")
    assert not ed.load(f)
    assert f"{f}, line 1" in ed.status.text() and ed.table.rowCount() == 2  # the rows stay as they were


def test_quantize_pane_fits_with_rules_and_their_window_open(qtbot, window, tiny_model: Path) -> None:  # type: ignore[no-untyped-def]
    from test_panes_fit import check_fits, leaves, name, window_at

    pane = window_at(window, qtbot, (1280, 720), 2, tiny_model)
    before = check_fits(pane)
    ed = pane.tensor_types
    ed.set_expanded(True)
    qtbot.waitExposed(ed.body)
    for p in ("attn_v", "ffn_down", "attn_q", "nosuch"):
        ed.add_row(p, "q8_0")
    qtbot.waitUntil(lambda: _cell(pane, 3, TENSORS) == "0", timeout=20000)
    qtbot.wait(50)
    after = check_fits(pane)
    assert [name(w) for w, r in before.items() if w in after and after[w].topLeft() != r.topLeft()] == []
    assert "(4 rules, 6 tensors)" in ed.toggle.text()
    inside = leaves(ed.body)
    assert len(inside) >= 7 and all(r.bottom() <= ed.body.height() for r in inside.values())
    assert [(name(a), name(b)) for a, ra in inside.items() for b, rb in inside.items()
            if a is not b and ra.intersects(rb)] == []
