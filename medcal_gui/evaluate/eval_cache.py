"""On-disk cache of the base model's pass of an evaluation, so several quants compare against one base pass.

An entry is a folder `<user cache>/eval/<key>/` named by a digest of what determines the base's output:
the base file's sha256, the text's sha256, n_ctx, whether special tokens were parsed, the chunk limit, the
cutoff, the cap on kept entries and this format's version. It holds `meta.json`, `tokens.npy` (the evaluated
tokens), `rows.npz` (per scored position: correct-token log-prob, top token, tail mass, kept count, floor) and
the kept entries as raw `ids.i32` / `lps.f32`, which are appended chunk by chunk while the base runs and
memory-mapped when read: at most `eval_math.max_bytes_per_token()` (62.5 KB) per scored token, whatever the
vocabulary, and the free space for that is checked before the base pass starts.
A folder is written under a temporary name (with the writer's process id) and renamed when complete: a
cancelled base pass leaves nothing, and the folders of runs that were killed are pruned by the next one.
The file hashes are remembered by (path, size, mtime) so a 500 MB base is not re-hashed on every run.
Old entries are pruned past `MEDCAL_EVAL_CACHE_MB` (default 4096 MB), least recently used first; the folder
is `MEDCAL_EVAL_CACHE` when set, else `eval/` in the user cache. `clear_cache` (`medcal cache --clear`, the
GUI's menu) empties it.
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

from medcal_gui.core.errors import OutputError
from medcal_gui.core.fsutil import TMP_PREFIX, check_free_space, ensure_dir
from medcal_gui.core.resources import user_cache_dir
from medcal_gui.evaluate.eval_math import MAX_KEPT, BaseRows, max_bytes_per_token

log = logging.getLogger(__name__)

FORMAT = 3
_ORPHAN_AGE_S = 24 * 3600  # a temporary entry with no process id is an orphan after a day


def eval_cache_dir() -> Path:
    override = os.environ.get("MEDCAL_EVAL_CACHE")
    return Path(override) if override else user_cache_dir() / "eval"


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
    max_kept: int = MAX_KEPT

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
            self.tgt_lp, self.top, self.tail, self.counts, self.floor = (
                z["tgt_lp"], z["top"], z["tail"], z["counts"], z["floor"])
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
                        np.asarray(self.ids[lo:hi]), np.asarray(self.lps[lo:hi]), self.floor[a:b])

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


def _disk_full(root: Path, exc: OSError) -> OutputError:
    return OutputError(f"The disk holding the evaluation cache {root} is full ({exc.strerror or exc}). Free "
                       "some space, clear the cache (`medcal cache --clear`) or set MEDCAL_EVAL_CACHE to a "
                       "folder on another disk.")


class BaseCacheWriter:
    """Streams a base pass into a temporary folder; `commit` renames it into place, `discard` removes it."""

    def __init__(self, key: BaseKey, tokens: np.ndarray, rows_per_chunk: int, n_chunks: int,
                 meta: dict[str, Any]) -> None:
        self.key = key
        root = eval_cache_dir()
        ensure_dir(root)
        prune_orphans()
        n_vocab = int(meta.get("n_vocab", key.max_kept))
        needed = n_chunks * rows_per_chunk * max_bytes_per_token(min(key.max_kept, n_vocab)) + 4 * len(tokens)
        check_free_space(root, needed, "the evaluation cache (the base pass)")
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=root))
        self._ids: BinaryIO | None = None
        self._lps: BinaryIO | None = None
        try:
            np.save(self.tmp / "tokens.npy", np.asarray(tokens, dtype=np.int32))
            self._ids = open(self.tmp / "ids.i32", "wb")  # noqa: SIM115 - closed in commit/discard
            self._lps = open(self.tmp / "lps.f32", "wb")  # noqa: SIM115
        except OSError as exc:
            self.discard()
            raise _disk_full(root, exc) from None
        self._small: list[BaseRows] = []
        self.meta = {"format": FORMAT, **asdict(key), "rows_per_chunk": rows_per_chunk,
                     "n_chunks": n_chunks, **meta}

    def add(self, rows: BaseRows) -> None:
        assert self._ids is not None and self._lps is not None
        try:
            self._ids.write(np.ascontiguousarray(rows.ids, dtype=np.int32).tobytes())
            self._lps.write(np.ascontiguousarray(rows.lps, dtype=np.float32).tobytes())
        except OSError as exc:
            raise _disk_full(eval_cache_dir(), exc) from None
        self._small.append(BaseRows(rows.tgt_lp, rows.top, rows.tail, rows.counts,
                                    np.empty(0, np.int32), np.empty(0, np.float32), rows.floor))

    def commit(self, extra_meta: dict[str, Any]) -> BaseCache:
        s = self._small
        try:
            for fh in (self._ids, self._lps):
                if fh is not None:
                    fh.close()
            np.savez(self.tmp / "rows.npz", tgt_lp=np.concatenate([r.tgt_lp for r in s]),
                     top=np.concatenate([r.top for r in s]), tail=np.concatenate([r.tail for r in s]),
                     counts=np.concatenate([r.counts for r in s]), floor=np.concatenate([r.floor for r in s]))
            self.meta.update(extra_meta, created=time.time())
            (self.tmp / "meta.json").write_text(json.dumps(self.meta, indent=1), encoding="utf-8")
        except OSError as exc:
            raise _disk_full(eval_cache_dir(), exc) from None
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
                if fh is not None:
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else
    return True


def _writer_pid(name: str) -> int | None:
    head = name[len(TMP_PREFIX):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def prune_orphans(now: float | None = None) -> list[Path]:
    """Remove the temporary folders and files of runs that were killed (their process is gone, or, with no
    process id in the name, they are over a day old). Returns what was removed."""
    root = eval_cache_dir()
    now = time.time() if now is None else now
    removed: list[Path] = []
    for p in root.glob(TMP_PREFIX + "*") if root.is_dir() else []:
        pid = _writer_pid(p.name)
        try:
            orphan = (not _pid_alive(pid)) if pid is not None else now - p.stat().st_mtime > _ORPHAN_AGE_S
        except OSError:
            continue
        if pid == os.getpid() or not orphan:
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        removed.append(p)
    if removed:
        log.info("removed %d temporary evaluation cache folder(s) left by killed runs", len(removed))
    return removed


@dataclass(frozen=True)
class CacheUsage:
    folder: Path
    entries: int
    bytes: int


def cache_usage() -> CacheUsage:
    """How many complete entries the evaluation cache holds and their size on disk."""
    root = eval_cache_dir()
    n = size = 0
    for d in root.iterdir() if root.is_dir() else []:
        if d.is_dir() and (d / "meta.json").is_file():
            n += 1
            with contextlib.suppress(OSError):
                size += _entry_bytes(d)
    return CacheUsage(root, n, size)


def clear_cache() -> int:
    """Remove every evaluation cache entry, the remembered file hashes and the folders of killed runs
    (never a folder a running evaluation is writing); returns the bytes freed. The GUI's menu calls this."""
    root = eval_cache_dir()
    freed = 0
    prune_orphans(now=float("inf"))
    for d in root.iterdir() if root.is_dir() else []:
        if d.name.startswith(TMP_PREFIX):
            continue  # a live writer's (orphans went above)
        with contextlib.suppress(OSError):
            freed += _entry_bytes(d) if d.is_dir() else d.stat().st_size
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                d.unlink()
    return freed
