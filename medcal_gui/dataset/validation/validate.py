"""The seed's validation checklist as code, and more. Streams a formatted file (or in-memory text) once.

Errors (the file would calibrate wrongly) and warnings (worth a look) are separate lists; `checks` is the
checklist the GUI shows, each row explaining itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from medcal_gui.core.errors import InputError
from medcal_gui.dataset.reading.inputs import open_input, read_error
from medcal_gui.dataset.records import (
    CHARS_PER_TOKEN,
    END_TURN,
    MAX_LINE_CHARS,
    START_TURN,
    estimate_tokens,
)
from medcal_gui.dataset.validation.checks import finish_checks
from medcal_gui.dataset.validation.narrative_checks import (
    LONG_CHARS,
    SHORT_CHARS,
    Limited,
    NarrativeChecks,
    narrative_digest,
)
from medcal_gui.dataset.validation.results import ValidationReport

__all__ = ["LONG_CHARS", "SHORT_CHARS", "ValidationReport", "narrative_digest", "validate_chat_lines",
           "validate_file", "validate_text"]


def _split_user(content: str) -> tuple[str | None, str | None, str]:
    lines = content.split("\n")
    marker = None
    if lines and lines[0].startswith("[") and lines[0].rstrip().endswith("]"):
        marker = lines.pop(0)
    instruction = lines.pop(0) if lines else None
    return marker, instruction, "\n".join(lines)


def _chat_records(lines: Iterable[tuple[int, str]], report: ValidationReport,
                  errs: Limited) -> Iterator[tuple[int, str, str, int]]:
    """Parse turns; yield (user-turn line, marker, narrative, formatted token estimate) per record."""
    role: str | None = None
    turn_line = 0
    content: list[str] = []
    last_role = "model"
    layouts: set[str] = set()
    record: tuple[int, str, str] | None = None
    record_chars = 0
    for lineno, line in lines:
        if role is not None and "<" not in line:
            content.append(line)  # fast path: a narrative line inside a turn
            continue
        report.start_turns += line.count(START_TURN)
        report.end_turns += line.count(END_TURN)
        rest = line
        while rest or role is not None:
            if role is None:
                if rest.startswith(START_TURN):
                    role = rest[len(START_TURN):].strip()
                    turn_line, content = lineno, []
                    if role == "user":
                        report.user_turns += 1
                        if last_role != "model":
                            errs.add(f"line {lineno}: a user turn follows a user turn (no model turn between).")
                    elif role == "model":
                        report.model_turns += 1
                        if last_role != "user":
                            errs.add(f"line {lineno}: a model turn without a user turn before it.")
                    else:
                        errs.add(f"line {lineno}: unknown role {role!r} after {START_TURN}.")
                    last_role = role
                elif rest.strip():
                    if END_TURN in rest:
                        errs.add(f"line {lineno}: {END_TURN} without a matching {START_TURN}.")
                    else:
                        errs.add(f"line {lineno}: text outside any turn.")
                break
            # Inside a turn.
            idx = rest.find(END_TURN)
            nxt = rest.find(START_TURN)
            if nxt >= 0 and (idx < 0 or nxt < idx):
                errs.add(f"line {lineno}: {START_TURN} inside the turn opened at line {turn_line} "
                         f"(missing {END_TURN}).")
            if idx < 0:
                content.append(rest)
                break
            before = rest[:idx]
            content.append(before)
            layouts.add("seed" if before == "" else "gemma")
            text = "\n".join(content)
            if content and content[-1] == "":
                text = text[:-1]  # seed layout: <end_of_turn> on its own line
            if role == "user":
                marker, _instr, narrative = _split_user(text)
                record = (turn_line, marker or "", narrative)
                record_chars = len(text)
            elif role == "model" and record is not None:
                toks = math.ceil((record_chars + len(text)) / CHARS_PER_TOKEN) + 6  # + markers, roles
                yield record[0], record[1], record[2], toks
                record = None
            role, rest = None, rest[idx + len(END_TURN):]
            if rest.strip():
                errs.add(f"line {lineno}: text after {END_TURN} on the same line.")
            break
    if role is not None:
        errs.add(f"line {turn_line}: the {role} turn opened here is never closed (truncated file?).")
        report.count("truncated")
    if record is not None:
        errs.add(f"line {record[0]}: record without a model turn (truncated file?).")
        report.count("truncated")
        yield record[0], record[1], record[2], estimate_tokens(record[2])
    report.layout = layouts.pop() if len(layouts) == 1 else ("mixed" if layouts else None)


def validate_chat_lines(lines: Iterable[tuple[int, str]], report: ValidationReport,
                        sources: Sequence[bytes] | None = None, ids: Sequence[str] | None = None,
                        expected_marker: str | None = None) -> ValidationReport:
    errs = Limited()
    checks = NarrativeChecks(report, sources)
    missing_marker = Limited()
    stem = Path(report.source).stem if report.source else "record"
    for n, (line, marker, narrative, toks) in enumerate(_chat_records(lines, report, errs), start=1):
        rid = ids[n - 1] if ids and n <= len(ids) else f"{stem}-{n:04d}"
        if report.marker is None:
            report.marker = expected_marker if expected_marker is not None else marker
        if marker != report.marker:
            missing_marker.add(f"record {rid} (line {line}) lacks the system marker {report.marker!r}.")
        # The narrative follows the user-turn line, the marker line (if any) and the instruction line.
        checks.add(rid, line, narrative, toks, text_line=line + 2 + (1 if marker else 0))
    report.count("turns", errs.total)
    report.count("marker", missing_marker.total)
    errs.flush(report.errors, "turn structure problems")
    missing_marker.flush(report.errors, "records without the marker")
    checks.finish()
    _finish_chat(report)
    return report


def _finish_chat(r: ValidationReport) -> None:
    if r.records == 0 and not r.errors:
        r.errors.append("No chat records (<start_of_turn>user ... ) were found.")
    if r.expected_records is not None and r.records != r.expected_records:
        r.errors.append(f"Expected {r.expected_records} records, found {r.records}.")
    if r.start_turns != r.end_turns:
        r.errors.append(f"{r.start_turns} {START_TURN} but {r.end_turns} {END_TURN}: the turns are not "
                        "paired.")
    if not (r.user_turns == r.model_turns == r.records):
        r.errors.append(f"User turns ({r.user_turns}), model turns ({r.model_turns}) and records "
                        f"({r.records}) should be equal.")
    finish_checks(r)


def _binary_lines(path: Path, report: ValidationReport) -> Iterator[tuple[int, str]]:
    crlf = False
    with open_input(path) as fh:
        lineno = 0
        while raw := fh.readline(MAX_LINE_CHARS + 1):
            lineno += 1
            if len(raw) > MAX_LINE_CHARS:
                report.errors.append(f"{path}, line {lineno}: longer than {MAX_LINE_CHARS:,} bytes, which no "
                                     "formatted record is; validation stopped here.")
                report.count("damaged")
                return
            if raw.endswith(b"\r\n"):
                crlf = True
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.utf8_valid = False
                report.errors.append(f"{path}, line {lineno}: not valid UTF-8; validation stopped here. "
                                     "Re-export the file with medcal format (always UTF-8).")
                return
            if lineno == 1 and text.startswith("\ufeff"):
                report.warnings.append(f"{path}: starts with a UTF-8 byte-order mark, which llama.cpp "
                                       "reads as text.")
                text = text[1:]
            yield lineno, text.rstrip("\r\n") if text.endswith("\n") else text
    if crlf:
        report.warnings.append(f"{path}: uses CRLF line ends; llama.cpp would see the carriage returns "
                               "as text. Re-export with medcal format (always LF).")


def validate_file(path: Path, expect_records: int | None = None,
                  sources: Sequence[bytes] | None = None, ids: Sequence[str] | None = None) -> ValidationReport:
    """Validate a formatted chat file, or a narrative file in the original format."""
    path = Path(path)
    try:
        with open_input(path, "a calibration text file") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(1 << 16)
    except OSError as exc:
        raise read_error(path, exc) from None
    if size == 0:
        raise InputError(f"{path}: the file is empty.")
    if b"\x00" in head:
        raise InputError(f"{path}: this looks like a binary file (it contains NUL bytes), not text.")
    report = ValidationReport(source=str(path), expected_records=expect_records, file_size=size)
    if START_TURN.encode() not in head and END_TURN.encode() not in head:
        return _validate_narrative_file(path, report)
    try:
        return validate_chat_lines(_binary_lines(path, report), report, sources, ids)
    except OSError as exc:
        raise read_error(path, exc) from None


def _validate_narrative_file(path: Path, report: ValidationReport) -> ValidationReport:
    from medcal_gui.dataset.reading.encoding import detect_encoding
    from medcal_gui.dataset.reading.load_issues import LineScan
    from medcal_gui.dataset.reading.loader import LoadOptions, iter_file_records

    report.kind = "narratives"
    info = detect_encoding(path)
    report.utf8_valid = info.encoding in ("utf-8", "utf-8-sig")
    report.encoding_label = info.label
    checks = NarrativeChecks(report, None)
    scan = LineScan(str(path), info.encoding)
    for rec in iter_file_records(path, info, LoadOptions(), path.stem, scan):
        # Special-token text (turn markers included) is an error of NarrativeChecks, at the record's line.
        checks.add(rec.id, rec.line, rec.text, rec.tokens_est)
    checks.finish()
    report.warnings.extend(i.message for i in scan.issues())
    if report.expected_records is not None and report.records != report.expected_records:
        report.errors.append(f"Expected {report.expected_records} records, found {report.records}.")
    finish_checks(report)
    return report


def validate_text(text: str, sources: Sequence[str] | None = None, ids: Sequence[str] | None = None,
                  expected_marker: str | None = None, expect_records: int | None = None) -> ValidationReport:
    """Validate formatted text in memory (the GUI's checklist), comparing narratives with their sources."""
    report = ValidationReport(source=None, expected_records=expect_records,
                              file_size=len(text.encode("utf-8")))
    lines = enumerate(text.split("\n"), start=1)
    if text.endswith("\n"):
        lines = enumerate(text[:-1].split("\n"), start=1)
    digests = [narrative_digest(t) for t in sources] if sources is not None else None
    return validate_chat_lines(lines, report, digests, ids, expected_marker)
