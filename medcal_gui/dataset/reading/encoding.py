"""Per-file encoding detection: BOM, then strict UTF-8, then chardet's guess, then latin-1 as last resort.

Nothing is ever replaced silently: every decode is strict, and the method and chardet's confidence are
reported so a user can see why a file was read the way it was and force another encoding.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import DataError, InputError, OptionHint
from medcal_gui.dataset.reading.inputs import open_input, read_error
from medcal_gui.dataset.records import MAX_LINE_CHARS

SAMPLE_BYTES = 256 * 1024  # what chardet sees (it is slow on megabytes)
STREAM_BYTES = 1 << 20
CHARDET_MIN_CONFIDENCE = 0.5

# Order matters: the UTF-32 LE BOM starts with the UTF-16 LE BOM.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32 LE"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32 BE"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16 LE"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16 BE"),
)
# Bytes 0x80-0x9F are printable in cp1252 (smart quotes, dashes, euro) but C1 controls in latin-1.
_C1 = bytes(range(0x80, 0xA0))
_LATIN1_FAMILY = {"ascii", "iso-8859-1", "latin-1", "windows-1252", "cp1252", "iso-8859-15"}


@dataclass(frozen=True)
class EncodingInfo:
    encoding: str  # Python codec used to decode ("utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1", ...)
    method: str  # "bom" | "utf-8" | "chardet" | "fallback" | "forced"
    confidence: float | None  # chardet's confidence when it was consulted
    guess: str | None  # chardet's raw guess
    note: str  # how it was chosen, in plain words

    @property
    def label(self) -> str:
        return {"utf-8-sig": "UTF-8 (BOM)", "utf-16": "UTF-16", "utf-32": "UTF-32"}.get(
            self.encoding, self.encoding.upper() if self.encoding.startswith("utf") else self.encoding)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _codec_name(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise InputError(f"Unknown encoding {name!r}. Use a Python codec name such as utf-8, "
                         "cp1252, latin-1 or utf-16.") from None


def _decodes_strictly(path: Path, encoding: str) -> tuple[bool, int]:
    """Stream-decode the whole file; return (ok, byte offset of the first bad byte)."""
    dec = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    try:
        with open_input(path) as fh:
            while chunk := fh.read(STREAM_BYTES):
                try:
                    dec.decode(chunk)
                except UnicodeDecodeError as exc:
                    return False, offset + exc.start
                offset += len(chunk)
            try:
                dec.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                return False, offset + exc.start
    except OSError as exc:
        raise read_error(path, exc) from None
    return True, -1


def _chardet(sample: bytes) -> tuple[str | None, float]:
    import chardet

    res = chardet.detect(sample)
    return res.get("encoding"), float(res.get("confidence") or 0.0)


def _wide_unicode(head: bytes) -> str | None:
    """"utf-16-le"/"utf-16-be" when `head` looks like BOM-less UTF-16 text (a NUL beside most ASCII bytes)."""
    sample = head[: 4096 - 4096 % 2]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.6 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.6 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def check_not_binary(path: Path, head: bytes, forced: str | None = None) -> None:
    """Refuse an empty file, and NUL bytes unless a BOM or a forced UTF-16/32 encoding explains them."""
    if not head:
        raise InputError(f"{path}: the file is empty. Choose a file with narratives in it.")
    if forced is not None and forced.startswith(("utf-16", "utf-32")):
        return  # NUL bytes are how UTF-16/32 spell ASCII; a NUL *character* is caught after decoding
    if not any(head.startswith(b) for b, _, _ in _BOMS) and b"\x00" in head:
        wide = _wide_unicode(head)
        if wide is not None:
            raise InputError(f"{path}: this looks like {wide.upper()} text without a byte-order mark, "
                             "which cannot be detected safely; decode it as " + wide + ".",
                             hint=OptionHint("encoding", wide))
        raise InputError(f"{path}: this looks like a binary file (it contains NUL bytes), not text. "
                         "medcal reads .txt, .jsonl and .csv text files.")


def detect_encoding(path: Path, forced: str | None = None) -> EncodingInfo:
    """Decide how to decode `path`. Raises InputError for empty, binary or (forced) undecodable files."""
    try:
        with open_input(path) as fh:
            head = fh.read(SAMPLE_BYTES)
    except OSError as exc:
        raise read_error(path, exc) from None
    forced_codec = _codec_name(forced) if forced and forced.lower() != "auto" else None
    check_not_binary(path, head, forced_codec)
    if forced and forced.lower() != "auto":
        enc = _codec_name(forced)
        for bom, bom_enc, _ in _BOMS:
            if head.startswith(bom) and enc == codecs.lookup(bom_enc).name.replace("-sig", ""):
                enc = bom_enc  # strip the BOM the user's choice implies
        ok, pos = _decodes_strictly(path, enc)
        if not ok:
            line = line_of_offset(path, pos)
            raise DataError(f"bytes that are not valid {enc} (byte offset {pos}); the forced encoding "
                            "does not fit this file: let medcal detect it.", str(path), line,
                            hint=OptionHint("encoding", "auto"))
        return EncodingInfo(enc, "forced", None, None, f"forced by the user ({enc})")

    for bom, enc, label in _BOMS:
        if head.startswith(bom):
            ok, pos = _decodes_strictly(path, enc)
            if not ok:
                raise DataError(f"starts with a {label} byte-order mark but is not valid {label} "
                                f"(byte offset {pos}).", str(path), line_of_offset(path, pos))
            return EncodingInfo(enc, "bom", None, None, f"{label} byte-order mark")

    ok, _ = _decodes_strictly(path, "utf-8")
    if ok:
        return EncodingInfo("utf-8", "utf-8", None, None, "valid UTF-8 throughout")

    guess, conf = _chardet(head)
    if guess and conf >= CHARDET_MIN_CONFIDENCE:
        enc = _codec_name(guess)
        if guess.lower() in _LATIN1_FAMILY and any(b in head for b in _C1):
            enc = "cp1252"  # bytes 0x80-0x9F: Windows text (smart quotes), not C1 controls
        if _decodes_strictly(path, enc)[0]:
            return EncodingInfo(enc, "chardet", conf, guess,
                                f"not UTF-8; chardet guessed {guess} with confidence {conf:.2f}")
    # chardet is often unsure of short single-byte text (chardet 7 rarely gives cp1252 0.5). Latin-1 would
    # turn cp1252's smart quotes and dashes (0x80-0x9F) into C1 control characters, so prefer cp1252
    # whenever such bytes are present and the whole file decodes with it.
    if any(b in head for b in _C1) and _decodes_strictly(path, "cp1252")[0]:
        note = (f"not UTF-8; chardet's guess {guess or 'none'} ({conf:.2f}) was too unsure, and bytes "
                "0x80-0x9F (Windows smart quotes and dashes) fit cp1252, so cp1252 was used: check the "
                "text or force an encoding")
        return EncodingInfo("cp1252", "fallback", conf, guess, note)
    note = (f"not UTF-8; chardet's guess {guess or 'none'} ({conf:.2f}) did not fit, so latin-1 "
            "(the last resort, which reads any byte) was used: check the text or force an encoding")
    return EncodingInfo("latin-1", "fallback", conf, guess, note)


def line_of_offset(path: Path, offset: int) -> int:
    """1-based line number of byte `offset` (counting LF, CRLF and lone CR as line ends). Streams."""
    lines = 1
    left = max(offset, 0)
    prev_cr = False
    try:
        with open_input(path) as fh:
            while left > 0 and (chunk := fh.read(min(STREAM_BYTES, left))):
                left -= len(chunk)
                lf, cr = chunk.count(b"\n"), chunk.count(b"\r")
                crlf = chunk.count(b"\r\n") + (1 if prev_cr and chunk.startswith(b"\n") else 0)
                lines += lf + cr - crlf
                prev_cr = chunk.endswith(b"\r")
    except OSError as exc:
        raise read_error(path, exc) from None
    return lines


def iter_lines(path: Path, info: EncodingInfo) -> Iterator[tuple[int, str]]:
    """Yield (line number, line without its line end); CRLF and CR count as LF. Streams the file, reading
    at most MAX_LINE_CHARS characters of a line, so one enormous line cannot fill the memory."""
    lineno = 0
    try:
        with open_input(path) as raw, \
                io.TextIOWrapper(raw, encoding=info.encoding, errors="strict", newline=None) as fh:
            while line := fh.readline(MAX_LINE_CHARS + 1):
                lineno += 1
                if len(line) > MAX_LINE_CHARS:
                    raise DataError(f"the line is longer than {MAX_LINE_CHARS:,} characters, more than any "
                                    "record medcal reads: is this really a narrative file? Split it into "
                                    "records of normal size.", str(path), lineno)
                yield lineno, line[:-1] if line.endswith("\n") else line
    except UnicodeDecodeError as exc:
        raise DataError(f"cannot be decoded as {info.encoding}: {exc.reason}.", str(path),
                        lineno + 1, hint=OptionHint("encoding", "auto")) from exc
    except OSError as exc:
        raise read_error(path, exc) from None
