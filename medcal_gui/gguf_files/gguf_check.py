"""Refuse a broken model file before llama.cpp sees it, with a message that names the file and says what to do.

llama.cpp itself only says "Failed to load model from file" for every kind of damage; here each kind gets its
own plain-words reason. Reading goes through `gguf.GGUFReader`; the only bytes read by hand are the fixed
24-byte preamble (magic, version, counts), so absurd counts are refused before the reader tries to honour them.
"""

from __future__ import annotations

import logging
import struct
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader
from gguf.constants import GGUF_MAGIC

from medcal_gui.core.errors import ModelError
from medcal_gui.gguf_files.gguf_header import GGUFHeader, HeaderError, TensorInfo, read_header

LOG = logging.getLogger(__name__)

SUPPORTED_VERSIONS = (2, 3)
_PREAMBLE = 24  # magic u32, version u32, tensor_count u64, kv_count u64
# Far above any real model (the biggest have a few thousand tensors and under a hundred metadata keys),
# far below what would make the reader allocate without bound.
MAX_TENSORS = 1_000_000
MAX_KVS = 100_000
# Smallest possible record sizes, used to spot counts that cannot fit in the file.
_MIN_TENSOR_INFO = 8 + 4 + 8 + 4 + 8  # name length, n_dims, one dim, type, offset
_MIN_KV = 8 + 4 + 1  # key length, value type, one byte of value

_FIX = "Re-download or re-convert the model."


class _Reader(GGUFReader):
    """GGUFReader on a plain ndarray view of its memory map.

    The reader slices its map once per metadata item; on an np.memmap each slice pays for the subclass's
    bookkeeping, which for a 262k-token vocabulary doubles the time (about 8 s against 4 s for Gemma 3).
    The view shares the same mapped memory, so nothing is read into RAM.
    """

    @property  # type: ignore[override]
    def data(self) -> np.ndarray[Any, Any]:
        return self._plain

    @data.setter
    def data(self, value: np.ndarray[Any, Any]) -> None:
        self._plain = np.asarray(value).view(np.ndarray)


def _refuse(path: Path, what: str, fix: str = _FIX, details: str | None = None) -> ModelError:
    return ModelError(f"The model file {path} {what}. {fix}", details)


def _sniff_other_format(head: bytes) -> str | None:
    if head.startswith(b"PK"):
        return "a PyTorch checkpoint (zip archive)"
    if len(head) >= 9 and head[8:9] == b"{":
        return "a safetensors file"
    if head.startswith(b"ggjt") or head.startswith(b"ggml") or head.startswith(b"ggmf") or head[:4] == b"tjgg":
        return "an old GGML file (from before GGUF)"
    if head[:1] in (b"{", b"["):
        return "a JSON file"
    return None


def _failed_in_tensor_data(exc: BaseException) -> bool:
    """Whether GGUFReader failed while mapping tensor data (the header itself was read)."""
    return any(frame.name == "_build_tensors" for frame in traceback.extract_tb(exc.__traceback__))


def _check_preamble(path: Path, size: int) -> None:
    with open(path, "rb") as fh:
        head = fh.read(_PREAMBLE)
    if head[:4] != struct.pack("<I", GGUF_MAGIC):
        other = _sniff_other_format(head)
        what = (f"is not a GGUF model: it looks like {other}" if other
                else "is not a GGUF model (its first bytes are not 'GGUF')")
        raise _refuse(path, what, "medcal works with llama.cpp's GGUF format: convert the model to GGUF first "
                                  "(medcal convert, or llama.cpp's convert_hf_to_gguf.py).")
    if len(head) < _PREAMBLE:
        raise _refuse(path, f"is cut short: it ends inside its header ({size} bytes)",
                      "The file was probably not downloaded or copied completely. " + _FIX)
    version, n_tensors, n_kv = struct.unpack("<IQQ", head[4:])
    if version & 0xFFFF == 0:  # written on a big-endian machine
        version, n_tensors, n_kv = struct.unpack(">IQQ", head[4:])
    if version not in SUPPORTED_VERSIONS:
        raise _refuse(path, f"uses GGUF version {version}, which this llama.cpp cannot read "
                            f"(it reads versions {', '.join(map(str, SUPPORTED_VERSIONS))})",
                      "Convert the model again with a current llama.cpp.")
    if n_tensors > MAX_TENSORS or n_kv > MAX_KVS:
        raise _refuse(path, f"is corrupt: its header claims {n_tensors} tensors and {n_kv} metadata entries")
    if _PREAMBLE + n_tensors * _MIN_TENSOR_INFO + n_kv * _MIN_KV > size:
        raise _refuse(path, f"is corrupt or cut short: its header lists {n_tensors} tensors and {n_kv} metadata "
                            f"entries, which cannot fit in its {size} bytes",
                      "The file was probably not downloaded or copied completely. " + _FIX)


def open_gguf(path: Path | str) -> GGUFReader:
    """Validate `path` and return a reader on it. Raises ModelError, naming the file, when it cannot be used."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"The model file {path} does not exist. Check the path, or choose the file again.")
    if path.is_dir():
        raise ModelError(f"{path} is a folder, not a model file. Choose the .gguf file inside it.")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"The model file {path} cannot be read: {exc.strerror or exc}.") from exc
    if size == 0:
        raise _refuse(path, "is empty (0 bytes)", "The download or copy probably failed. " + _FIX)
    try:
        _check_preamble(path, size)
    except OSError as exc:
        raise ModelError(f"The model file {path} cannot be read: {exc.strerror or exc}.") from exc

    try:
        reader: GGUFReader = _Reader(path, "r")
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, MemoryError, UnicodeDecodeError,
            struct.error) as exc:
        LOG.debug("GGUFReader failed on %s", path, exc_info=True)
        if _failed_in_tensor_data(exc):
            raise _refuse(path, f"is cut short: its tensor data ends early ({size} bytes; the weights are "
                                "incomplete)",
                          "The file was probably not downloaded or copied completely. " + _FIX,
                          details=f"gguf reader: {exc}") from exc
        raise _refuse(path, "is corrupt or cut short: its header (the metadata before the weights) cannot be read",
                      "The file was probably not downloaded or copied completely. " + _FIX,
                      details=f"gguf reader: {exc}") from exc
    except OSError as exc:
        raise ModelError(f"The model file {path} cannot be read: {exc.strerror or exc}.") from exc

    for t in reader.tensors:
        if t.data.nbytes != int(t.n_bytes):
            raise _cut_short(path, t.name, int(t.data_offset) + int(t.n_bytes), size)
    check_model_header(path, [(t.name, int(t.data_offset), int(t.n_bytes)) for t in reader.tensors], size,
                       general_type=_field_str(reader, "general.type"),
                       has_architecture="general.architecture" in reader.fields)
    return reader


def _cut_short(path: Path, name: str, end: int, size: int) -> ModelError:
    return _refuse(path, f"is cut short: the data of tensor '{name}' runs to byte {end}, past the end of the "
                         f"file ({size} bytes)", "The file was probably not downloaded or copied completely. " + _FIX)


def check_model_header(path: Path, tensors: list[tuple[str, int, int]], size: int, *, general_type: str | None,
                       has_architecture: bool) -> None:
    """What a model's header must hold, whichever reader read it: every tensor's data (name, offset from the
    file's start, bytes) inside the file, weights at all, an architecture, and not an imatrix's type."""
    for name, offset, n_bytes in tensors:
        if offset + n_bytes > size:
            raise _cut_short(path, name, offset + n_bytes, size)
    if general_type == "imatrix":
        raise _refuse(path, "is an importance matrix, not a model", "Choose the model's GGUF file.")
    if not tensors:
        raise _refuse(path, "holds no tensors (no weights)",
                      "This looks like a vocabulary-only or imatrix file, not a model. Choose the model's GGUF.")
    if not has_architecture:
        raise _refuse(path, "has no general.architecture entry, so llama.cpp cannot tell which model it is")


def _field_str(reader: GGUFReader, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None:
        return None
    try:
        value = field.contents()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def check_gguf(path: Path | str) -> None:
    """Refuse a model file llama.cpp could not load: missing, empty, not GGUF, unknown version, absurd counts,
    truncated header or data. Raises ModelError in plain words naming the file."""
    open_gguf(path)


def model_header(path: Path) -> GGUFHeader:
    """The header, by the quick reader; a file it cannot follow goes through open_gguf, which explains what is
    wrong with it (or, where the file is fine after all, reads it the slow way)."""
    try:
        header = read_header(path)
    except (HeaderError, OSError):
        return _from_reader(open_gguf(path), path)
    general_type = header.fields.get("general.type")
    check_model_header(path, [(t.name, t.data_offset, t.n_bytes) for t in header.tensors], header.file_size,
                       general_type=general_type if isinstance(general_type, str) else None,
                       has_architecture="general.architecture" in header.fields)
    return header


def _from_reader(reader: GGUFReader, path: Path) -> GGUFHeader:
    fields: dict[str, Any] = {}
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or not f.types:
            continue
        try:
            fields[key] = f.contents()
        except (ValueError, IndexError, UnicodeDecodeError):
            continue
    version = reader.fields["GGUF.version"].contents() if "GGUF.version" in reader.fields else 0
    tensors = [TensorInfo(t.name, tuple(int(x) for x in t.shape), int(t.tensor_type), int(t.data_offset))
               for t in reader.tensors]
    return GGUFHeader(int(version or 0), fields, tensors, int(reader.data_offset), path.stat().st_size)
