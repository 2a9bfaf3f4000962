"""The Narratives pane, driven through its load API, a simulated drop and the override cell."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from medcal_gui.ui.panes.narratives_pane import NarrativesPane
from medcal_gui.ui.widgets.table_models import FileTableModel, RecordTableModel

CP1252_TEXT = ("Below is a cardiology topic:\n\n"
               "Adult patient, 64 years old, Male, on telemetry after \u201cpalpitations\u201d \u2013 "
               "atrial fibrillation at 130 bpm, rate controlled; caf\u00e9 visit before onset. Recommendations: "
               "anticoagulation review and outpatient follow-up.\n\n"
               "Below is a cardiology topic:\n\n"
               "Neonate patient, 2 days old, Female, monitored for bradycardia \u2013 sinus rhythm 98\u2013130 bpm, "
               "no pauses beyond 1.2 s; SpO2 97%. Recommendations: routine care.\n")


@pytest.fixture
def pane(qtbot, bench):  # type: ignore[no-untyped-def]
    p = NarrativesPane(bench)
    qtbot.addWidget(p)
    return p


def _load(qtbot, pane: NarrativesPane, paths: list[Path]) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(pane.loaded, timeout=15000):
        assert pane.load_paths(paths)


def _cell(model, row: int, col: int, role=Qt.ItemDataRole.DisplayRole):  # type: ignore[no-untyped-def]
    return model.data(model.index(row, col), role)


def test_sample_file_shows_utf8_and_38_records(qtbot, pane, sample_file) -> None:  # type: ignore[no-untyped-def]
    _load(qtbot, pane, [sample_file])
    files = pane.files
    assert files.rowCount() == 1
    assert _cell(files, 0, FileTableModel.FILE) == sample_file.name
    assert _cell(files, 0, FileTableModel.ENCODING) == "utf-8"
    assert _cell(files, 0, FileTableModel.METHOD) == "utf-8"
    assert "valid UTF-8 throughout" in _cell(files, 0, FileTableModel.METHOD, Qt.ItemDataRole.ToolTipRole)
    assert _cell(files, 0, FileTableModel.RECORDS) == 38
    assert _cell(files, 0, FileTableModel.ERRORS) == 0
    assert pane.proxy.rowCount() == 38
    assert _cell(pane.proxy, 0, RecordTableModel.ID) == "cardiology_calibration_samples-0001"
    assert pane.is_done()
    # The first record is selected and its narrative shown, read-only.
    assert pane.narrative.isReadOnly()
    assert pane.narrative.toPlainText().startswith("Adolescent patient, 10 years old")


def test_drop_a_folder_loads_it(qtbot, pane, sample_file) -> None:  # type: ignore[no-untyped-def]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(sample_file.parent))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(pane.loaded, timeout=15000):
        pane.dropEvent(event)
    assert pane.records.rowCount() == 38


def test_cp1252_file_detected_then_forced_to_latin1(qtbot, pane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "windows_notes.txt"
    f.write_bytes(CP1252_TEXT.encode("cp1252"))
    _load(qtbot, pane, [f])
    assert _cell(pane.files, 0, FileTableModel.ENCODING) == "cp1252"
    assert _cell(pane.files, 0, FileTableModel.METHOD) in ("chardet", "fallback")
    assert _cell(pane.files, 0, FileTableModel.OVERRIDE) == "auto"
    assert "\u201cpalpitations\u201d" in pane.bench.records[0].text

    with qtbot.waitSignal(pane.loaded, timeout=15000):
        assert pane.files.setData(pane.files.index(0, FileTableModel.OVERRIDE), "latin-1")
    assert _cell(pane.files, 0, FileTableModel.ENCODING) == "latin-1"
    assert _cell(pane.files, 0, FileTableModel.METHOD) == "forced"
    assert _cell(pane.files, 0, FileTableModel.OVERRIDE) == "latin-1"
    assert pane.records.rowCount() == 2
    assert "\x93palpitations\x94" in pane.bench.records[0].text  # what latin-1 makes of smart quotes


def test_population_filter_and_search_reduce_rows(qtbot, pane, sample_file) -> None:  # type: ignore[no-untyped-def]
    _load(qtbot, pane, [sample_file])
    pane.population.setCurrentIndex(pane.population.findData("neonate"))
    assert pane.proxy.rowCount() == 7
    assert all(_cell(pane.proxy, r, RecordTableModel.POPULATION) == "neonate" for r in range(7))
    pane.population.setCurrentIndex(0)
    pane.search.setText("0012")
    assert pane.proxy.rowCount() == 1
    pane.search.setText("tachycardia")
    assert 0 < pane.proxy.rowCount() < 38
    assert pane.shown_label.text() == f"{pane.proxy.rowCount()} of 38 shown"
    pane.search.clear()
    assert pane.proxy.rowCount() == 38


def test_phi_warning_jumps_to_its_record(qtbot, pane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "phi.txt"
    f.write_text("Below is a cardiology topic:\n\nAdult patient, 70 years old, Male, stable sinus rhythm over 24 "
                 "hours of telemetry, no arrhythmia, normal vitals. Recommendations: discharge home.\n\n"
                 "Below is a cardiology topic:\n\nAdult patient, 55 years old, Female, seen by Dr. Smith on "
                 "03/14/2023, call 555-123-4567; telemetry showed paroxysmal AF. Recommendations: follow-up.\n",
                 encoding="utf-8")
    _load(qtbot, pane, [f])
    items = [pane.issue_list.item(i) for i in range(pane.issue_list.count())]
    phi_items = [it for it in items if "PHI" in it.text()]
    assert phi_items and all(it.text().startswith("phi-0002") for it in phi_items)
    assert _cell(pane.records, 1, RecordTableModel.WARNINGS) == len(phi_items)
    pane.search.setText("0001")  # hide the record: the jump must still find it
    pane._issue_clicked(phi_items[0])
    assert pane.bench.selected_record_id == "phi-0002"
    assert pane.record_view.currentIndex().data() == "phi-0002"
    assert "Dr. Smith" in pane.narrative.toPlainText()


PARAGRAPHS = ("Adult patient, 61 years old, Male, sinus rhythm with rare ectopy on telemetry. Recommendations: "
              "none.\n\nNeonate patient, 3 days old, Female, brief bradycardia to 90 bpm, self-resolving. "
              "Recommendations: routine care.\n")


def test_split_control_loads_plain_paragraphs(qtbot, pane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "plain.txt"
    f.write_text(PARAGRAPHS, encoding="utf-8")
    _load(qtbot, pane, [f])
    assert pane.records.rowCount() == 0 and _cell(pane.files, 0, FileTableModel.ERRORS) == 1
    assert not pane.is_done()
    with qtbot.waitSignal(pane.loaded, timeout=15000):
        pane.split_combo.setCurrentIndex(pane.split_combo.findData("paragraphs"))  # reloads at once
    assert pane.bench.options.split == "paragraphs"
    assert pane.records.rowCount() == 2 and _cell(pane.files, 0, FileTableModel.ERRORS) == 0
    assert [r.population for r in pane.bench.records] == ["adult", "neonate"]
    assert pane.is_done()


def test_text_field_control_reads_a_csv_column(qtbot, pane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "notes.csv"
    f.write_text("id,body\n1,\"Adult patient, 70 years old, stable sinus rhythm.\"\n"
                 "2,\"Adolescent patient, 15 years old, sinus tachycardia with exercise.\"\n", encoding="utf-8")
    _load(qtbot, pane, [f])
    assert pane.records.rowCount() == 0
    assert "no 'text' column" in _cell(pane.files, 0, FileTableModel.ERRORS, Qt.ItemDataRole.ToolTipRole)
    pane.text_field.setText("body")
    with qtbot.waitSignal(pane.loaded, timeout=15000):
        pane.text_field.editingFinished.emit()
    assert pane.bench.options.text_field == "body"
    assert pane.records.rowCount() == 2
    assert pane.bench.records[1].text == "Adolescent patient, 15 years old, sinus tachycardia with exercise."


def test_open_files_asks_add_or_replace(qtbot, pane, sample_file, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from medcal_gui.ui import dialogs

    f = tmp_path / "plain.txt"
    f.write_text("Below is a cardiology topic:\n\nAdult patient, 80 years old, Male, sinus rhythm.\n",
                 encoding="utf-8")
    _load(qtbot, pane, [sample_file])
    asked: list[tuple[str, str]] = []
    answer: list[str | None] = [dialogs.ADD]
    monkeypatch.setattr(dialogs, "ask_add_or_replace", lambda _p, loaded, new: asked.append((loaded, new))
                        or answer[0])
    with qtbot.waitSignal(pane.loaded, timeout=15000):
        assert pane.open_paths([f])
    assert asked == [(sample_file.name, f.name)]
    assert pane.files.rowCount() == 2 and pane.records.rowCount() == 39
    answer[0] = None  # cancelled: nothing changes
    assert not pane.open_paths([sample_file])
    assert pane.records.rowCount() == 39
    answer[0] = dialogs.REPLACE
    with qtbot.waitSignal(pane.loaded, timeout=15000):
        assert pane.open_paths([f])
    assert pane.files.rowCount() == 1 and pane.records.rowCount() == 1
    assert len(asked) == 3


def test_detail_view_clears_when_no_record_is_shown(qtbot, pane, sample_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _load(qtbot, pane, [sample_file])
    assert pane.narrative.toPlainText()
    pane.search.setText("no narrative says this")
    assert pane.proxy.rowCount() == 0
    assert pane.narrative.toPlainText() == "" and pane.narrative_title.text() == "<b>Narrative</b>"
    pane.search.clear()
    pane.record_view.selectRow(3)
    assert pane.narrative.toPlainText() == pane.bench.records[3].text
    empty = tmp_path / "headers_only.txt"
    empty.write_text("no header here\n", encoding="utf-8")
    _load(qtbot, pane, [empty])  # the reload leaves 0 rows
    assert pane.records.rowCount() == 0
    assert pane.narrative.toPlainText() == ""


def test_issue_list_names_files_not_long_paths(qtbot, pane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    deep = tmp_path / "a_rather_long_folder_name" / "another_level_of_folders" / "and_one_more"
    deep.mkdir(parents=True)
    f = deep / "plain.txt"
    f.write_text(PARAGRAPHS, encoding="utf-8")
    _load(qtbot, pane, [f])
    item = pane.issue_list.item(0)
    assert item.text().startswith("plain.txt, line 1: ") and str(deep) not in item.text()
    assert str(f) in item.toolTip()  # the whole path is one hover away
    assert pane.issues_title.text().endswith("(1 errors, 0 warnings)")


def test_forced_latin1_flags_c1_controls_on_the_file_row(qtbot, pane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "windows_notes.txt"
    f.write_bytes(CP1252_TEXT.encode("cp1252"))
    _load(qtbot, pane, [f])
    with qtbot.waitSignal(pane.loaded, timeout=15000):
        assert pane.files.setData(pane.files.index(0, FileTableModel.OVERRIDE), "latin-1")
    assert _cell(pane.files, 0, FileTableModel.WARNINGS) >= 1
    tip = _cell(pane.files, 0, FileTableModel.WARNINGS, Qt.ItemDataRole.ToolTipRole)
    assert f"{f}, lines 3, 7: " in tip and "C1 control" in tip and "Choose cp1252 in the file's “Decode as” cell" in tip
    texts = [pane.issue_list.item(i).text() for i in range(pane.issue_list.count())]
    assert texts[0].startswith("windows_notes.txt, lines 3, 7: ")
    assert not any(t.startswith("No errors") for t in texts)
    assert "0 errors, 0 warnings" not in pane.issues_title.text()


def test_load_errors_name_the_window_controls_not_cli_flags(qtbot, pane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "plain.txt"
    plain.write_text(PARAGRAPHS, encoding="utf-8")
    csv_file = tmp_path / "notes.csv"
    csv_file.write_text("id,body\n1,\"Adult patient, stable.\"\n", encoding="utf-8")
    _load(qtbot, pane, [plain, csv_file])
    texts = [pane.issue_list.item(i).text() for i in range(pane.issue_list.count())]
    assert any("Choose paragraphs in “Split .txt by”" in t for t in texts)
    assert any("“Text field (.jsonl, .csv)”" in t for t in texts)
    assert not any("--" in t for t in texts)
