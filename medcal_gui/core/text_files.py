"""Text inputs read whole: UTF-8 files, and JSON Lines files (prompt and question files: one JSON value a
line, blank lines skipped). Every error names the file (and the line)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from medcal_gui.core.errors import DataError, InputError

# what to do with a file in another encoding: the format step reads any encoding and writes UTF-8
FORMAT_FIRST = " Run it through `medcal format` first."


def read_utf8(path: Path, what: str, *, not_utf8_hint: str = "") -> str:
    """The text of `path`; `what` names the file in errors ("prompt file", "evaluation text")."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"The {what} {path} does not exist.") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"The {what} {path} is not UTF-8 (byte {exc.start}).{not_utf8_hint}") from None
    except OSError as exc:
        raise InputError(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from None


def read_jsonl(path: Path, what: str) -> Iterator[tuple[int, object]]:
    """(line number, value) for each non-blank line of `path`."""
    import json

    text = read_utf8(path, what)
    for i, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            yield i, json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg}, column {exc.colno}).", str(path), i) from None


class UniqueIds:
    """Row ids of one file: a second use of an id is a DataError naming both lines."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._seen: dict[str, int] = {}

    def add(self, ident: str, line: int) -> None:
        if ident in self._seen:
            raise DataError(f"the id {ident!r} was already used on line {self._seen[ident]}.", self.path, line)
        self._seen[ident] = line
