"""Splitting inputs into records: narrative headers, paragraphs, JSONL, CSV, folders; what a record keeps."""

from __future__ import annotations

import json
import math

import pytest

from medcal_gui.core.errors import InputError, OptionHint
from medcal_gui.dataset.reading.loader import LoadOptions, discover_inputs, load_dataset
from medcal_gui.dataset.records import CHARS_PER_TOKEN, Record, estimate_tokens, population_of


def _load(paths, **opts):
    return load_dataset(paths if isinstance(paths, list) else [paths], LoadOptions(**opts))


def test_header_records_keep_id_source_line_and_text(make_file, h):
    p = make_file.narratives("ward.txt", h.NARRATIVES)
    ds = _load(p)
    assert ds.errors == []
    assert [r.id for r in ds.records] == ["ward-0001", "ward-0002", "ward-0003", "ward-0004"]
    assert [r.text for r in ds.records] == list(h.NARRATIVES)
    assert {r.source for r in ds.records} == {str(p)}
    # ADOLESCENT spans 3 lines: header 1, blank 2, text 3-5, blank 6, header 7, blank 8, ADULT 9 ...
    assert [r.line for r in ds.records] == [3, 9, 13, 17]
    assert [r.topic for r in ds.records] == ["cardiology"] * 4
    assert ds.files[0].records == 4


def test_record_text_is_stripped_but_inner_line_breaks_kept(make_file):
    raw = ("Below is a cardiology topic:\n\n\n   \n  Adult patient, 70 years old, first line.  \n\n"
           "  indented second paragraph after a blank line.\t\n\n\n")
    ds = _load(make_file.bytes("ws.txt", raw.encode()))
    (rec,) = ds.records
    assert rec.text == "Adult patient, 70 years old, first line.  \n\n  indented second paragraph after a blank line."
    assert rec.line == 5  # the first non-blank narrative line


def test_any_topic_word_starts_a_record(make_file):
    raw = ("Below is a cardiology topic:\n\nAdult one.\n\nBelow is a neurology topic:\n\nAdult two.\n\n"
           "Below is an electrophysiology topic:\n\nAdult three.\n\nBelow is a cardiac imaging topic:\n\n"
           "Adult four.\n")
    ds = _load(make_file.bytes("topics.txt", raw.encode()))
    assert [r.text for r in ds.records] == ["Adult one.", "Adult two.", "Adult three.", "Adult four."]
    assert [r.topic for r in ds.records] == ["cardiology", "neurology", "electrophysiology", "cardiac imaging"]


def test_last_record_runs_to_end_of_file_without_trailing_newline(make_file):
    ds = _load(make_file.bytes("eof.txt", b"Below is a cardiology topic:\n\nAdult patient.\nLast line"))
    assert [r.text for r in ds.records] == ["Adult patient.\nLast line"]


def test_header_phrase_inside_a_line_does_not_split(make_file):
    raw = "Below is a cardiology topic:\n\nAdult patient; note: Below is a cardiology topic: quoted.\n"
    ds = _load(make_file.bytes("inline.txt", raw.encode()))
    assert len(ds.records) == 1 and ds.records[0].text.endswith("quoted.")


@pytest.mark.parametrize("opening, population", [
    ("Adolescent patient, 15 years old", "adolescent"),
    ("Adult patient, 67 years old", "adult"),
    ("Neonate patient, 4 days old", "neonate"),
    ("adult woman, 30 years old", "adult"),
    ("Pediatric patient, 6 years old", "other"),
    ("The adult patient, 50 years old", "other"),  # population comes from the opening words only
    ("Adulthood milestones reviewed", "other"),
])
def test_population_comes_from_opening_words(opening, population):
    assert population_of(opening + ", monitored on telemetry.") == population
    assert Record("x-0001", "x.txt", 1, opening).population == population


def test_chars_and_token_estimate_follow_the_text():
    text = "Adult patient, é µ ±, twelve."
    rec = Record("x-0001", "x.txt", 3, text)
    assert rec.chars == len(text) == 29
    assert rec.tokens_est == math.ceil(29 / CHARS_PER_TOKEN) == estimate_tokens(text) > 0
    assert estimate_tokens("") == 0 and estimate_tokens("x") == 1
    assert 2.5 <= CHARS_PER_TOKEN <= 5  # clinical English: a few characters per token
    j = rec.to_json()
    assert (j["chars"], j["tokens_est"], j["population"], j["line"]) == (29, rec.tokens_est, "adult", 3)


def test_population_counts_over_a_file(make_file, h):
    p = make_file.narratives("pops.txt", [h.ADOLESCENT, h.ADOLESCENT + " Again.", h.ADULT, h.NEONATE, h.OTHER])
    assert _load(p).populations() == {"adolescent": 2, "adult": 1, "neonate": 1, "other": 1}


def test_record_ids_are_stable_across_loads(make_file, h):
    p = make_file.narratives("stable.txt", h.NARRATIVES)
    first = [(r.id, r.line, r.sha256) for r in _load(p).records]
    second = [(r.id, r.line, r.sha256) for r in _load(p).records]
    assert first == second and len(first) == 4


def test_same_stem_in_two_folders_gets_distinct_ids(make_file, h):
    a = make_file.narratives("a/notes.txt", [h.ADULT])
    b = make_file.narratives("b/notes.txt", [h.NEONATE])
    assert [r.id for r in _load([a, b]).records] == ["notes-0001", "notes~2-0001"]


def test_text_without_headers_is_an_error_suggesting_split_paragraphs(make_file):
    p = make_file.bytes("plain.txt", b"Adult patient one.\n\nAdult patient two.\n")
    ds = _load(p)
    assert ds.records == []
    (issue,) = ds.issues
    assert issue.message.startswith(f"{p}, line 1: ") and "--split" not in issue.message
    assert (issue.severity, issue.line, issue.hint) == ("error", 1, OptionHint("split", "paragraphs"))


def test_whitespace_only_file_has_no_header_error(make_file):
    p = make_file.bytes("blank.txt", b"\n\n   \n")
    (issue,) = _load(p).issues
    assert str(p) in issue.message and "no 'Below is a <topic> topic:' header" in issue.message
    assert issue.hint == OptionHint("split", "paragraphs")


def test_split_paragraphs_splits_on_blank_lines(make_file):
    raw = "Adult patient one,\nsecond line.\n\n\n\nNeonate patient two.\n   \nAdolescent three.\n"
    ds = _load(make_file.bytes("para.txt", raw.encode()), split="paragraphs")
    assert ds.errors == []
    assert [r.text for r in ds.records] == ["Adult patient one,\nsecond line.", "Neonate patient two.",
                                            "Adolescent three."]
    assert [r.line for r in ds.records] == [1, 6, 8]
    assert [r.topic for r in ds.records] == [None, None, None]


def test_jsonl_default_text_field(make_file, h):
    rows = [{"text": h.ADULT, "id": 7}, {"text": h.NEONATE}]
    p = make_file.bytes("rows.jsonl", ("\n".join(json.dumps(r) for r in rows) + "\n\n").encode())
    ds = _load(p)
    assert ds.errors == []
    assert [(r.id, r.line, r.text) for r in ds.records] == [("rows-0001", 1, h.ADULT), ("rows-0002", 2, h.NEONATE)]


def test_jsonl_custom_text_field_and_header_and_crlf_inside_value(make_file):
    rows = [{"narrative": "Below is a cardiology topic:\r\n\r\nAdult patient,\r\nsecond line.  ", "text": "no"}]
    p = make_file.bytes("hub.jsonl", (json.dumps(rows[0]) + "\n").encode())
    (rec,) = _load(p, text_field="narrative").records
    assert rec.text == "Adult patient,\nsecond line." and rec.topic == "cardiology"


def test_jsonl_missing_field_names_fields_and_line(make_file):
    p = make_file.bytes("bad.jsonl", b'{"text": "Adult ok."}\n{"body": "Adult x.", "age": 3}\n')
    (issue,) = _load(p).issues
    assert issue.message == f"{p}, line 2: no 'text' field (fields: age, body)."
    assert issue.hint == OptionHint("text_field", None, ("age", "body"))


def test_jsonl_invalid_json_names_line(make_file):
    p = make_file.bytes("broken.jsonl", b'{"text": "Adult ok."}\n\n{"text": "Adult \n')
    (err,) = _load(p).errors
    assert err.startswith(f"{p}, line 3: not valid JSON")


def test_jsonl_non_text_value_is_an_error(make_file):
    p = make_file.bytes("num.jsonl", b'{"text": 42}\n')
    (err,) = _load(p).errors
    assert err == f"{p}, line 1: the 'text' field is int, not text."


def test_csv_text_column_with_multiline_quoted_field(make_file, h):
    raw = ('id,text,age\n1,"' + h.ADULT + '",58\n2,"Neonate patient,\nline two ""quoted"".",0\n'
           '3,"' + h.OTHER + '",6\n')
    ds = _load(make_file.bytes("rows.csv", raw.encode()))
    assert ds.errors == []
    assert [r.text for r in ds.records] == [h.ADULT, 'Neonate patient,\nline two "quoted".', h.OTHER]
    assert [r.line for r in ds.records] == [2, 3, 5]


def test_csv_custom_column_and_missing_column(make_file, h):
    p = make_file.bytes("notes.csv", ('note,x\n"' + h.NEONATE + '",1\n').encode())
    assert [r.text for r in _load(p, text_field="note").records] == [h.NEONATE]
    (issue,) = _load(p).issues
    assert issue.message == f"{p}, line 1: no 'text' column (columns: note, x)."
    assert issue.hint == OptionHint("text_field", None, ("note", "x"))


def test_folder_input_takes_txt_jsonl_and_csv_only(make_file, h):
    make_file.narratives("dir/b.txt", [h.ADULT])
    make_file.bytes("dir/a.jsonl", (json.dumps({"text": h.NEONATE}) + "\n").encode())
    make_file.bytes("dir/c.csv", ('text\n"' + h.OTHER + '"\n').encode())
    make_file.bytes("dir/readme.md", b"# not data\n")
    make_file.bytes("dir/sub/d.txt", b"nested files are not read")
    folder = make_file.root / "dir"
    assert [p.name for p in discover_inputs([folder])] == ["a.jsonl", "b.txt", "c.csv"]
    ds = _load(folder)
    assert [r.text for r in ds.records] == [h.NEONATE, h.ADULT, h.OTHER]
    assert [r.id for r in ds.records] == ["a-0001", "b-0001", "c-0001"]


def test_several_files_keep_their_order_and_the_same_file_twice_counts_once(make_file, h):
    a = make_file.narratives("z.txt", [h.ADULT])
    b = make_file.narratives("a.txt", [h.NEONATE, h.OTHER])
    ds = _load([a, b, a])
    assert [r.id for r in ds.records] == ["z-0001", "a-0001", "a-0002"]


def test_missing_input_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        discover_inputs([tmp_path / "nope.txt"])


def test_load_dataset_reports_progress_per_file_and_honours_cancel(tmp_path):  # type: ignore[no-untyped-def]
    from medcal_gui.core.errors import Cancelled
    from medcal_gui.core.jobs import CancelToken
    from medcal_gui.dataset.reading.loader import load_dataset

    for i in range(3):
        (tmp_path / f"n{i}.txt").write_text(f"Below is a cardiology topic:\n\nAdult patient, case {i}.\n",
                                            encoding="utf-8")
    seen = []
    ds = load_dataset([tmp_path], progress=seen.append)
    assert len(ds.records) == 3
    assert [(p.done, p.total) for p in seen] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert seen[0].message == "reading n0.txt"
    token = CancelToken()
    token.cancel()
    try:
        load_dataset([tmp_path], cancel=token)
    except Cancelled:
        pass
    else:
        raise AssertionError("a cancelled load must raise Cancelled")
