"""The Format & preview pane: exact previews, highlighting, side by side, checklist, export."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QTextCursor

from medcal_gui.core.jobs import CancelToken, no_progress
from medcal_gui.dataset.formatting import format_record
from medcal_gui.dataset.reading.loader import LoadOptions
from medcal_gui.dataset.variants import Variant, load_variants
from medcal_gui.ui.panes.format_pane import FormatPane
from medcal_gui.ui.panes.narratives_pane import load_inputs


@pytest.fixture
def pane(qtbot, bench, sample_file):  # type: ignore[no-untyped-def]
    p = FormatPane(bench)
    qtbot.addWidget(p)
    with qtbot.waitSignal(p.checklist_ready, timeout=15000):
        bench.set_loaded(load_inputs([sample_file], LoadOptions(), no_progress, CancelToken()))
    return p


def _settle(qtbot, pane: FormatPane) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(pane.ready, timeout=15000)


@pytest.mark.parametrize("layout", ["seed", "gemma"])
def test_preview_equals_format_record_for_each_variant(qtbot, pane, layout) -> None:  # type: ignore[no-untyped-def]
    pane.set_layout(layout)
    rec = pane.bench.records[0]
    for name, v in load_variants().items():
        pane.set_variant(name)
        assert pane.preview.toPlainText() == format_record(rec.text, v, layout)
    pane.bench.select_record(pane.bench.records[5].id)
    assert pane.preview.toPlainText() == format_record(pane.bench.records[5].text, pane.variant, layout)
    _settle(qtbot, pane)
    assert pane.report is not None and pane.report.layout == layout


def test_highlighter_tells_tags_roles_marker_and_narrative_apart(pane) -> None:  # type: ignore[no-untyped-def]
    hl = pane.preview.highlighter
    doc = pane.preview.document()
    lines = [doc.findBlockByNumber(i).text() for i in range(doc.blockCount())]
    assert lines[0] == "<start_of_turn>user" and lines[1] == "[QUANTIZATION CALIBRATION]"
    tag = hl.format_at(0, 0)
    role = hl.format_at(0, len("<start_of_turn>"))
    marker = hl.format_at(1, 0)
    narrative = hl.format_at(3, 0)
    assert tag == hl.formats["tag"] and role == hl.formats["role"]
    assert marker == hl.formats["marker"] and narrative == hl.formats["narrative"]
    assert len({tag.foreground().color().name(), role.foreground().color().name(),
                marker.foreground().color().name(), narrative.foreground().color().name()}) == 4
    end = lines.index("<end_of_turn>")
    assert hl.format_at(end, 0) == tag
    assert hl.format_at(end - 1, 0) == narrative  # a narrative's last line is still narrative
    model = lines.index("<start_of_turn>model")
    assert hl.format_at(model, len("<start_of_turn>")) == role


def test_highlighter_handles_gemma_layout_end_tag_on_narrative_line(pane) -> None:  # type: ignore[no-untyped-def]
    pane.set_layout("gemma")
    hl = pane.preview.highlighter
    doc = pane.preview.document()
    lines = [doc.findBlockByNumber(i).text() for i in range(doc.blockCount())]
    last = next(i for i, t in enumerate(lines) if t.endswith("<end_of_turn>") and i > 2)
    col = lines[last].index("<end_of_turn>")
    assert hl.format_at(last, 0) == hl.formats["narrative"]
    assert hl.format_at(last, col) == hl.formats["tag"]


def test_side_by_side_shows_variants_in_columns(qtbot, pane) -> None:  # type: ignore[no-untyped-def]
    pane.set_side_by_side(True, columns=3)
    assert pane.stack.currentWidget() is pane.side
    views = pane.side.visible_views()
    assert len(views) == 3 and pane.side.column_count() == 3
    variants = load_variants()
    markers = [variants[n].marker for n in pane.side.chosen()]
    assert len(set(markers)) == 3
    for view, marker in zip(views, markers, strict=True):
        assert view.toPlainText().split("\n")[1] == marker
        assert view.highlighter.format_at(1, 0) == view.highlighter.formats["marker"]
    pane.set_side_by_side(True, columns=2)
    assert pane.side.column_count() == 2 and len(pane.side.visible_views()) == 2
    # Scrolling one column scrolls the others.
    pane.resize(900, 300)
    pane.show()
    qtbot.waitExposed(pane)
    bars = [v.verticalScrollBar() for v in pane.side.visible_views()]
    assert bars[0].maximum() > 0
    for v in pane.side.visible_views():  # lay the texts out fully first (QPlainTextEdit does it lazily)
        v.moveCursor(QTextCursor.MoveOperation.End)
        v.moveCursor(QTextCursor.MoveOperation.Start)
    qtbot.wait(10)

    def scrolled_to_bottom() -> bool:  # a plain-text layout grows its range lazily while scrolling
        bars[0].setValue(bars[0].maximum())
        return bars[0].value() == bars[0].maximum()

    qtbot.waitUntil(scrolled_to_bottom, timeout=3000)
    assert bars[1].value() == bars[1].maximum()
    bars[1].setValue(0)
    assert bars[0].value() == 0
    pane.set_side_by_side(False)
    assert pane.stack.currentWidget() is pane.preview


def test_checklist_all_pass_on_sample_and_step_done(pane) -> None:  # type: ignore[no-untyped-def]
    statuses = pane.checklist.statuses()
    assert statuses and all(s in ("pass", "info") for s, _ in statuses)
    assert sum(1 for s, _ in statuses if s == "pass") >= 8
    assert ("pass", "All records present") in statuses
    assert not pane.report.errors
    assert pane.is_done()
    text = pane.checklist.toPlainText()
    assert "38 records" in text and "Every narrative equals its source." in text


def test_user_variant_shows_in_the_list_and_preview(qtbot, pane) -> None:  # type: ignore[no-untyped-def]
    from medcal_gui.dataset.variants import save_user_variant

    save_user_variant(Variant(name="ui_test_variant", title="UI test", marker="[UI TEST]",
                              instruction="Read this:", response=("Done.",)))
    pane.reload_variants("ui_test_variant")
    assert pane.variant.name == "ui_test_variant"
    assert pane.preview.toPlainText().split("\n")[1] == "[UI TEST]"
    _settle(qtbot, pane)
    assert pane.is_done()


def test_export_writes_formatted_file_and_seed_set(qtbot, pane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "one"
    with qtbot.waitSignal(pane.export_done, timeout=30000) as sig:
        assert pane.export_to(out)
    res = sig.args[0]
    assert [p.name for p in res.outputs] == ["medgemma_calibration_imatrix_formatted.txt"]
    rec = pane.bench.records[0]
    assert (out / res.outputs[0].name).read_text(encoding="utf-8").startswith(
        format_record(rec.text, pane.variant, pane.layout_name))
    assert "Wrote 1 file(s), 38 records" in pane.export_label.text()

    seed = tmp_path / "seed"
    with qtbot.waitSignal(pane.export_done, timeout=30000) as sig:
        assert pane.export_to(seed, all_variants=True)
    names = {p.name for p in Path(seed).iterdir()}
    assert {"medgemma_calibration_imatrix_formatted.txt", "cardiology_calibration_imatrix.txt",
            "calibration_dataset_log.json", "README_CALIBRATION_DATASET.md"} <= names
    assert {v.output_name for v in load_variants().values()} <= names
