"""Split decoded text into records: narrative headers, blank-line paragraphs, JSONL rows or CSV rows.

Every parser is a generator over (line number, line) pairs, so a file of any size streams through it.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Iterator

from medcal_gui.dataset.records import Record
from medcal_gui.errors import DataError

HEADER_RE = re.compile(r"^\s*Below is an? (\S+(?: \S+)*?) topic:\s*$")

Lines = Iterable[tuple[int, str]]


def _record(stem: str, n: int, source: str, line: int, lines: list[str], topic: str | None) -> Record:
    # Strip the narrative's surrounding whitespace but keep the line count right for `line`.
    while lines and not lines[0].strip():
        lines.pop(0)
        line += 1
    text = "\n".join(lines).strip()
    return Record(id=f"{stem}-{n:04d}", source=source, line=line, text=text, topic=topic)


def parse_headers(lines: Lines, source: str, stem: str) -> Iterator[Record]:
    """Records that each start with `Below is a <topic> topic:`, a blank line, then the narrative."""
    n = 0
    topic: str | None = None
    body: list[str] = []
    body_line = 0
    seen_header = False
    for lineno, line in lines:
        m = HEADER_RE.match(line)
        if m:
            if seen_header:
                n += 1
                yield _record(stem, n, source, body_line, body, topic)
            seen_header, topic, body, body_line = True, m.group(1), [], lineno + 1
            continue
        if not seen_header:
            if line.strip():
                raise DataError(
                    "text before the first 'Below is a <topic> topic:' header. A narrative file starts "
                    "each record with that header; for plain text with records separated by blank lines, "
                    "use --split paragraphs.", source, lineno)
            continue
        body.append(line)
    if not seen_header:
        raise DataError("no 'Below is a <topic> topic:' header was found, so the file cannot be split into "
                        "records. For plain text with records separated by blank lines, use --split "
                        "paragraphs.", source)
    n += 1
    yield _record(stem, n, source, body_line, body, topic)


def parse_paragraphs(lines: Lines, source: str, stem: str) -> Iterator[Record]:
    """Records separated by one or more blank lines (only when the user asks for it)."""
    n = 0
    body: list[str] = []
    start = 0
    for lineno, line in lines:
        if line.strip():
            if not body:
                start = lineno
            body.append(line)
        elif body:
            n += 1
            yield _record(stem, n, source, start, body, None)
            body = []
    if body:
        n += 1
        yield _record(stem, n, source, start, body, None)


def _split_header(text: str) -> tuple[str | None, str]:
    """Rows exported from a dataset hub often still carry the narrative header: take it off."""
    first, _, rest = text.lstrip().partition("\n")
    m = HEADER_RE.match(first)
    return (m.group(1), rest) if m else (None, text)


def _row_record(stem: str, n: int, source: str, line: int, value: object, field: str) -> Record:
    if not isinstance(value, str):
        raise DataError(f"the {field!r} field is {type(value).__name__}, not text.", source, line)
    topic, text = _split_header(value.replace("\r\n", "\n").replace("\r", "\n"))
    return Record(id=f"{stem}-{n:04d}", source=source, line=line, text=text.strip(), topic=topic)


def parse_jsonl(lines: Lines, source: str, stem: str, text_field: str = "text") -> Iterator[Record]:
    n = 0
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg}).", source, lineno) from None
        if not isinstance(obj, dict):
            raise DataError("each JSONL line must be an object with a text field.", source, lineno)
        if text_field not in obj:
            keys = ", ".join(sorted(obj)) or "none"
            raise DataError(f"no {text_field!r} field (fields: {keys}); choose one with --text-field.",
                            source, lineno)
        n += 1
        yield _row_record(stem, n, source, lineno, obj[text_field], text_field)


class _LineCounter:
    """Feeds csv.reader from (lineno, line) pairs and remembers which source line it is on."""

    def __init__(self, lines: Lines) -> None:
        self._it = iter(lines)
        self.lineno = 0

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        self.lineno, line = next(self._it)
        return line + "\n"


def parse_csv(lines: Lines, source: str, stem: str, text_field: str = "text") -> Iterator[Record]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    feed = _LineCounter(lines)
    reader = csv.reader(feed)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("the CSV file has no header row.", source, 1) from None
    except csv.Error as exc:
        raise DataError(f"not valid CSV ({exc}).", source, feed.lineno) from None
    if text_field not in header:
        raise DataError(f"no {text_field!r} column (columns: {', '.join(header)}); choose one with "
                        "--text-field.", source, 1)
    col = header.index(text_field)
    n = 0
    while True:
        start = feed.lineno + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"not valid CSV ({exc}).", source, feed.lineno) from None
        if not row or all(not c.strip() for c in row):
            continue
        if col >= len(row):
            raise DataError(f"the row has {len(row)} columns, fewer than the header's {len(header)}.",
                            source, start)
        n += 1
        yield _row_record(stem, n, source, start, row[col], text_field)
