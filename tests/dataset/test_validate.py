"""Validation of formatted files: counts, turn pairing, markers, intact narratives, UTF-8, record checks."""

from __future__ import annotations

import math

import pytest

from medcal_gui.core.errors import InputError
from medcal_gui.dataset.formatting import format_record
from medcal_gui.dataset.records import CHARS_PER_TOKEN
from medcal_gui.dataset.validation.validate import LONG_CHARS, narrative_digest, validate_file, validate_text
from medcal_gui.dataset.variants import get_variant

# Three records in the seed layout: user turns on lines 1, 14 and 25 (ADOLESCENT spans three lines).


@pytest.fixture
def texts(h):
    return [h.ADOLESCENT, h.ADULT, h.NEONATE]


@pytest.fixture
def good(texts, h):
    return "".join(h.SEED_RECORD.format(narrative=t) for t in texts)


def _write(tmp_path, text: str | bytes, name="f.txt"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def _check(report, title):
    return next(c for c in report.checks if c.title == title).status


def test_good_file_passes_every_check(tmp_path, good, texts):
    p = _write(tmp_path, good)
    r = validate_file(p, expect_records=3, sources=[narrative_digest(t) for t in texts])
    assert r.errors == [] and r.warnings == []
    assert (r.kind, r.layout, r.records, r.start_turns, r.end_turns, r.user_turns, r.model_turns) == (
        "chat", "seed", 3, 6, 6, 3, 3)
    assert r.marker == "[QUANTIZATION CALIBRATION]"
    assert r.populations == {"adolescent": 1, "adult": 1, "neonate": 1}
    assert r.file_size == len(good.encode("utf-8")) and r.utf8_valid and r.compared == 3
    assert [s.line for s in r.per_record] == [1, 14, 25]
    assert {c.status for c in r.checks} <= {"pass", "info"}
    assert _check(r, "Clinical narratives intact") == "pass"


def test_token_estimates_count_the_whole_formatted_record(tmp_path, good, texts):
    r = validate_file(_write(tmp_path, good))
    v = get_variant("quantization_calibration")
    user = len(f"{v.marker}\n{v.instruction}\n") + len(texts[0])
    expected = math.ceil((user + len(v.response_text)) / CHARS_PER_TOKEN) + 6  # + turn markers and roles
    assert r.per_record[0].tokens_est == expected
    assert r.tokens_total_est == sum(s.tokens_est for s in r.per_record)
    stats = r.token_stats()
    assert stats["min"] == min(s.tokens_est for s in r.per_record) and stats["total"] == r.tokens_total_est


def test_expected_record_count_mismatch_is_an_error(tmp_path, good):
    r = validate_file(_write(tmp_path, good), expect_records=4)
    assert r.errors == ["Expected 4 records, found 3."]
    assert _check(r, "All records present") == "fail"


def test_missing_end_of_turn_is_an_unpaired_turn_error(tmp_path, good):
    broken = good.replace("\n<end_of_turn>\n<start_of_turn>model", "\n<start_of_turn>model", 1)
    r = validate_file(_write(tmp_path, broken))
    assert r.errors == [
        "line 7: <start_of_turn> inside the turn opened at line 1 (missing <end_of_turn>).",
        "line 13: a user turn follows a user turn (no model turn between).",
        "6 <start_of_turn> but 5 <end_of_turn>: the turns are not paired.",
        "User turns (3), model turns (2) and records (2) should be equal.",
    ]
    assert _check(r, "Proper <start_of_turn> / <end_of_turn> pairs") == "fail"


def test_extra_model_turn_breaks_turn_counts(tmp_path, good):
    extra = good + "<start_of_turn>model\nAnother answer.\n<end_of_turn>\n"
    r = validate_file(_write(tmp_path, extra))
    assert "line 36: a model turn without a user turn before it." in r.errors
    assert "User turns (3), model turns (4) and records (3) should be equal." in r.errors
    assert _check(r, "User turns = model turns = records") == "fail"


def test_extra_user_turn_is_reported(tmp_path, good):
    extra = good.replace("<start_of_turn>user\n", "<start_of_turn>user\nx\n<end_of_turn>\n<start_of_turn>user\n", 1)
    r = validate_file(_write(tmp_path, extra))
    assert "line 4: a user turn follows a user turn (no model turn between)." in r.errors


def test_record_without_the_marker_is_named(tmp_path, good):
    broken = good.split("<start_of_turn>user\n")
    broken[2] = broken[2].replace("[QUANTIZATION CALIBRATION]\n", "", 1)
    r = validate_file(_write(tmp_path, "<start_of_turn>user\n".join(broken)))
    assert r.errors == ["record f-0002 (line 14) lacks the system marker '[QUANTIZATION CALIBRATION]'."]
    assert _check(r, "System prompt included in every record") == "fail"


def test_truncated_file_reports_the_open_turn(tmp_path, good):
    cut = good[: good.rindex("<start_of_turn>model") + 40]
    r = validate_file(_write(tmp_path, cut))
    assert r.errors == ["line 30: the model turn opened here is never closed (truncated file?).",
                        "line 25: record without a model turn (truncated file?).",
                        "6 <start_of_turn> but 5 <end_of_turn>: the turns are not paired."]
    assert r.records == 3 and r.model_turns == 3


def test_truncated_inside_a_user_turn_reports_the_open_turn(tmp_path, good):
    cut = good[: good.rindex("<start_of_turn>user") + 60]
    r = validate_file(_write(tmp_path, cut))
    assert r.errors == ["line 25: the user turn opened here is never closed (truncated file?).",
                        "5 <start_of_turn> but 4 <end_of_turn>: the turns are not paired.",
                        "User turns (3), model turns (2) and records (2) should be equal."]
    assert r.records == 2


def test_invalid_utf8_bytes_are_an_error_with_the_line(tmp_path, good):
    data = good.encode("utf-8").replace(b"14 years old", b"14 \xff\xfe years old", 1)
    r = validate_file(_write(tmp_path, data))
    assert r.utf8_valid is False
    assert any(e.startswith(f"{tmp_path / 'f.txt'}, line 4: not valid UTF-8") for e in r.errors)
    assert _check(r, "UTF-8 compatibility verified") == "fail"


def test_crlf_file_is_flagged_and_narratives_still_compare(tmp_path, good, texts):
    p = _write(tmp_path, good.replace("\n", "\r\n"))
    r = validate_file(p, sources=[narrative_digest(t) for t in texts])
    assert r.records == 3 and r.errors == []
    assert r.warnings == [f"{p}: uses CRLF line ends; llama.cpp would see the carriage returns as text. "
                          "Re-export with medcal format (always LF)."]


def test_utf8_bom_in_formatted_file_is_a_warning(tmp_path, good):
    p = _write(tmp_path, b"\xef\xbb\xbf" + good.encode())
    r = validate_file(p)
    assert r.records == 3 and r.errors == []
    assert r.warnings == [f"{p}: starts with a UTF-8 byte-order mark, which llama.cpp reads as text."]


def test_changed_narrative_differs_from_source(tmp_path, good, texts):
    changed = good.replace("mean HR 82 bpm", "mean HR 83 bpm")
    r = validate_file(_write(tmp_path, changed), sources=[narrative_digest(t) for t in texts])
    assert r.errors == ["record f-0001 (line 1): the narrative differs from its source."]
    assert _check(r, "Clinical narratives intact") == "fail"


def test_source_with_more_records_is_an_error(tmp_path, good, texts, h):
    r = validate_file(_write(tmp_path, good), sources=[narrative_digest(t) for t in texts + [h.OTHER]])
    assert r.errors == ["The file has 3 records but the source has 4."]


def test_empty_duplicate_short_and_long_records(tmp_path, h):
    long_text = "Adult patient. " + "x" * LONG_CHARS
    text = "".join(h.SEED_RECORD.format(narrative=t) for t in [h.ADULT, h.ADULT, "Adult, short.", long_text])
    text += h.SEED_RECORD.format(narrative="").replace("calibration:\n\n", "calibration:\n", 1)
    r = validate_file(_write(tmp_path, text))
    assert r.records == 5
    assert r.errors == ["record f-0005 (line 45) has an empty narrative."]
    assert r.warnings == [
        "record f-0002 (line 12) duplicates record f-0001.",
        "record f-0003 (line 23) is very short (13 characters).",
        f"record f-0004 (line 34) is very long ({len(long_text)} characters, about "
        f"{math.ceil(len(long_text) / CHARS_PER_TOKEN)} tokens).",
    ]
    assert r.populations == {"adult": 4, "other": 1}


def test_control_character_in_a_narrative_is_an_error(tmp_path, h):
    text = h.SEED_RECORD.format(narrative=h.ADULT.replace("atrial", "atri\x93al"))
    r = validate_file(_write(tmp_path, text))
    assert r.errors == ["record f-0001 (line 1) contains U+0093 (a control character: usually a wrong "
                        "encoding)."]
    assert _check(r, "No truncation or corruption") == "fail"


def test_gemma_layout_is_recognised(tmp_path, texts):
    v = get_variant("quantization_calibration")
    r = validate_file(_write(tmp_path, "".join(format_record(t, v, "gemma") for t in texts)),
                      sources=[narrative_digest(t) for t in texts])
    assert (r.layout, r.records, r.errors) == ("gemma", 3, [])


def test_text_outside_turns_is_an_error(tmp_path, good):
    r = validate_file(_write(tmp_path, "stray preamble\n" + good))
    assert r.errors == ["line 1: text outside any turn."]


def test_latin1_fit_is_reported(tmp_path, h):
    fits = validate_file(_write(tmp_path, h.SEED_RECORD.format(narrative=h.ADULT + " 37 \u00b0C"), "a.txt"))
    dash = validate_file(_write(tmp_path, h.SEED_RECORD.format(narrative=h.ADULT + " 60\u201380"), "b.txt"))
    assert (fits.latin1_ok, dash.latin1_ok) == (True, False)


def test_narrative_file_in_original_format_is_validated_as_narratives(make_file, h):
    p = make_file.narratives("orig.txt", [h.ADULT, h.NEONATE, h.NEONATE])
    r = validate_file(p, expect_records=3)
    assert (r.kind, r.records, r.errors) == ("narratives", 3, [])
    assert r.populations == {"adult": 1, "neonate": 2}
    assert r.warnings == ["record orig-0003 (line 11) duplicates record orig-0002."]


def test_validate_text_in_memory_matches_sources(good, texts):
    r = validate_text(good, sources=texts, ids=["a", "b", "c"], expect_records=3)
    assert (r.records, r.errors, r.source) == (3, [], None)
    r2 = validate_text(good, sources=[texts[0], texts[2], texts[1]], ids=["a", "b", "c"])
    assert r2.errors == ["record b (line 14): the narrative differs from its source.",
                         "record c (line 25): the narrative differs from its source."]


def test_json_report_has_records_populations_errors_warnings(tmp_path, good):
    j = validate_file(_write(tmp_path, good), expect_records=2).to_json()
    assert j["records"] == 3 and j["populations"] == {"adolescent": 1, "adult": 1, "neonate": 1}
    assert j["errors"] == ["Expected 2 records, found 3."] and j["warnings"] == []
    assert j["turns"] == {"start_of_turn": 6, "end_of_turn": 6, "user": 3, "model": 3}


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"<start_of_turn>user\n\x00\x01", "binary file"),
])
def test_unusable_file_is_an_input_error(tmp_path, content, message):
    with pytest.raises(InputError, match=message):
        validate_file(_write(tmp_path, content))


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        validate_file(tmp_path / "absent.txt")


def test_changed_narrative_fails_only_the_intact_row_not_the_turn_pairs_row(good, texts, h):
    # The GUI's checklist path: a narrative edited after loading differs from its source. Only "Clinical
    # narratives intact" may fail; the pairs row's own check (6 and 6) passes, whatever the errors say.
    changed = good.replace(h.ADULT, h.ADULT.replace("58 years", "59 years"))
    r = validate_text(changed, sources=texts)
    assert any("differs from its source" in e and "line 14" in e for e in r.errors)
    statuses = {c.title: c.status for c in r.checks}
    assert statuses["Clinical narratives intact"] == "fail"
    pairs = next(c for c in r.checks if c.title.startswith("Proper"))
    assert (pairs.status, pairs.detail) == ("pass", "6 <start_of_turn>, 6 <end_of_turn>")
    assert [t for t, s in statuses.items() if s == "fail"] == ["Clinical narratives intact"]


def test_turn_structure_problem_fails_the_pairs_row_by_its_own_count(good):
    broken = good.replace("<start_of_turn>model\n", "<start_of_turn>user\n", 1)
    r = validate_text(broken)
    assert _check(r, "Proper <start_of_turn> / <end_of_turn> pairs") == "fail"
    assert r.problems["turns"] >= 1
