"""A GGUF file's header (metadata and tensor table) read in one pass with `struct`, without the weights.

`gguf.GGUFReader` builds a numpy view for every part of every metadata item: for a 262k-token vocabulary
that is about a million views and several seconds of pure Python holding the GIL (the window's thread then
waits for it). This reader decodes the same values directly, a tenth of a second for Gemma 3's vocabulary.
It is strict: anything it does not expect (a big-endian file, an unknown value type, a count that runs
past the end) raises `HeaderError`, and the caller falls back to `gguf_check.open_gguf`, whose messages
say what is wrong with a damaged file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gguf import GGMLQuantizationType

GGUF_MAGIC = b"GGUF"  # a GGUF file's first bytes
DEFAULT_ALIGNMENT = 32
FIRST_READ = 16 << 20  # bytes: Gemma 3's header (a 262k-token vocabulary) is about 6 MB
# value types (gguf.GGUFValueType): the fixed-size ones as struct codes and numpy dtypes
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
          12: "<f8"}
_STRING, _ARRAY = 8, 9


class HeaderError(ValueError):
    """The header is not what this reader expects (the caller falls back to the full reader)."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # GGUF order: the fastest-varying dimension first
    type_id: int  # ggml type
    data_offset: int  # from the start of the file

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def tensor_type(self) -> GGMLQuantizationType:
        from gguf import GGMLQuantizationType

        return GGMLQuantizationType(self.type_id)

    @property
    def n_bytes(self) -> int:
        from gguf import GGML_QUANT_SIZES

        block, type_size = GGML_QUANT_SIZES[self.tensor_type]
        return self.n_elements // block * type_size


@dataclass
class GGUFHeader:
    version: int
    fields: dict[str, Any]  # strings, numbers, bools; arrays as lists
    tensors: list[TensorInfo]
    data_start: int
    file_size: int
    kv_spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # each key's bytes (key to value's end)

    @property
    def context_length(self) -> int | None:
        """The context the model was trained for (`<architecture>.context_length`); None where it does not say."""
        v = self.fields.get(f"{self.fields.get('general.architecture') or 'unknown'}.context_length")
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


@dataclass(frozen=True)
class SkippedStrings:
    """A string array read with `decode_strings=False`: only its length."""

    n: int

    def __len__(self) -> int:
        return self.n


class _Cursor:
    def __init__(self, buf: bytes, size: int, decode_strings: bool = True) -> None:
        self.buf, self.size, self.pos, self.decode = buf, size, 0, decode_strings

    def need(self, n: int, what: str) -> None:
        if self.pos + n > self.size:
            raise HeaderError(f"{what} runs past the end of the file")
        if self.pos + n > len(self.buf):
            raise _NeedMore

    def take(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, "the header")
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return v

    def string(self) -> str:
        n = self.take("<Q")
        self.need(n, "a string")
        s = self.buf[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def _strings(self, count: int) -> list[str] | SkippedStrings:
        """A vocabulary's worth of strings: the one loop that runs 262k times, kept tight (bounds checked
        once at the end: a slice past the end is short, and the position then lies past it)."""
        buf, pos, unpack = self.buf, self.pos, _U64.unpack_from
        out: list[str] = []
        append = out.append
        try:
            if self.decode:
                for _ in range(count):
                    (n,) = unpack(buf, pos)
                    pos += 8
                    append(buf[pos:pos + n].decode("utf-8"))
                    pos += n
            else:
                for _ in range(count):
                    pos += 8 + unpack(buf, pos)[0]
        except struct.error:
            pos = len(buf) + 1  # the next length was past the bytes read
        if pos > len(buf):
            self.need(pos - self.pos, "a string array")  # past the file: HeaderError; else read more
            raise _NeedMore
        self.pos = pos
        return out if self.decode else SkippedStrings(count)

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.take("<" + _SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, count = self.take("<I"), self.take("<Q")
            if itype in _NUMPY:
                dt = np.dtype(_NUMPY[itype])
                self.need(count * dt.itemsize, "an array")
                arr = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos)
                self.pos += count * dt.itemsize
                return [bool(x) for x in arr] if itype == 7 else arr.tolist()
            if count > self.size:
                raise HeaderError("an array claims more items than the file has bytes")
            if itype == _STRING:
                return self._strings(count)
            return [self.value(itype) for _ in range(count)]
        raise HeaderError(f"unknown metadata value type {vtype}")


_U64 = struct.Struct("<Q")


def read_header(path: Path | str, *, decode_strings: bool = True, check_types: bool = True) -> GGUFHeader:
    """The header of the GGUF file `path`; HeaderError when it is not a little-endian GGUF v2/v3 this reader
    can follow to the end of its tensor table (OSError when the file cannot be read). Without
    `decode_strings`, string arrays (the vocabulary) are skipped: a SkippedStrings with their count. Without
    `check_types`, the tensors' types are not checked against ggml's (nor gguf-py imported, 30 ms: a caller
    that needs only shapes, such as the quantize command on its way to llama.cpp)."""
    path = Path(path)
    size = path.stat().st_size
    if size < 24:
        raise HeaderError("shorter than a GGUF preamble")
    want = min(size, FIRST_READ)
    with open(path, "rb") as fh:
        while True:  # the header's length is known only once it is read: read more until it fits
            fh.seek(0)
            buf = fh.read(want)
            try:
                return _parse(buf, size, decode_strings, check_types)
            except _NeedMore:
                want = min(size, 4 * want)
            except (UnicodeDecodeError, OverflowError, struct.error, ValueError, KeyError) as exc:
                if isinstance(exc, HeaderError):
                    raise
                raise HeaderError(str(exc)) from exc


class _NeedMore(Exception):
    """The header goes on past the bytes read so far (but not past the file)."""


def _block_size(type_id: int) -> int:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    return GGML_QUANT_SIZES[GGMLQuantizationType(type_id)][0]


def _parse(buf: bytes, size: int, decode_strings: bool, check_types: bool) -> GGUFHeader:
    cur = _Cursor(buf, size, decode_strings)
    if cur.take("<4s") != GGUF_MAGIC:
        raise HeaderError("not a GGUF file")
    version = cur.take("<I")
    if version not in (2, 3):
        raise HeaderError(f"GGUF version {version}")
    n_tensors, n_kv = cur.take("<Q"), cur.take("<Q")
    fields: dict[str, Any] = {}
    spans: dict[str, tuple[int, int]] = {}
    for _ in range(n_kv):
        start = cur.pos
        key = cur.string()
        fields[key] = cur.value(cur.take("<I"))
        spans[key] = (start, cur.pos)
    tensors: list[tuple[str, tuple[int, ...], int, int]] = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.take("<I")
        if n_dims > 8:
            raise HeaderError(f"tensor {name!r} has {n_dims} dimensions")
        shape = tuple(cur.take("<Q") for _ in range(n_dims))
        tensors.append((name, shape, cur.take("<I"), cur.take("<Q")))
    align = fields.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(align, int) or align <= 0:
        raise HeaderError(f"alignment {align!r}")
    data_start = -(-cur.pos // align) * align
    infos = [TensorInfo(name, shape, ttype, data_start + offset) for name, shape, ttype, offset in tensors]
    if check_types:
        for t in infos:
            block = _block_size(t.type_id)  # an unknown type raises ValueError: a HeaderError below
            if t.n_elements % block:
                raise HeaderError(f"tensor {t.name!r}: {t.n_elements} values are not whole blocks of {block}")
    return GGUFHeader(version, fields, infos, data_start, size, spans)
