"""Text inputs read whole: UTF-8 files, and JSON Lines files (prompt and question files: one JSON value a
line, blank lines skipped). Every error names the file (and the line)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from medcal_gui.core.errors import DataError, InputError
from medcal_gui.core.units import format_bytes

# a prompt, question, tensor-type or evaluation text file is a few megabytes at most; /dev/zero or a wrong file
# is refused at this size instead of being read until memory runs out
MAX_TEXT_BYTES = 256 * 1024 * 1024

# what to do with a file in another encoding: the format step reads any encoding and writes UTF-8
FORMAT_FIRST = " Run it through `medcal format` first."


def _not_a_file(st: os.stat_result) -> str | None:
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if stat.S_ISFIFO(st.st_mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "a device"
    return "not a regular file"


def read_bytes_bounded(path: Path, what: str, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them. A FIFO, a device (/dev/zero), a folder or
    a file over the limit is an InputError naming it, before a byte is read: nothing waits for a writer or
    reads without end."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        broken = os.path.islink(path)
        raise InputError(f"The {what} {path} " + ("is a symbolic link to a file that does not exist."
                                                    if broken else "does not exist.")) from None
    except OSError as exc:
        raise InputError(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from None
    kind = _not_a_file(st)
    if kind is not None:
        raise InputError(f"The {what} {path} is {kind}, not a file: give a text file.")
    if st.st_size > limit:
        raise InputError(f"The {what} {path} is {format_bytes(st.st_size, rough=True)}; medcal reads at most "
                         f"{format_bytes(limit, rough=True)} of it. Is it the right file?")
    try:
        with open(path, "rb") as fh:
            # read(n) allocates n bytes up front: ask for the file's size (and one byte more, to see growth),
            # not for the limit, or every small file costs a 256 MB allocation
            data = fh.read(min(limit, st.st_size) + 1)
            if len(data) > st.st_size:
                data += fh.read(limit + 1 - len(data))
    except OSError as exc:
        raise InputError(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from None
    if len(data) > limit:  # it grew while being read
        raise InputError(f"The {what} {path} is over {format_bytes(limit, rough=True)}; is it the right file?")
    return data


def read_utf8(path: Path, what: str, *, not_utf8_hint: str = "", limit: int = MAX_TEXT_BYTES) -> str:
    """The text of `path`; `what` names the file in errors ("prompt file", "evaluation text")."""
    data = read_bytes_bounded(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"The {what} {path} is not UTF-8 (line {line}, byte {exc.start}).{not_utf8_hint}") from None


def loads_json(raw: str | bytes, what: str, path: Path | str, line: int | None = None) -> object:
    """json.loads with every failure a DataError at the file (and line): invalid JSON, and JSON nested so
    deeply that the parser gives up (100,000 brackets raised RecursionError, a traceback)."""
    import json

    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f", column {exc.colno}" if line is not None else f", line {exc.lineno} column {exc.colno}"
        raise DataError(f"the {what} is not valid JSON ({exc.msg}{where}).", str(path), line) from None
    except RecursionError:
        raise DataError(f"the {what} is JSON nested too deeply to read; flatten it.", str(path), line) from None


def read_jsonl(path: Path, what: str) -> Iterator[tuple[int, object]]:
    """(line number, value) for each non-blank line of `path`."""
    text = read_utf8(path, what)
    # JSON Lines are split at "\n" alone: str.splitlines() also splits at U+2028 and U+2029, which
    # json.dumps(ensure_ascii=False) writes raw inside strings, so valid files were refused as "not valid JSON"
    for i, raw in enumerate(text.split("\n"), 1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            continue
        yield i, loads_json(raw, "line", path, i)


class UniqueIds:
    """Row ids of one file: a second use of an id is a DataError naming both lines."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._seen: dict[str, int] = {}

    def add(self, ident: str, line: int) -> None:
        if ident in self._seen:
            raise DataError(f"the id {ident!r} was already used on line {self._seen[ident]}.", self.path, line)
        self._seen[ident] = line
