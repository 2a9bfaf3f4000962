"""The validation checklist: one row per check, each row's status computed from its own counts in the
report (`ValidationReport.problems` and the turn counters), never from the wording of an error message."""

from __future__ import annotations

from medcal_gui.dataset.validation.narrative_checks import LONG_CHARS, SHORT_CHARS
from medcal_gui.dataset.validation.results import Check, ValidationReport

# The kinds counted in ValidationReport.problems, by who counts them.
PROBLEM_KINDS = (
    "turns",  # turn-structure problems (validate._chat_records)
    "truncated",  # a turn never closed / a record without its model turn
    "marker",  # records without the system marker
    "empty", "damaged", "special",  # per-narrative errors (narrative_checks.NarrativeChecks)
    "changed", "count_mismatch",  # narratives compared with their sources
    "duplicates", "short", "long", "phi",  # per-narrative warnings
)


def _status(ok: bool) -> str:
    return "pass" if ok else "fail"


def _n(r: ValidationReport, *kinds: str) -> int:
    return sum(r.problems.get(k, 0) for k in kinds)


def records_present(r: ValidationReport, detail: str) -> Check:
    return Check(_status(r.records > 0 and r.expected_records in (None, r.records)), "All records present",
                 detail)


def common_checks(r: ValidationReport, short_chars: int, long_chars: int) -> list[Check]:
    toks = r.token_stats()
    pops = ", ".join(f"{v} {k}" for k, v in sorted(r.populations.items())) or "none"
    corrupt = _n(r, "empty", "damaged", "truncated")
    odd = _n(r, "duplicates", "short", "long")
    phi_n = _n(r, "phi")
    return [
        Check(_status(not corrupt), "No truncation or corruption",
              "Every narrative is non-empty and free of replacement or control characters." if not corrupt
              else f"{corrupt} record(s) are empty, damaged or truncated: see the errors."),
        Check(_status(not _n(r, "special")), "No special tokens inside narratives",
              "No narrative holds <bos>, <eos>, <pad> or another token text of the model." if not _n(
                  r, "special") else f"{_n(r, 'special')} narrative(s) hold special-token text: see the errors."),
        Check(_status(r.utf8_valid), "UTF-8 compatibility verified",
              "The text is valid UTF-8." if r.utf8_valid else "The file is not valid UTF-8."),
        Check("pass", "Latin-1 copy possible", "Every character also fits latin-1.") if r.latin1_ok else
        Check("info", "No latin-1 copy possible",
              "Some characters (such as en dashes) do not fit latin-1, so no latin-1 copy can be made; "
              "UTF-8 is what llama.cpp reads anyway."),
        Check("info", "File size", f"{r.file_size / 1024:.1f} KB" if r.file_size is not None else
              "not written yet"),
        Check("warn" if odd else "pass", "No duplicate, very short or very long records",
              f"{odd} record(s) are duplicates, very short or very long: see the warnings." if odd
              else f"Narratives are between {short_chars} and {long_chars} characters and all distinct."),
        Check("info", "Populations", pops),
        Check("info", "Token estimate", f"about {toks['total']:.0f} tokens in all, {toks['min']:.0f}–"
              f"{toks['max']:.0f} per record (an estimate; the model's tokenizer gives the exact count)"),
        Check("warn" if phi_n else "pass", "No obvious PHI (dates, phones, e-mails, IDs, titled names)",
              f"{phi_n} possible PHI matches: review them (they do not block)." if phi_n
              else "No date, phone, e-mail, record-number or titled-name patterns were found."),
    ]


def chat_checks(r: ValidationReport, short_chars: int, long_chars: int) -> list[Check]:
    expect = (f"{r.records} of {r.expected_records} expected records" if r.expected_records is not None
              else f"{r.records} records")
    changed = _n(r, "changed", "count_mismatch")
    return [
        records_present(r, expect),
        Check(_status(r.start_turns == r.end_turns and not _n(r, "turns")),
              "Proper <start_of_turn> / <end_of_turn> pairs",
              f"{r.start_turns} <start_of_turn>, {r.end_turns} <end_of_turn>"
              + (f"; {_n(r, 'turns')} turn-structure problem(s): see the errors" if _n(r, "turns") else "")),
        Check(_status(r.user_turns == r.model_turns == r.records), "User turns = model turns = records",
              f"{r.user_turns} user, {r.model_turns} model, {r.records} records"),
        Check(_status(not _n(r, "marker")), "System prompt included in every record",
              (f"marker {r.marker!r}" if r.marker else "no marker line found")
              + (f"; {_n(r, 'marker')} record(s) without it" if _n(r, "marker") else "")),
        Check(_status(not changed) if r.compared else "info", "Clinical narratives intact",
              ("Every narrative equals its source." if not changed
               else r.first_changed or f"{changed} narrative(s) differ from their source.") if r.compared
              else "Not compared: no source narratives were given."),
        *common_checks(r, short_chars, long_chars),
    ]


def finish_checks(r: ValidationReport) -> None:
    """(Re)compute the checklist from the counts, e.g. once the written file's size is known."""
    if r.kind == "chat":
        r.checks = chat_checks(r, SHORT_CHARS, LONG_CHARS)
    else:
        r.checks = [records_present(r, f"{r.records} narratives (original format"
                                    + (f", {r.encoding_label})" if r.encoding_label else ")")),
                    *common_checks(r, SHORT_CHARS, LONG_CHARS)]
