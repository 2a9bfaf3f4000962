"""Split decoded text into records: narrative headers, blank-line paragraphs, JSONL rows or CSV rows.

Every parser is a generator over (line number, line) pairs, so a file of any size streams through it.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Iterator

from medcal_gui.core.errors import DataError, OptionHint
from medcal_gui.dataset.records import CHARS_PER_TOKEN, MAX_LINE_CHARS, MAX_RECORD_CHARS, Record

HEADER_RE = re.compile(r"^\s*Below is an? (\S+(?: \S+)*?) topic:\s*$")

Lines = Iterable[tuple[int, str]]
_PARAGRAPHS = OptionHint("split", "paragraphs")


def _too_long(source: str, line: int) -> DataError:
    return DataError(f"the record starting here is longer than {MAX_RECORD_CHARS:,} characters (about "
                     f"{int(MAX_RECORD_CHARS / CHARS_PER_TOKEN):,} tokens), the most medcal reads as one record: a "
                     "narrative is a few thousand. Split the text into records of normal size.", source, line)


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
    body_line = size = text_line = 0
    seen_header = False
    for lineno, line in lines:
        m = HEADER_RE.match(line)
        if m:
            if seen_header:
                n += 1
                yield _record(stem, n, source, body_line, body, topic)
            seen_header, topic, body, body_line, size, text_line = True, m.group(1), [], lineno + 1, 0, 0
            continue
        if not seen_header:
            if line.strip():
                raise DataError(
                    "text before the first 'Below is a <topic> topic:' header. A narrative file starts "
                    "each record with that header; plain text with records separated by blank lines is "
                    "read by splitting it into paragraphs.", source, lineno, hint=_PARAGRAPHS)
            continue
        size += len(line) + 1
        text_line = text_line or (lineno if line.strip() else 0)
        if size > MAX_RECORD_CHARS:
            raise _too_long(source, text_line or body_line)
        body.append(line)
    if not seen_header:
        raise DataError("no 'Below is a <topic> topic:' header was found, so the file cannot be split into "
                        "records. Plain text with records separated by blank lines is read by splitting it "
                        "into paragraphs.", source, hint=_PARAGRAPHS)
    n += 1
    yield _record(stem, n, source, body_line, body, topic)


def parse_paragraphs(lines: Lines, source: str, stem: str) -> Iterator[Record]:
    """Records separated by one or more blank lines (only when the user asks for it)."""
    n = 0
    body: list[str] = []
    start = size = 0
    for lineno, line in lines:
        if line.strip():
            if not body:
                start, size = lineno, 0
            size += len(line) + 1
            if size > MAX_RECORD_CHARS:
                raise _too_long(source, start)
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
    if len(value) > MAX_RECORD_CHARS:
        raise _too_long(source, line)
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
        except RecursionError:
            raise DataError("the JSON is nested too deeply to read (thousands of [ or { inside each "
                            "other); a JSONL line is one object with a text field.", source, lineno) from None
        if not isinstance(obj, dict):
            raise DataError("each JSONL line must be an object with a text field.", source, lineno)
        if text_field not in obj:
            keys = sorted(str(k) for k in obj)
            raise DataError(f"no {text_field!r} field (fields: {', '.join(keys) or 'none'}).", source, lineno,
                            hint=OptionHint("text_field", None, tuple(keys)))
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


def _csv_error(exc: csv.Error, source: str, start: int, line: int) -> DataError:
    msg = str(exc)
    if "field larger than field limit" in msg:
        return DataError(f"a field of the row starting here is longer than {MAX_LINE_CHARS:,} characters: "
                         "a quote that is never closed, or a record far larger than a narrative. Fix the "
                         "quoting or split the text.", source, start)
    if "unexpected end of data" in msg or "EOF" in msg:
        return DataError("a quoted field opened in the row starting here is never closed (a \" without its "
                         "closing \"), so the rest of the file would become one field. Fix the quoting.",
                         source, start)
    if "expected after" in msg:
        return DataError('text after the closing quote of a quoted field (a " inside a quoted field must '
                         'be doubled: ""). Fix the quoting; medcal does not guess what was meant.',
                         source, line)
    return DataError(f"not valid CSV ({msg}).", source, line)


def parse_csv(lines: Lines, source: str, stem: str, text_field: str = "text") -> Iterator[Record]:
    # Strict quoting: a malformed row is an error at its line, never a silently altered narrative.
    csv.field_size_limit(min(sys.maxsize, MAX_LINE_CHARS))
    feed = _LineCounter(lines)
    reader = csv.reader(feed, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("the CSV file has no header row.", source, 1) from None
    except csv.Error as exc:
        raise _csv_error(exc, source, 1, feed.lineno) from None
    if text_field not in header:
        raise DataError(f"no {text_field!r} column (columns: {', '.join(header)}).", source, 1,
                        hint=OptionHint("text_field", None, tuple(header)))
    col = header.index(text_field)
    n = 0
    while True:
        start = feed.lineno + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise _csv_error(exc, source, start, feed.lineno) from None
        if not row or all(not c.strip() for c in row):
            continue
        if col >= len(row):
            raise DataError(f"the row has {len(row)} columns, fewer than the header's {len(header)}.",
                            source, start)
        n += 1
        yield _row_record(stem, n, source, start, row[col], text_field)
