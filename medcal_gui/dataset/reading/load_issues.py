"""What loading found wrong with an input, located at its source file and line, and the line scan that
finds decoding problems while the file streams through the parser.

A `LoadIssue` is front-end neutral: `message` names the file and line but no CLI flag or GUI control; `hint`
(an `OptionHint`) says which setting would help, and each front end phrases it (commands/_hints.py for the
CLI, ui/ for the window).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from medcal_gui.core.errors import DataError, MedcalError, OptionHint

_SINGLE_BYTE = {"latin-1", "iso8859-1", "iso8859-15", "cp1252", "ascii"}
_LISTED = 5  # lines named per kind of problem

# cp1252's printable characters for bytes 0x80-0x9F: with 0xA0-0xBF (U+00A0-U+00BF, the same in latin-1) and
# the C1 controls latin-1 gives for 0x80-0x9F, what a UTF-8 continuation byte becomes when read single-byte.
_CP1252_HIGH = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"
_MOJIBAKE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf" + re.escape(_CP1252_HIGH) + "]+")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_C1 = re.compile("[\u0080-\u009f]")
# A cheap first look at a non-ASCII line: any character that may start one of the above (most lines: none).
_SUSPECT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\u00c2-\u00f4]")


@dataclass(frozen=True)
class LoadIssue:
    severity: str  # "error" | "warning"
    message: str  # for the user: what, which file and line (no CLI flag, no GUI control)
    path: str | None = None
    line: int | None = None
    hint: OptionHint | None = None
    record_id: str | None = None

    @classmethod
    def from_error(cls, exc: MedcalError, path: str | None = None) -> LoadIssue:
        return cls("error", exc.message, getattr(exc, "path", None) or path, getattr(exc, "line", None),
                   exc.hint)

    def to_json(self) -> dict[str, Any]:
        hint = None
        if self.hint is not None:
            hint = {"option": self.hint.option, "value": self.hint.value, "choices": list(self.hint.choices)}
        return {"severity": self.severity, "message": self.message, "path": self.path, "line": self.line,
                "hint": hint, "record_id": self.record_id}


def _as_bytes(run: str) -> bytes | None:
    out = bytearray()
    for ch in run:
        if ord(ch) < 256:
            out.append(ord(ch))
        else:
            try:
                out += ch.encode("cp1252")
            except UnicodeEncodeError:
                return None
    return bytes(out)


def mojibake_in(line: str) -> tuple[str, str] | None:
    """The first run that is UTF-8 read as cp1252/latin-1 ('â€™' for '’') and what it should read."""
    for m in _MOJIBAKE.finditer(line):
        raw = _as_bytes(m.group(0))
        if raw is None:
            continue
        try:
            fixed = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        return m.group(0), fixed
    return None


class _Kind:
    def __init__(self) -> None:
        self.lines: list[int] = []
        self.count = 0
        self.example = ""

    def add(self, lineno: int, example: str) -> None:
        self.count += 1
        if len(self.lines) < _LISTED:
            self.lines.append(lineno)
        if not self.example:
            self.example = example

    def where(self) -> str:
        more = f" and {self.count - len(self.lines)} more" if self.count > len(self.lines) else ""
        return ("line " if self.count == 1 else "lines ") + ", ".join(map(str, self.lines)) + more


class LineScan:
    """Scans decoded lines for decoding damage, per source file: a NUL character stops the file (an error,
    at its line); C0/C1 control characters, U+FFFD and mojibake become warnings with a hint."""

    def __init__(self, path: str, encoding: str, strict: bool = False) -> None:
        self.path = path
        self.encoding = encoding
        self.strict = strict  # raise on the first damage that would fail validation (the export path)
        self.c1, self.control, self.replacement, self.mojibake = _Kind(), _Kind(), _Kind(), _Kind()

    def wrap(self, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        search, control = _SUSPECT.search, _CONTROL.search
        for lineno, line in lines:
            if line.isascii():
                if not line.isprintable() and control(line):
                    self._scan(lineno, line)
            elif search(line):
                self._scan(lineno, line)
            yield lineno, line

    def _scan(self, lineno: int, line: str) -> None:
        if "\x00" in line:
            raise DataError("contains a NUL character (U+0000): binary data inside the text, or a wrong "
                            "encoding. Remove it or re-export the file as text.", self.path, lineno)
        m = _CONTROL.search(line)
        if m:
            self.control.add(lineno, f"U+{ord(m.group(0)):04X}")
        if line.isascii():
            if self.strict and self.control.count:
                self._fail(lineno)
            return
        m = _C1.search(line)
        if m:
            self.c1.add(lineno, f"U+{ord(m.group(0)):04X}")
        if "\ufffd" in line:
            self.replacement.add(lineno, "U+FFFD")
        bad = mojibake_in(line)
        if bad:
            self.mojibake.add(lineno, f"{bad[0]!r} for {bad[1]!r}")
        if self.strict and (self.c1.count or self.control.count or self.replacement.count):
            self._fail(lineno)

    def _fail(self, lineno: int) -> None:
        _kind, what, hint = next(d for d in self._describe() if d[0] is not self.mojibake)
        raise DataError(what + " Such text would fail validation.", self.path, lineno, hint=hint)

    def _describe(self) -> list[tuple[_Kind, str, OptionHint | None]]:
        out: list[tuple[_Kind, str, OptionHint | None]] = []
        single = self.encoding.replace("_", "-") in _SINGLE_BYTE or self.encoding.startswith("iso8859")
        if self.c1.count:
            hint = OptionHint("encoding", "cp1252") if single and self.encoding != "cp1252" else None
            why = ("bytes 0x80-0x9F are smart quotes and dashes in cp1252 but invisible C1 controls in "
                   f"{self.encoding}: the file was probably decoded with the wrong encoding"
                   if hint else "these are invisible and were probably damaged before medcal read the file")
            out.append((self.c1, f"C1 control characters (first: {self.c1.example}); {why}.", hint))
        if self.mojibake.count:
            hint = OptionHint("encoding", "utf-8") if single else None
            why = (f"UTF-8 text decoded as {self.encoding}" if hint else
                   "UTF-8 text that was once read as cp1252 or latin-1 and saved again: fix it at its source")
            out.append((self.mojibake, f"mojibake (first: {self.mojibake.example}); {why}.", hint))
        if self.replacement.count:
            out.append((self.replacement, "U+FFFD replacement characters: the text was damaged by a lossy "
                        "conversion before medcal read it; take it from the original.", None))
        if self.control.count:
            out.append((self.control, f"control characters (first: {self.control.example}), which do not "
                        "belong in a narrative: a wrong encoding or binary data?", None))
        return out

    def issues(self) -> list[LoadIssue]:
        """One warning per kind of damage found so far, naming its lines, with a hint where one helps."""
        return [LoadIssue("warning", f"{self.path}, {kind.where()}: {what}", self.path, kind.lines[0], hint)
                for kind, what, hint in self._describe()]
