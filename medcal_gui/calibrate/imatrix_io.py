"""Importance-matrix data: accumulate, merge, and read/write llama.cpp's two file formats.

Conventions follow llama.cpp's `tools/imatrix/imatrix.cpp` and `common/imatrix-loader.cpp` (0.3.36):

* GGUF (current): `general.type = "imatrix"`, `imatrix.datasets` (string array), `imatrix.chunk_count` and
  `imatrix.chunk_size` (u32); per weight, sorted by name, an F32 tensor `<weight>.in_sum2` with ggml shape
  (n_cols, n_mat) holding the raw sums of squared activations, then `<weight>.counts` with shape (1, n_mat)
  holding the number of activation rows per matrix (per expert for 3-D weights).
* legacy `.dat`: int32 n_entries; per entry int32 name length, name bytes, int32 ncall, int32 nval, nval
  float32 holding `(sum / count) * ncall` with ncall = ceil(max count / chunk_size); then int32 chunk count,
  int32 dataset length and the dataset name. Entries without any data are skipped; experts without data
  are stored as 1.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medcal_gui.core.errors import InputError
from medcal_gui.core.fsutil import atomic_path
from medcal_gui.gguf_files.gguf_header import GGUF_MAGIC, HeaderError, read_header

KV_DATASETS = "imatrix.datasets"
KV_CHUNK_COUNT = "imatrix.chunk_count"
KV_CHUNK_SIZE = "imatrix.chunk_size"
SUM_SUFFIX = ".in_sum2"
COUNT_SUFFIX = ".counts"


@dataclass
class ImatrixEntry:
    """Sums of squared activations for one weight: `in_sum2` is (n_mat, n_cols), `counts` is (n_mat,)."""

    in_sum2: np.ndarray
    counts: np.ndarray

    @classmethod
    def zeros(cls, n_mat: int, n_cols: int) -> ImatrixEntry:
        return cls(np.zeros((n_mat, n_cols), dtype=np.float32), np.zeros(n_mat, dtype=np.int64))

    @property
    def n_mat(self) -> int:
        return int(self.in_sum2.shape[0])

    @property
    def n_cols(self) -> int:
        return int(self.in_sum2.shape[1])

    def copy(self) -> ImatrixEntry:
        return ImatrixEntry(self.in_sum2.copy(), self.counts.copy())


@dataclass
class ImatrixData:
    entries: dict[str, ImatrixEntry] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0
    # False for a GGUF lacking the imatrix.* keys: llama-quantize refuses such a file.
    has_metadata: bool = True
    is_legacy: bool = False

    # ------------------------------------------------------------------ derived views

    def names(self) -> list[str]:
        return sorted(self.entries)

    def importance(self) -> dict[str, np.ndarray]:
        """Per weight, the flat float32 array llama-quantize builds from a GGUF imatrix: `in_sum2 / count`
        per matrix (per expert for 3-D weights), 1.0 for a matrix that never saw a token."""
        out: dict[str, np.ndarray] = {}
        for name in self.names():
            e = self.entries[name]
            counts = e.counts.astype(np.float32)
            vals = np.ones_like(e.in_sum2, dtype=np.float32)
            seen = counts > 0
            vals[seen] = e.in_sum2[seen] / counts[seen, None]
            out[name] = vals.reshape(-1)
        return out

    def max_count(self) -> int:
        return max((int(e.counts.max()) for e in self.entries.values() if e.counts.size), default=0)

    def update_chunk_count(self) -> None:
        """Chunks seen, as llama-imatrix computes it: the largest row count divided by the chunk size."""
        if self.chunk_size > 0:
            self.chunk_count = self.max_count() // self.chunk_size

    # ------------------------------------------------------------------ merging

    def merge(self, other: ImatrixData) -> None:
        """Add `other` into this one (llama-imatrix `--in-file`): sums and counts add, datasets append."""
        if not self.chunk_size:
            self.chunk_size = other.chunk_size
        for name, oe in other.entries.items():
            e = self.entries.get(name)
            if e is None:
                self.entries[name] = oe.copy()
                continue
            if e.in_sum2.size != oe.in_sum2.size:
                raise InputError(
                    f"Cannot merge importance matrices: the entry {name} has {oe.in_sum2.size} values in one "
                    f"and {e.in_sum2.size} in the other. They were computed on different models."
                )
            if e.counts.size == 1 and oe.counts.size > 1:  # broadcast a dense count over experts
                e.counts = np.full(oe.counts.size, e.counts[0], dtype=np.int64)
                e.in_sum2 = e.in_sum2.reshape(oe.in_sum2.shape)
            ocounts = oe.counts
            if ocounts.size == 1 and e.counts.size > 1:
                ocounts = np.full(e.counts.size, ocounts[0], dtype=np.int64)
            e.in_sum2 = (e.in_sum2 + oe.in_sum2.reshape(e.in_sum2.shape)).astype(np.float32)
            e.counts = e.counts + ocounts
        self.datasets.extend(other.datasets)
        self.has_metadata = self.has_metadata and other.has_metadata
        self.update_chunk_count()

    @classmethod
    def merged(cls, parts: Iterable[ImatrixData], chunk_size: int = 0) -> ImatrixData:
        out = cls(chunk_size=chunk_size)
        for p in parts:
            out.merge(p)
        return out

    # ------------------------------------------------------------------ saving

    def save(self, path: Path, fmt: str = "gguf", dataset: str | None = None) -> Path:
        """Write atomically as `gguf` or legacy `dat` (llama-imatrix `--output-format`)."""
        if not self.entries:
            raise InputError("The importance matrix is empty: no weight received any activation.")
        with atomic_path(Path(path)) as tmp:
            if fmt == "gguf":
                self._write_gguf(tmp)
            elif fmt == "dat":
                tmp.write_bytes(self.to_dat_bytes(dataset))
            else:
                raise InputError(f"Unknown imatrix format {fmt!r}: use gguf or dat.")
        return Path(path)

    def _write_gguf(self, path: Path) -> None:
        import gguf

        w = gguf.GGUFWriter(str(path), arch="")
        # llama-imatrix writes no general.architecture; GGUFWriter adds one on construction.
        for kv in w.kv_data:
            kv.pop(gguf.Keys.General.ARCHITECTURE, None)
        w.add_type("imatrix")
        w.add_array(KV_DATASETS, list(self.datasets))
        w.add_uint32(KV_CHUNK_COUNT, int(self.chunk_count))
        w.add_uint32(KV_CHUNK_SIZE, int(self.chunk_size))
        for name in self.names():
            e = self.entries[name]
            if e.in_sum2.size == 0 or e.counts.size == 0:
                continue
            w.add_tensor(name + SUM_SUFFIX, np.ascontiguousarray(e.in_sum2, dtype=np.float32))
            w.add_tensor(name + COUNT_SUFFIX, e.counts.astype(np.float32).reshape(e.n_mat, 1))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    def to_dat_bytes(self, dataset: str | None = None) -> bytes:
        chunk_size = self.chunk_size or 1
        parts: list[bytes] = []
        n = 0
        for name in self.names():
            e = self.entries[name]
            if e.counts.size == 0 or not (e.counts > 0).any():
                continue  # "entry has no data - skipping"
            n += 1
            ncall = (int(e.counts.max()) + chunk_size - 1) // chunk_size
            counts = e.counts.astype(np.float32)[:, None]
            vals = e.in_sum2.astype(np.float32).copy()
            zero = (counts[:, 0] == 0)
            vals[zero] = 1.0
            counts[zero] = 1.0
            tmp = (vals / counts) * np.float32(ncall)
            bname = name.encode("utf-8")
            parts.append(struct.pack("<i", len(bname)) + bname + struct.pack("<ii", ncall, tmp.size))
            parts.append(tmp.astype("<f4").tobytes())
        if dataset is None:
            dataset = self.datasets[-1] if self.datasets else ""
        bds = dataset.encode("utf-8")
        return (struct.pack("<i", n) + b"".join(parts) + struct.pack("<i", int(self.chunk_count))
                + struct.pack("<i", len(bds)) + bds)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, path: Path, chunk_size: int = 512) -> ImatrixData:
        """Read either format (detected from the first bytes). `chunk_size` rebuilds raw sums from a legacy
        file, which stores none (llama-imatrix uses its current context size the same way)."""
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
        except OSError as exc:
            raise InputError(f"Cannot read the importance matrix {path}: {exc.strerror or exc}.") from exc
        if head == GGUF_MAGIC:
            return cls._load_gguf(path)
        return cls._load_dat(path, chunk_size)

    @classmethod
    def _load_gguf(cls, path: Path) -> ImatrixData:
        # medcal's own header reader (gguf.GGUFReader took 45 ms for the demo model's imatrix, every quantize
        # waited for it), and the values through a memory map.
        try:
            header = read_header(path, check_types=False)  # F32 only, checked below
            with open(path, "rb") as fh:  # mapped: a model given by mistake is not read whole
                raw = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (HeaderError, OSError, ValueError) as exc:
            raise InputError(f"{path} is not a readable GGUF importance matrix: {exc}") from exc
        fields = header.fields
        data = cls()
        f = fields.get(KV_DATASETS)
        if f is not None:
            data.datasets = [str(x) for x in f] if isinstance(f, list) else [str(f)]
        cc, cs = fields.get(KV_CHUNK_COUNT), fields.get(KV_CHUNK_SIZE)
        data.chunk_count = int(cc) if isinstance(cc, int) else 0
        data.chunk_size = int(cs) if isinstance(cs, int) else 0
        data.has_metadata = f is not None and cc is not None and cs is not None
        sums: dict[str, np.ndarray] = {}
        counts: dict[str, np.ndarray] = {}
        for t in header.tensors:
            name = t.name
            if t.type_id != 0:  # GGML_TYPE_F32
                raise InputError(f"{path}: the imatrix tensor {name} is not F32.")
            if t.data_offset + 4 * t.n_elements > len(raw):
                raise InputError(f"{path}: the imatrix tensor {name} runs past the end of the file; the file "
                                 "is truncated.")
            arr = np.frombuffer(raw, dtype="<f4", count=t.n_elements, offset=t.data_offset)
            if name.endswith(SUM_SUFFIX):
                sums[name[: -len(SUM_SUFFIX)]] = arr
            elif name.endswith(COUNT_SUFFIX):
                counts[name[: -len(COUNT_SUFFIX)]] = arr
        if not sums and not counts:
            raise InputError(f"{path} holds no importance-matrix data (no *.in_sum2 tensors).")
        for name in sorted(set(sums) | set(counts)):
            if name not in sums or name not in counts:
                raise InputError(f"{path}: mismatched sums and counts for {name}; the file is damaged.")
            c = np.rint(counts[name].reshape(-1)).astype(np.int64)
            s = sums[name].reshape(-1)
            if c.size == 0 or s.size % c.size:
                raise InputError(f"{path}: {name} has {s.size} sums for {c.size} counts; "
                                 "the file is damaged.")
            data.entries[name] = ImatrixEntry(s.reshape(c.size, -1).astype(np.float32, copy=True), c)
        return data

    @classmethod
    def _load_dat(cls, path: Path, chunk_size: int) -> ImatrixData:
        raw = path.read_bytes()
        bad = InputError(f"{path} is neither a GGUF nor a legacy .dat importance matrix "
                         "(or it is truncated).")
        pos = 0

        def take(fmt: str) -> tuple[int, ...]:
            nonlocal pos
            size = struct.calcsize(fmt)
            if pos + size > len(raw):
                raise bad
            vals = struct.unpack_from(fmt, raw, pos)
            pos += size
            return vals

        (n_entries,) = take("<i")
        if n_entries < 1 or n_entries > 1_000_000:
            raise bad
        data = cls(chunk_size=chunk_size, is_legacy=True)
        for _ in range(n_entries):
            (ln,) = take("<i")
            if ln < 0 or pos + ln > len(raw):
                raise bad
            name = raw[pos: pos + ln].decode("utf-8", "replace")
            pos += ln
            ncall, nval = take("<ii")
            if nval < 1 or pos + 4 * nval > len(raw):
                raise bad
            vals = np.frombuffer(raw, dtype="<f4", count=nval, offset=pos).astype(np.float32)
            pos += 4 * nval
            # Legacy sums hold (raw/count)*ncall and counts {ncall}: rebuild raw form as llama-imatrix does.
            data.entries[name] = ImatrixEntry(
                (vals * np.float32(chunk_size)).reshape(1, nval).astype(np.float32),
                np.array([ncall * chunk_size], dtype=np.int64),
            )
        chunk_count = 0
        if pos + 4 <= len(raw):
            (chunk_count,) = take("<i")
            if pos + 4 <= len(raw):
                (ln,) = take("<i")
                if 0 < ln <= len(raw) - pos:
                    data.datasets.append(raw[pos: pos + ln].decode("utf-8", "replace"))
        data.chunk_count = chunk_count
        return data
