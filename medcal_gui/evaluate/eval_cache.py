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
Old entries are pruned past `MEDCAL_EVAL_CACHE_MB` (default 4096 MB), least recently used first; the folder
is `MEDCAL_EVAL_CACHE` when set, else `eval/` in the user cache. `clear_cache` (`medcal cache --clear`, the
GUI's menu) empties it.
The cache deletes only what it wrote (core/ownership.py's rule): an entry, and the temporary folder it is
written in, carries the ENTRY_KIND marker; removal unlinks the entry's own file names, then the emptied
folder. Entries written before markers are recognised by their exact layout (a 32-hex-digit folder holding
only the five files, meta.json of format 1-3), the old `file_hashes.json` likewise. A folder holding anything
else is refused, naming it, by `medcal cache`, `--clear` and the window's menu; eval then warns and runs its
base pass in a temporary folder of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from medcal_gui.core.errors import OutputError
from medcal_gui.core.fsutil import TMP_PREFIX, check_free_space, ensure_dir, is_disk_full, stale_partials
from medcal_gui.core.ownership import MARKER, is_marked, mark_folder
from medcal_gui.core.resources import user_cache_dir
from medcal_gui.core.units import finite_float
from medcal_gui.evaluate.eval_math import MAX_KEPT, BaseRows, max_bytes_per_token

log = logging.getLogger(__name__)

FORMAT = 3
_ORPHAN_AGE_S = 24 * 3600  # a temporary entry with no process id is an orphan after a day
ROOT_KIND = "evaluation cache"
ENTRY_KIND = "evaluation cache entry"
ENTRY_FILES = frozenset({"meta.json", "tokens.npy", "rows.npz", "ids.i32", "lps.f32"})
_LEGACY_HASHES = "file_hashes.json"  # the hash memo kept here up to the memo's move to core/file_hashes.py
_DIGEST = re.compile(r"^[0-9a-f]{32}$")
_TMP_PID = re.compile(r"^" + re.escape(TMP_PREFIX) + r"\d+-")
DEFAULT_LIMIT_MB = 4096


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


# --- what is the cache's own: the only things any path here ever deletes ---------------------------------

def _regular_files(folder: Path, allowed: frozenset[str]) -> list[str] | None:
    """The names in `folder` when every one is a plain file (no link) named in `allowed`; else None."""
    try:
        names = os.listdir(folder)
        if not all((n in allowed or _is_marker_tmp(n)) and stat.S_ISREG(os.lstat(folder / n).st_mode)
                   for n in names):
            return None
    except OSError:
        return None
    return names


def _is_marker_tmp(name: str) -> bool:
    """ownership.mark_folder's temporary file, there for an instant while a marker is written."""
    return name.startswith(MARKER + ".") and name.endswith(".tmp")


def _json(p: Path) -> object:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _legacy_meta(meta: Path) -> bool:
    data = _json(meta)
    fmt = data.get("format") if isinstance(data, dict) else None
    return isinstance(fmt, int) and 1 <= fmt <= 3


def is_entry(folder: Path) -> bool:
    """Whether `folder` (not a link) is an entry, complete or being written, that this cache wrote: its marker
    and nothing but an entry's files; or, for entries written before markers, exactly their old layout."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    if is_marked(folder, ENTRY_KIND):
        return _regular_files(folder, ENTRY_FILES | {MARKER}) is not None
    names = _regular_files(folder, ENTRY_FILES)
    if not names:
        return False
    if _TMP_PID.match(folder.name):  # an old writer's temporary folder: a part of the layout
        return True
    return bool(_DIGEST.match(folder.name)) and "meta.json" in names and _legacy_meta(folder / "meta.json")


def _is_own_temp(p: Path) -> bool:
    """A temporary name of ours: an entry being written (or an empty folder a writer had just made), an empty
    probe file (fsutil.ensure_dir), or an old writer's temporary hash memo."""
    try:
        st = os.lstat(p)
    except OSError:
        return False
    if stat.S_ISDIR(st.st_mode):
        return is_entry(p) or not os.listdir(p)
    return stat.S_ISREG(st.st_mode) and (st.st_size == 0 or p.name.endswith("-" + _LEGACY_HASHES))


def _is_legacy_hashes(p: Path) -> bool:
    data = None if p.is_symlink() or not p.is_file() else _json(p)
    return isinstance(data, dict) and all(isinstance(v, str) and len(v) == 64 for v in data.values())


def _is_own(root: Path, name: str) -> bool:
    p = root / name
    if name == MARKER:
        return is_marked(root, ROOT_KIND)
    if _is_marker_tmp(name):
        return not p.is_symlink() and p.is_file()
    if name.startswith(TMP_PREFIX):
        return _is_own_temp(p)
    if name == _LEGACY_HASHES:
        return _is_legacy_hashes(p)
    return bool(_DIGEST.match(name)) and is_entry(p)


def foreign_items(root: Path) -> list[str]:
    """What `root` holds that this cache did not write (folders with a trailing /), sorted."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise OutputError(f"Cannot read the evaluation cache folder {root}: {exc.strerror or exc}. Set "
                          "MEDCAL_EVAL_CACHE to a folder of its own.") from None
    return [n + ("/" if (root / n).is_dir() and not (root / n).is_symlink() else "")
            for n in names if not _is_own(root, n)]


def _names(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_cache_folder(root: Path | None = None) -> Path:
    """The cache folder when it is usable as the cache's own (it may not exist yet). An OutputError, in one
    line, when it is not a folder or holds anything the cache did not write, naming what is there: nothing
    in it is read, written or deleted then."""
    root = eval_cache_dir() if root is None else root
    probe = root
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == root else f"cannot be made: {probe} is a file"
        raise OutputError(f"The evaluation cache folder {root} {where}, not a folder. Move it away, or set "
                          "MEDCAL_EVAL_CACHE to a folder of its own.")
    foreign = foreign_items(root)
    if foreign:
        raise OutputError(f"The evaluation cache folder {root} holds files that medcal did not write "
                          f"({_names(foreign)}): medcal keeps its cache in a folder of its own and never "
                          "deletes what it did not write. Move them out, or set MEDCAL_EVAL_CACHE to an empty "
                          "or new folder.")
    return root


def claim_cache_folder() -> Path:
    """`check_cache_folder`, then the folder created, marked as the cache's (when new or empty) and proven
    writable; an OutputError naming the folder and why otherwise."""
    root = check_cache_folder()
    ensure_dir(root)  # an OutputError naming the folder when it cannot be created or written
    try:
        if not os.listdir(root):  # a folder holding entries written before markers stays unmarked
            mark_folder(root, ROOT_KIND)
    except OutputError:
        pass  # a run beside this one wrote into it first
    except OSError as exc:
        raise OutputError(f"Cannot write to the evaluation cache folder {root}: {exc.strerror or exc}.") from None
    return root


def _remove_entry(folder: Path) -> bool:
    """Remove an entry of ours by its own file names, then the folder if that left it empty (anything else
    found in it stays, and so does the folder). True when the folder is gone."""
    if not is_entry(folder):
        return False
    for name in (*ENTRY_FILES, MARKER, *(n for n in os.listdir(folder) if _is_marker_tmp(n))):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    try:
        folder.rmdir()
    except OSError as exc:
        log.warning("left the evaluation cache folder %s in place (%s)", folder, exc.strerror or exc)
        return False
    return True


# --- entries --------------------------------------------------------------------------------------------

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


def open_cached(key: BaseKey, root: Path | None = None) -> BaseCache | None:
    folder = (eval_cache_dir() if root is None else root) / key.digest()
    if not (folder / "meta.json").is_file() or not is_entry(folder):
        return None
    try:
        cache = BaseCache(folder)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring a damaged evaluation cache entry %s (%s)", folder, exc)
        _remove_entry(folder)
        return None
    cache.touch()
    return cache


def _write_failed(root: Path, exc: OSError) -> OutputError:
    if is_disk_full(exc):
        return OutputError(f"The disk holding the evaluation cache {root} is full ({exc.strerror or exc}). "
                           "Free some space, clear the cache (`medcal cache --clear`) or set MEDCAL_EVAL_CACHE "
                           "to a folder on another disk.")
    return OutputError(f"Cannot write the evaluation cache {root} ({exc.strerror or exc}). Set "
                       "MEDCAL_EVAL_CACHE to a folder you can write to.")


class BaseCacheWriter:
    """Streams a base pass into a temporary folder; `commit` renames it into place, `discard` removes it.

    `root` is the cache folder (claimed by `claim_cache_folder`), or with `shared=False` a private folder of the
    caller's: then no other entry is looked at, pruned or evicted."""

    def __init__(self, key: BaseKey, tokens: np.ndarray, rows_per_chunk: int, n_chunks: int,
                 meta: dict[str, Any], root: Path | None = None, shared: bool = True) -> None:
        self.key = key
        self.root = root = claim_cache_folder() if root is None else root
        self.shared = shared
        if shared:
            prune_orphans(root)
        n_vocab = int(meta.get("n_vocab", key.max_kept))
        needed = n_chunks * rows_per_chunk * max_bytes_per_token(min(key.max_kept, n_vocab)) + 4 * len(tokens)
        check_free_space(root, needed, "the evaluation cache (the base pass)")
        self._ids: BinaryIO | None = None
        self._lps: BinaryIO | None = None
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=root))
        except OSError as exc:
            raise _write_failed(root, exc) from None
        try:
            mark_folder(self.tmp, ENTRY_KIND)  # first: a folder with the marker is one clean-up may remove
            np.save(self.tmp / "tokens.npy", np.asarray(tokens, dtype=np.int32))
            self._ids = open(self.tmp / "ids.i32", "wb")  # noqa: SIM115 - closed in commit/discard
            self._lps = open(self.tmp / "lps.f32", "wb")  # noqa: SIM115
        except OSError as exc:
            self.discard()
            raise _write_failed(root, exc) from None
        self._small: list[BaseRows] = []
        self.meta = {"format": FORMAT, **asdict(key), "rows_per_chunk": rows_per_chunk,
                     "n_chunks": n_chunks, **meta}

    def add(self, rows: BaseRows) -> None:
        assert self._ids is not None and self._lps is not None
        try:
            self._ids.write(np.ascontiguousarray(rows.ids, dtype=np.int32).tobytes())
            self._lps.write(np.ascontiguousarray(rows.lps, dtype=np.float32).tobytes())
        except OSError as exc:
            raise _write_failed(self.root, exc) from None
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
            raise _write_failed(self.root, exc) from None
        final = self.root / self.key.digest()
        try:
            os.rename(self.tmp, final)
        except OSError:
            # another run finished the same entry first (or a damaged one of ours is in the way): replace it
            _remove_entry(final)
            try:
                os.rename(self.tmp, final)
            except OSError:
                _remove_entry(self.tmp)
                if not is_entry(final):
                    raise OutputError(f"Cannot write the evaluation cache entry {final}: something that is "
                                      "not medcal's is in the way.") from None
        if self.shared:
            prune(keep=final, root=self.root)
        return BaseCache(final)

    def discard(self) -> None:
        for fh in (self._ids, self._lps):
            with contextlib.suppress(OSError):
                if fh is not None:
                    fh.close()
        if not _remove_entry(self.tmp):
            with contextlib.suppress(OSError):
                self.tmp.rmdir()  # made, but not yet marked


def _entry_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def cache_limit_bytes() -> int:
    """MEDCAL_EVAL_CACHE_MB in bytes (4096 MB when unset); an InputError naming the variable for anything but a
    finite, non-negative number of megabytes (nan, inf, 1e400, -1, "lots")."""
    raw = os.environ.get("MEDCAL_EVAL_CACHE_MB", "").strip()
    if not raw:
        return DEFAULT_LIMIT_MB * 10**6
    mb = finite_float(raw, "MEDCAL_EVAL_CACHE_MB (the evaluation cache's size limit in MB, e.g. 4096)",
                      low=0, high=1e9)
    return int(mb * 1e6)


def _entries(root: Path) -> list[Path]:
    """The complete entries of ours in `root`."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    return [root / n for n in names if _DIGEST.match(n) and (root / n / "meta.json").is_file() and is_entry(root / n)]


def prune(keep: Path | None = None, limit: int | None = None, root: Path | None = None) -> None:
    """Remove least recently used entries until the cache fits `limit` bytes (`keep` is never removed)."""
    limit = cache_limit_bytes() if limit is None else limit
    root = eval_cache_dir() if root is None else root
    entries = []
    for d in _entries(root):
        with contextlib.suppress(OSError):
            entries.append(((d / "meta.json").stat().st_mtime, _entry_bytes(d), d))
    total = sum(e[1] for e in entries)
    for _, size, d in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if keep is not None and d == keep:
            continue
        if _remove_entry(d):
            total -= size


def prune_orphans(root: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the temporary folders and files of runs that were killed (their process is gone, or, with no
    process id in the name, they are over a day old), when they are the cache's own (`_is_own_temp`).
    Returns what was removed."""
    root = eval_cache_dir() if root is None else root
    now = time.time() if now is None else now
    removed: list[Path] = []
    dead = set(stale_partials(root))  # named with a process id that is gone (never this process's)
    for p in root.glob(TMP_PREFIX + "*") if root.is_dir() else []:
        try:
            orphan = p in dead or (not _TMP_PID.match(p.name) and now - p.lstat().st_mtime > _ORPHAN_AGE_S)
        except OSError:
            continue
        if not orphan or not _is_own_temp(p):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                if not _remove_entry(p):
                    p.rmdir()  # the empty folder of a writer killed before it marked it
            else:
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
    limit: int


def cache_usage() -> CacheUsage:
    """How many complete entries the evaluation cache holds and their size on disk; an OutputError when the
    folder is not the cache's own (`check_cache_folder`), an InputError for a bad MEDCAL_EVAL_CACHE_MB."""
    limit = cache_limit_bytes()
    root = check_cache_folder()
    n = size = 0
    for d in _entries(root):
        n += 1
        with contextlib.suppress(OSError):
            size += _entry_bytes(d)
    return CacheUsage(root, n, size, limit)


def clear_cache() -> int:
    """Remove every entry this cache wrote, its old hash memo and the folders of killed runs (never a folder a
    running evaluation is writing); returns the bytes freed. A folder holding anything else is refused first
    (`check_cache_folder`), with nothing removed. The GUI's menu calls this."""
    root = check_cache_folder()
    freed = 0
    prune_orphans(root, now=float("inf"))
    for d in _entries(root):
        with contextlib.suppress(OSError):
            size = _entry_bytes(d)
            if _remove_entry(d):
                freed += size
    legacy = root / _LEGACY_HASHES
    if _is_legacy_hashes(legacy):
        with contextlib.suppress(OSError):
            freed += legacy.stat().st_size
            legacy.unlink()
    with contextlib.suppress(OSError):
        if os.listdir(root) == [MARKER] and is_marked(root, ROOT_KIND):
            (root / MARKER).unlink()  # emptied: the folder is left as an empty folder, as it was before use
    return freed
