"""The quant ladder in the Quantize pane: check boxes, caveats, one job, the result view (tiny real model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from medcal_gui.core.jobs import CancelToken, no_progress
from medcal_gui.dataset.reading.loader import LoadOptions
from medcal_gui.quantize.quant_advice import default_ladder_types
from medcal_gui.ui.panes.narratives_pane import load_inputs
from medcal_gui.ui.panes.quantize_pane import QuantizePane
from medcal_gui.ui.widgets.screen_fit import TITLE_BAR
from medcal_gui.ui.workbench import Workbench
from medcal_gui.workflows.recipe.candidates import default_candidate_types

MARK = "Below is a cardiology topic:"


@pytest.fixture
def pane(qtbot, bench: Workbench, sample_file: Path, tiny_model: Path, tmp_path: Path) -> QuantizePane:  # type: ignore[no-untyped-def]
    # the first 12 narratives of the sample: a held-out text of a few hundred tokens keeps each scoring pass
    # short (the tiny model's figures say nothing about quality anyway)
    short = tmp_path / "narratives-12.txt"
    blocks = sample_file.read_text(encoding="utf-8").split(MARK)[1:13]
    short.write_text("".join(MARK + b for b in blocks), encoding="utf-8")
    bench.set_loaded(load_inputs([short], LoadOptions(), no_progress, CancelToken()))
    assert len(bench.records) == 12
    bench.model_path = tiny_model
    p = QuantizePane(bench)
    qtbot.addWidget(p)
    p.ctx_spin.setValue(64)
    p.chunks_spin.setValue(3)
    p.out_dir_edit.setText(str(tmp_path / "out"))
    qtbot.waitUntil(lambda: p.info is not None and p.ready(), timeout=20000)
    return p


def test_table_has_check_boxes_a_recommendation_and_caveats(pane: QuantizePane) -> None:
    t = pane.table
    assert t.checked_types() == [n for n in (qt.name for qt in t.types) if n in default_ladder_types()]
    assert t.item(t.row_of("Q4_K_M"), 4).text() == "recommended"
    for name in ("MXFP4_MOE", "TQ1_0", "TQ2_0"):
        assert t.item(t.row_of(name), 4).text().startswith("⚠ ")
        assert "Caveat:" in t.item(t.row_of(name), 0).toolTip()
    assert not (t.item(t.row_of("F16"), 0).flags() & Qt.ItemFlag.ItemIsUserCheckable)
    t.set_checked(["Q8_0"])
    t.item(t.row_of("Q4_K_M"), 0).setCheckState(Qt.CheckState.Checked)  # as a click does
    assert t.checked_types() == ["Q4_K_M", "Q8_0"]
    assert pane.bench.settings.get_str("ladder/types") == "Q4_K_M,Q8_0"  # persisted


def test_compare_selected_types_runs_the_ladder_shows_it_and_a_recipe_joins_it(qtbot, pane: QuantizePane,  # type: ignore[no-untyped-def]
                                                                             tmp_path, shown_errors) -> None:
    """"Compare selected types" runs the ladder as one job and shows it (table, accuracy columns,
    recommendation, chat with a rung). Under it, "Per-tensor recipe at" a rung's size (Q4_K_M's by default)
    builds one no larger than that rung's file from the types given, scores it on the ladder's held-out
    text, and adds it to the table and the chart (issue 14); an unknown type is refused in plain words before
    anything runs. One test, so that the ladder runs once."""
    from medcal_gui.core.resources import samples_dir
    from medcal_gui.ui.views.recipe_controls import parse_target

    pane.table.set_checked(["Q8_0", "Q4_K_M"])
    ctl = pane.ladder
    ctl.max_size.setText("5MB")
    questions = tmp_path / "q.jsonl"  # a question file set: the table gets the accuracy columns (issue 15)
    rows = (samples_dir() / "questions" / "cardiology_smoke.jsonl").read_text(encoding="utf-8").splitlines()
    questions.write_text("\n".join(rows[:4]) + "\n", encoding="utf-8")
    ctl.questions.setText(str(questions))
    ctl.reps.setValue(1)
    pane.threads_spin.setValue(1)
    with qtbot.waitSignal(ctl.finished, timeout=240000) as sig:
        assert ctl.start()
    res = sig.args[0]
    assert [r.type for r in res.rungs] == ["Q8_0", "Q4_K_M"]
    assert res.constraints.max_size == 5_000_000
    bars = ctl.progress.rows
    assert len(bars) == 3 and all(b.fraction == 1.0 for b in bars[1:])  # every rung reached its end
    view = ctl.view
    assert view is not None and view.table.rowCount() == 2
    free = view.screen().availableGeometry().height() - TITLE_BAR  # the Close button stays on the screen
    assert view.height() == max(min(760, free), view.minimumSizeHint().height())
    assert view.table.item(0, 0).text() == "Q8_0" and "Recommendation" in view.recommendation.text()
    headers = [view.table.horizontalHeaderItem(c).text() for c in range(view.table.columnCount())]
    acc = headers.index("Accuracy")
    assert headers[acc + 1] == "Lost / gained (p)"
    assert view.table.item(0, acc).text() == f"{res.rungs[0].mcq_accuracy_pct:.1f} %"
    assert "(p = " in view.table.item(0, acc + 1).text()
    doc = json.loads((Path(res.outputs["json"])).read_text(encoding="utf-8"))
    assert doc["recommendation"]["type"] == res.recommendation["type"]
    view.chat_buttons[1].click()
    assert pane.bench.last_quant == Path(res.rungs[1].file)
    assert pane.bench.settings.get_str("ladder/max_size") == "5MB"

    # the recipe under it
    assert parse_target("4.5 bpw") == {"target_bpw": 4.5}
    assert parse_target("250MB") == {"target_bytes": 250_000_000}
    assert view.recipe is not None
    rec_ctl = view.recipe
    q4, q8 = (next(r for r in res.rungs if r.type == t) for t in ("Q4_K_M", "Q8_0"))
    assert rec_ctl.target_kwargs() == {"target_bytes": q4.bytes}  # Q4_K_M's size is the default
    assert rec_ctl.types.text() == ", ".join(default_candidate_types())
    rec_ctl.types.setText("Q4_0, Q9_X")
    assert not rec_ctl.start()
    assert len(shown_errors) == 1 and "Unknown tensor type 'Q9_X'" in str(shown_errors[0][0])
    assert rec_ctl.result is None and pane.bench.settings.get_str("recipe/types") == ""  # nothing ran or was kept
    rec_ctl.types.setText("Q4_0, Q5_0 Q8_0,F16")  # the types it chooses from (medcal recipe --types)
    rec_ctl.target.setCurrentIndex(rec_ctl.target.findText("Q8_0's", Qt.MatchFlag.MatchStartsWith))
    assert rec_ctl.target_kwargs() == {"target_bytes": q8.bytes}
    chart_before = view.chart
    with qtbot.waitSignal(rec_ctl.finished, timeout=600000) as sig2:
        assert rec_ctl.start()
    rec = sig2.args[0]
    assert rec.bytes <= q8.bytes and rec.out.is_file() and rec.out.stat().st_size == rec.bytes
    assert rec.recipe_file.is_file()
    assert set(rec.choice.values()) <= {"Q4_0", "Q5_0", "Q8_0", "F16"} and "Q8_0" in rec.choice.values()
    assert pane.bench.settings.get_str("recipe/types") == "Q4_0, Q5_0, Q8_0, F16"  # persisted
    assert view.table.rowCount() == 3 and view.table.item(2, 0).text().startswith("recipe")
    assert view.chart is not chart_before  # redrawn with the recipe's point
    assert "Recipe" in rec_ctl.status.text() and rec.out.name in rec_ctl.status.text()
    view.close()
