"""The exact size of a GGUF that llama.cpp's quantizer writes, from its layout.

llama.cpp writes the header, the key/value metadata and the tensor infos, pads to `general.alignment`
(32 by default), then every tensor's data, each padded to the alignment (the last one too). A tensor's
data is `rows x row_size(type, ne0)`, where a row holds ne0 / block_size blocks of type_size bytes.
Which type a tensor takes changes only its data: the tensor info's type field has a fixed width. So the
file of a recipe is exactly: the header of a file the same run wrote (a candidate), with the metadata keys
that differ swapped, padded, plus the padded data of each tensor at its chosen type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np


def pad(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def type_named(name: str) -> gguf.GGMLQuantizationType:
    return gguf.GGMLQuantizationType[name.upper()]


def tensor_bytes(qtype: str, shape: tuple[int, ...]) -> int:
    """Bytes of a tensor of `shape` (ne0 first, as GGUF lists it) stored as `qtype`."""
    block, size = gguf.GGML_QUANT_SIZES[type_named(qtype)]
    ne0 = shape[0]
    if ne0 % block:
        raise ValueError(f"{qtype} needs rows of a multiple of {block} values, not {ne0}")
    rows = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    return rows * (ne0 // block) * size


def kv_bytes(key: str, value: int | str) -> int:
    """Bytes one metadata entry takes: key (u64 length + bytes), type (u32), value. llama.cpp stores the
    integers of its kv overrides as u32, strings as u64 length + bytes."""
    head = 8 + len(key.encode("utf-8")) + 4
    if isinstance(value, str):
        return head + 8 + len(value.encode("utf-8"))
    return head + 4


@dataclass(frozen=True)
class TensorSlot:
    name: str
    shape: tuple[int, ...]  # ne0 first
    type: str  # as written in the file read


@dataclass(frozen=True)
class Layout:
    """A written GGUF's header size (unpadded), alignment, and tensors in file order."""

    header: int
    alignment: int
    tensors: tuple[TensorSlot, ...]
    keys: Mapping[str, int]  # metadata key -> bytes it takes

    def size(self, types: Mapping[str, str], *, drop_keys: Iterable[str] = (),
             add_keys: Mapping[str, int | str] | None = None) -> int:
        """The file's size with the tensors in `types` (name -> type; the others as they are) and the
        metadata keys `drop_keys` removed and `add_keys` added."""
        header = self.header
        for k in drop_keys:
            header -= self.keys[k]
        for k, v in (add_keys or {}).items():
            header += kv_bytes(k, v)
        total = pad(header, self.alignment)
        for t in self.tensors:
            total += pad(tensor_bytes(types.get(t.name, t.type), t.shape), self.alignment)
        return total


def read_layout(path: Path) -> Layout:
    r = gguf.GGUFReader(path)
    end = max(t.field.offset + sum(int(p.nbytes) for p in t.field.parts) for t in r.tensors)
    end = max(end, *(f.offset + sum(int(p.nbytes) for p in f.parts) for f in r.fields.values()))
    keys = {name: sum(int(p.nbytes) for p in f.parts) for name, f in r.fields.items()
            if not name.startswith("GGUF.")}
    slots = tuple(TensorSlot(t.name, tuple(int(x) for x in t.shape), t.tensor_type.name) for t in r.tensors)
    return Layout(header=end, alignment=int(r.alignment), tensors=slots, keys=keys)
