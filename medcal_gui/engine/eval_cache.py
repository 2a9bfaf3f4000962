"""On-disk cache of the base model's pass of an evaluation, so several quants compare against one base pass.

An entry is a folder `<user cache>/eval/<key>/` named by a digest of what determines the base's output:
the base file's sha256, the text's sha256, n_ctx, whether special tokens were parsed, the chunk limit, the
cutoff and this format's version. It holds `meta.json`, `tokens.npy` (the evaluated tokens), `rows.npz`
(per scored position: correct-token log-prob, top token, tail mass, kept count) and the kept entries as raw
`ids.i32` / `lps.f32`, which are appended chunk by chunk while the base runs and memory-mapped when read.
A folder is written under a temporary name and renamed when complete: a cancelled base pass leaves nothing.
The file hashes are remembered by (path, size, mtime) so a 500 MB base is not re-hashed on every run.
Old entries are pruned past `MEDCAL_EVAL_CACHE_MB` (default 4096 MB), least recently used first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from medcal_gui.engine.eval_math import BaseRows
from medcal_gui.fsutil import TMP_PREFIX, ensure_dir, sha256_file
from medcal_gui.resources import user_cache_dir

log = logging.getLogger(__name__)

FORMAT = 2
_HASHES = "file_hashes.json"


def eval_cache_dir() -> Path:
    return user_cache_dir() / "eval"


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (resolved path, size, mtime_ns) in the eval cache folder."""
    path = Path(path).resolve()
    st = path.stat()
    memo_key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = eval_cache_dir() / _HASHES
    try:
        memo = json.loads(memo_file.read_text(encoding="utf-8"))
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    if memo_key in memo:
        return str(memo[memo_key])
    digest = sha256_file(path)
    memo = {k: v for k, v in memo.items() if not k.startswith(f"{path}|")}
    memo[memo_key] = digest
    with contextlib.suppress(OSError):
        ensure_dir(memo_file.parent)
        tmp = memo_file.with_name(f"{TMP_PREFIX}{os.getpid()}-{_HASHES}")
        tmp.write_text(json.dumps(memo, indent=0), encoding="utf-8")
        os.replace(tmp, memo_file)
    return digest


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class BaseKey:
    base_sha256: str
    text_sha256: str
    n_ctx: int
    parse_special: bool
    n_chunks: int | None
    cutoff: float

    def digest(self) -> str:
        raw = json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


class BaseCache:
    """A complete cache entry, opened for reading (entries memory-mapped)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta: dict[str, Any] = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"cache format {self.meta.get('format')} is not {FORMAT}")
        self.tokens: np.ndarray = np.load(folder / "tokens.npy")
        with np.load(folder / "rows.npz") as z:
            self.tgt_lp, self.top, self.tail, self.counts = (z["tgt_lp"], z["top"], z["tail"], z["counts"])
        n_entries = int(self.counts.sum(dtype=np.int64))
        self.ids: np.ndarray = _memmap(folder / "ids.i32", np.int32, n_entries)
        self.lps: np.ndarray = _memmap(folder / "lps.f32", np.float32, n_entries)
        self.offsets = np.concatenate(([0], np.cumsum(self.counts, dtype=np.int64)))
        self.rows_per_chunk = int(self.meta["rows_per_chunk"])
        self.n_chunks = int(self.meta["n_chunks"])

    def chunk(self, i: int) -> BaseRows:
        a, b = i * self.rows_per_chunk, (i + 1) * self.rows_per_chunk
        lo, hi = int(self.offsets[a]), int(self.offsets[b])
        return BaseRows(self.tgt_lp[a:b], self.top[a:b], self.tail[a:b], self.counts[a:b],
                        np.asarray(self.ids[lo:hi]), np.asarray(self.lps[lo:hi]))

    def touch(self) -> None:
        with contextlib.suppress(OSError):
            os.utime(self.folder / "meta.json")


def _memmap(path: Path, dtype: type[np.generic], n: int) -> np.ndarray:
    if n == 0:
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def open_cached(key: BaseKey) -> BaseCache | None:
    folder = eval_cache_dir() / key.digest()
    if not (folder / "meta.json").is_file():
        return None
    try:
        cache = BaseCache(folder)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring a damaged evaluation cache entry %s (%s)", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    cache.touch()
    return cache


class BaseCacheWriter:
    """Streams a base pass into a temporary folder; `commit` renames it into place, `discard` removes it."""

    def __init__(self, key: BaseKey, tokens: np.ndarray, rows_per_chunk: int, n_chunks: int,
                 meta: dict[str, Any]) -> None:
        self.key = key
        root = eval_cache_dir()
        ensure_dir(root)
        self.tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=root))
        np.save(self.tmp / "tokens.npy", np.asarray(tokens, dtype=np.int32))
        self._ids: BinaryIO = open(self.tmp / "ids.i32", "wb")  # noqa: SIM115 - closed in commit/discard
        self._lps: BinaryIO = open(self.tmp / "lps.f32", "wb")  # noqa: SIM115
        self._small: list[BaseRows] = []
        self.meta = {"format": FORMAT, **asdict(key), "rows_per_chunk": rows_per_chunk,
                     "n_chunks": n_chunks, **meta}

    def add(self, rows: BaseRows) -> None:
        self._ids.write(np.ascontiguousarray(rows.ids, dtype=np.int32).tobytes())
        self._lps.write(np.ascontiguousarray(rows.lps, dtype=np.float32).tobytes())
        self._small.append(BaseRows(rows.tgt_lp, rows.top, rows.tail, rows.counts,
                                    np.empty(0, np.int32), np.empty(0, np.float32)))

    def commit(self, extra_meta: dict[str, Any]) -> BaseCache:
        self._ids.close()
        self._lps.close()
        s = self._small
        np.savez(self.tmp / "rows.npz", tgt_lp=np.concatenate([r.tgt_lp for r in s]),
                 top=np.concatenate([r.top for r in s]), tail=np.concatenate([r.tail for r in s]),
                 counts=np.concatenate([r.counts for r in s]))
        self.meta.update(extra_meta, created=time.time())
        (self.tmp / "meta.json").write_text(json.dumps(self.meta, indent=1), encoding="utf-8")
        final = eval_cache_dir() / self.key.digest()
        try:
            os.rename(self.tmp, final)
        except OSError:
            # another run finished the same entry first (or a damaged one is in the way): replace it
            shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(self.tmp, final)
            except OSError:
                shutil.rmtree(self.tmp, ignore_errors=True)
        prune(keep=final)
        return BaseCache(final)

    def discard(self) -> None:
        for fh in (self._ids, self._lps):
            with contextlib.suppress(OSError):
                fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _entry_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def cache_limit_bytes() -> int:
    try:
        return int(float(os.environ.get("MEDCAL_EVAL_CACHE_MB", "4096")) * 1e6)
    except ValueError:
        return int(4096e6)


def prune(keep: Path | None = None, limit: int | None = None) -> None:
    """Remove least recently used entries until the cache fits `limit` bytes (`keep` is never removed)."""
    limit = cache_limit_bytes() if limit is None else limit
    root = eval_cache_dir()
    entries = []
    for d in root.iterdir() if root.is_dir() else []:
        meta = d / "meta.json"
        if d.is_dir() and meta.is_file():
            with contextlib.suppress(OSError):
                entries.append((meta.stat().st_mtime, _entry_bytes(d), d))
    total = sum(e[1] for e in entries)
    for _, size, d in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if keep is not None and d == keep:
            continue
        shutil.rmtree(d, ignore_errors=True)
        total -= size


def clear_cache() -> int:
    """Remove every evaluation cache entry; returns the bytes freed."""
    root = eval_cache_dir()
    freed = 0
    for d in root.iterdir() if root.is_dir() else []:
        if d.is_dir():
            with contextlib.suppress(OSError):
                freed += _entry_bytes(d)
            shutil.rmtree(d, ignore_errors=True)
    return freed
