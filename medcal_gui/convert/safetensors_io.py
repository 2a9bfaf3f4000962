"""Read a Hugging Face checkpoint's `*.safetensors` shards one tensor (and one slice of rows) at a time.

The `safetensors` package validates each shard's header (`safe_open`), but its numpy reader cannot return
bfloat16 and would load a whole tensor at once. So the data is read here by the header's byte offsets, a
slice of rows at a time, and widened to float32 exactly: a bfloat16 word is the top half of a float32
(`uint16 << 16`, viewed as float32), a float16 converts exactly. Memory stays at one slice, whatever the size
of the model or of its largest tensor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from medcal_gui.convert.folder import FolderFileError, check_inside, outside_reason, read_json
from medcal_gui.convert.values import show
from medcal_gui.core.errors import ModelError
from medcal_gui.llama.row_convert import bf16_to_f32, f16_to_f32

log = logging.getLogger(__name__)

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
# Widened values produced per slice: 4M float32 = 16 MB, plus the raw and converted copies of the slice.
CHUNK_ELEMENTS = 1 << 22
_MAX_HEADER = 100 * 1024 * 1024  # safetensors itself refuses headers above 100 MB

# safetensors dtype -> (bytes per element, numpy dtype of the raw words)
_DTYPES: dict[str, tuple[int, str]] = {
    "BF16": (2, "<u2"),
    "F16": (2, "<f2"),
    "F32": (4, "<f4"),
    "F64": (8, "<f8"),
}


class ShardError(ModelError):
    """A safetensors shard is missing, cut short or unreadable."""


@dataclass(frozen=True)
class TensorEntry:
    name: str
    shard: Path
    dtype: str  # safetensors dtype name: BF16, F16, F32, ...
    shape: tuple[int, ...]
    start: int  # absolute byte offset of the data in the shard
    end: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def _fix(hf_dir: Path) -> str:
    return (f"Download the model folder {hf_dir} again completely (every model-*.safetensors file the index "
            "names), then convert again.")


def _read_header(shard: Path, hf_dir: Path) -> tuple[dict[str, Any], int]:
    """Parse a shard's JSON header; returns (entries, absolute offset of its data)."""
    try:
        size = shard.stat().st_size
        with open(shard, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ShardError(f"The weights file {shard.name} is empty or cut short ({size} bytes). "
                                 + _fix(hf_dir))
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER:
                raise ShardError(f"The weights file {shard.name} is corrupt: its first 8 bytes give a header of {n:,} "
                                 f"bytes, over safetensors' limit of {_MAX_HEADER:,}. " + _fix(hf_dir))
            if 8 + n > size:
                raise ShardError(f"The weights file {shard.name} is corrupt or cut short: its header claims "
                                 f"{n} bytes but the file holds {size}. " + _fix(hf_dir))
            raw = fh.read(n)
    except OSError as exc:
        raise ShardError(f"The weights file {shard} cannot be read: {exc.strerror or exc}.") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("not an object")
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ShardError(f"The weights file {shard.name} is not a safetensors file (its header cannot be "
                         "read). " + _fix(hf_dir)) from exc
    header.pop("__metadata__", None)
    return header, 8 + n


def _entry(name: str, info: Any, shard: Path, data_start: int, size: int, hf_dir: Path) -> TensorEntry:
    """One tensor of a shard's header, its shape and offsets checked against the file before anything is read
    or allocated: a header may claim any shape and any offsets."""
    def bad(why: str) -> ShardError:
        return ShardError(f"The weights file {shard.name} has a malformed entry for {name!r}: {why}. " + _fix(hf_dir))

    if not isinstance(info, dict):
        raise bad("not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str):
        raise bad("no dtype")
    if not isinstance(shape, list) or len(shape) > 8 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise bad("its shape is not a list of whole numbers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in offsets) or not 0 <= offsets[0] <= offsets[1]:
        raise bad("its data_offsets are not two increasing byte offsets")
    begin, end = offsets
    if data_start + end > size:
        raise ShardError(f"The weights file {shard.name} is cut short: tensor {name!r} runs to byte "
                         f"{data_start + end}, past the end of the file ({size} bytes). " + _fix(hf_dir))
    e = TensorEntry(name, shard, dtype, tuple(shape), data_start + begin, data_start + end)
    if dtype in _DTYPES and e.nbytes != e.n_elements * _DTYPES[dtype][0]:
        raise ShardError(f"The tensor {name!r} in {shard.name} holds {e.nbytes} bytes, not the "
                         f"{e.n_elements * _DTYPES[dtype][0]} its shape {list(e.shape)} needs. The file is corrupt.")
    return e


def _validate_with_safetensors(shard: Path, hf_dir: Path) -> None:
    """Let the safetensors library check the header too (overlaps, sizes, dtypes) where it is installed."""
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:  # pragma: no cover - safetensors is a dependency
        return
    try:
        with safe_open(str(shard), framework="numpy") as fh:
            fh.keys()
    except SafetensorError as exc:
        raise ShardError(f"The weights file {shard.name} is corrupt or cut short ({exc}). " + _fix(hf_dir)) from exc


def _index_entry(index: Path, hf_dir: Path, tensor: Any, name: Any) -> str:
    """A shard file name of the index, refused unless it names a file inside the model folder: an index that
    names `../elsewhere/x.safetensors` or `/home/me/x.safetensors` would read weights from anywhere."""
    where = f'{index}: "weight_map" entry {show(tensor)}'
    if not isinstance(name, str) or not name:
        raise FolderFileError(f"{where} is {show(name)}; write the name of a weights file in the model folder, "
                              'e.g. "model-00001-of-00002.safetensors".')
    pure = PurePosixPath(name)
    if "\x00" in name or pure.is_absolute() or PureWindowsPath(name).is_absolute() or ".." in pure.parts:
        raise FolderFileError(f"{where} names {show(name, 300)}, which is not a file inside the model folder {hf_dir}: "
                              "medcal reads weights only from inside the folder. Write the file's name alone, e.g. "
                              f'"{pure.name or "model-00001-of-00002.safetensors"}", and put the file in the folder.')
    why = outside_reason(hf_dir, hf_dir / name)
    if why is not None:
        raise FolderFileError(f"{where} names {show(name, 300)}, which {why}: medcal reads weights only from inside "
                              "the folder. Put the file itself in the folder (not a link to elsewhere).")
    return name


def _weight_map(hf_dir: Path) -> dict[str, str] | None:
    """The shard index's tensor -> file map, every file checked (None: the folder has no index)."""
    index = hf_dir / INDEX_NAME
    doc = read_json(hf_dir, index, "shard index")
    if doc is None:
        return None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict):
        raise FolderFileError(f'{index}: "weight_map" is {show(weight_map)}; it must map each tensor to its weights '
                              'file, e.g. {"model.norm.weight": "model-00001-of-00002.safetensors"}. ' + _fix(hf_dir))
    return {str(t): _index_entry(index, hf_dir, t, n) for t, n in weight_map.items()}


def shard_files(hf_dir: Path, weight_map: dict[str, str] | None = None) -> list[Path]:
    """The shards a checkpoint consists of, per its index when there is one; each inside the folder."""
    weight_map = _weight_map(hf_dir) if weight_map is None else weight_map
    if weight_map is not None:
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (hf_dir / n).is_file()]
        if missing:
            raise ShardError(f"The model folder {hf_dir} lacks {len(missing)} of the {len(names)} weight files "
                             f"its index names: {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}. "
                             + _fix(hf_dir))
        return [hf_dir / n for n in names]
    if (hf_dir / SINGLE_NAME).is_file():  # a regular file: opening a FIFO would wait for a writer
        return [check_inside(hf_dir, hf_dir / SINGLE_NAME, "weights file")]
    found = sorted(p for p in hf_dir.glob("*.safetensors") if p.is_file())
    if not found:
        raise ShardError(f"The model folder {hf_dir} holds no *.safetensors weights. medcal converts "
                         "safetensors checkpoints (PyTorch .bin files are not supported). " + _fix(hf_dir))
    return [check_inside(hf_dir, p, "weights file") for p in found]


class SafetensorsCheckpoint:
    """Every tensor of a checkpoint's shards, by name, with where its bytes lie."""

    def __init__(self, hf_dir: Path) -> None:
        self.hf_dir = Path(hf_dir)
        weight_map = _weight_map(self.hf_dir)
        self.shards = shard_files(self.hf_dir, weight_map)
        self.entries: dict[str, TensorEntry] = {}
        for shard in self.shards:
            header, data_start = _read_header(shard, self.hf_dir)
            size = shard.stat().st_size
            for name, info in header.items():
                if name in self.entries:
                    raise ShardError(f"The tensor {name!r} appears in two weight files ({self.entries[name].shard.name}"
                                     f" and {shard.name}). " + _fix(self.hf_dir))
                self.entries[name] = _entry(name, info, shard, data_start, size, self.hf_dir)
            _validate_with_safetensors(shard, self.hf_dir)
        if weight_map is not None:
            absent = [n for n in weight_map if n not in self.entries]
            if absent:
                raise ShardError(f"{len(absent)} tensors the index names are in none of the weight files "
                                 f"(first: {absent[0]!r}). " + _fix(self.hf_dir))

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return list(self.entries)

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.shards)


def check_dtype(entry: TensorEntry) -> None:
    if entry.dtype not in _DTYPES:
        raise ModelError(
            f"The tensor {entry.name!r} is stored as {entry.dtype}, which medcal cannot convert: only "
            "unquantized checkpoints (BF16, F16, F32) are supported. Use the original (unquantized) model."
        )
    width = _DTYPES[entry.dtype][0]
    if entry.nbytes != entry.n_elements * width:
        raise ShardError(f"The tensor {entry.name!r} in {entry.shard.name} holds {entry.nbytes} bytes, not the "
                         f"{entry.n_elements * width} its shape {list(entry.shape)} needs. The file is corrupt.")


def widen(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Raw words of a safetensors dtype to float32, exactly."""
    if dtype == "BF16":
        return bf16_to_f32(raw)
    if dtype == "F16":
        return f16_to_f32(raw)
    return raw.astype(np.float32)


def read_raw(entry: TensorEntry, row_start: int = 0, row_end: int | None = None) -> np.ndarray:
    """Rows [row_start, row_end) of a tensor as its raw words (shape (rows, *rest)); 1-D tensors read whole.

    The words are a read-only view of the shard mapped into memory (the mapping lasts as long as the array):
    the page cache's own pages, not a copy of them. read() copied every byte out of the page cache, which was a
    quarter of a 4B conversion's CPU time on 2 cores. The shard's size was checked against its header when it
    was opened (`SafetensorsCheckpoint`); a shard cut short by another program *while* it is converted ends the
    process (SIGBUS), as it does llama.cpp and safetensors, which map their files the same way."""
    check_dtype(entry)
    width, np_dtype = _DTYPES[entry.dtype]
    rows = entry.shape[0] if entry.shape else 1
    row_end = rows if row_end is None else row_end
    per_row = entry.n_elements // rows if rows else 0
    count = (row_end - row_start) * per_row
    rest = entry.shape[1:] if entry.shape else ()
    shape = (row_end - row_start, *rest) if entry.shape else ()
    if count == 0:
        return np.empty(shape, dtype=np_dtype)
    start = entry.start + row_start * per_row * width
    base = start - start % mmap.ALLOCATIONGRANULARITY
    try:
        with open(entry.shard, "rb") as fh:
            mm = mmap.mmap(fh.fileno(), start - base + count * width, access=mmap.ACCESS_READ, offset=base)
    except (OSError, ValueError) as exc:  # ValueError: the file is now shorter than the mapping asked for
        raise ShardError(f"The weights file {entry.shard.name} cannot be read at {entry.name!r} ({exc}). "
                         + _fix(entry.shard.parent)) from exc
    return np.frombuffer(mm, dtype=np_dtype, count=count, offset=start - base).reshape(shape)


def prefetch(entry: TensorEntry) -> None:
    """Ask the kernel to start reading a tensor's bytes now (posix_fadvise WILLNEED), so that the disk reads the
    next tensor while the current one is converted. Best effort: where it is not supported, nothing happens."""
    if not hasattr(os, "posix_fadvise"):
        return
    with contextlib.suppress(OSError), open(entry.shard, "rb") as fh:
        os.posix_fadvise(fh.fileno(), entry.start, entry.nbytes, os.POSIX_FADV_WILLNEED)


def row_slices(entry: TensorEntry, chunk_elements: int | None = None) -> Iterator[tuple[int, int]]:
    """(row_start, row_end) pairs covering a tensor with about `chunk_elements` values each."""
    chunk = chunk_elements or CHUNK_ELEMENTS
    rows = entry.shape[0] if entry.shape else 1
    per_row = max(1, entry.n_elements // rows) if rows else 1
    step = max(1, chunk // per_row)
    for start in range(0, rows, step):
        yield start, min(rows, start + step)
