"""The sha256 of a file, remembered per file version, for every part of the app that needs one.

A version is (resolved path, size, mtime in ns, inode): a file rewritten in place or replaced by another gets a
new key, so a remembered digest is never stale. The memo is a cache only: a missing or broken memo means hashing
again, never an error. Quantizing the same base again (every rung of a ladder), evaluating against it, a recipe
and the ladder's records all find its digest here instead of reading gigabytes again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from medcal_gui.core.errors import MedcalError
from medcal_gui.core.fsutil import sha256_file, write_text_atomic
from medcal_gui.core.resources import user_cache_dir

MEMO_NAME = "sha256-cache.json"
KEEP = 256  # file versions remembered (the newest)


def memo_path() -> Path:
    return user_cache_dir() / MEMO_NAME


def version_key(path: Path) -> str:
    p = Path(path).resolve()
    st = p.stat()
    return f"{p}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"


def _memo() -> dict[str, str]:
    try:
        memo = json.loads(memo_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in memo.items()} if isinstance(memo, dict) else {}


def known_sha256(path: Path) -> str | None:
    """The digest recorded for this very version of `path` by an earlier run, if any."""
    try:
        v = _memo().get(version_key(path))
    except OSError:
        return None
    return v if v is not None and len(v) == 64 else None


def remember_sha256(path: Path, digest: str) -> None:
    """Record `digest` for this version of `path` (and forget the file's older versions)."""
    try:
        key = version_key(path)
        stem = key.rsplit("|", 3)[0] + "|"
        memo = {k: v for k, v in _memo().items() if not k.startswith(stem)}
        memo[key] = digest
        write_text_atomic(memo_path(), json.dumps(dict(list(memo.items())[-KEEP:]), indent=0) + "\n")
    except (OSError, MedcalError):
        pass  # a cache only


def file_sha256(path: Path, compute: Callable[[Path], str] = sha256_file) -> str:
    """sha256 of `path`: remembered, or computed with `compute` (which may check a cancel token) and recorded."""
    known = known_sha256(path)
    if known is not None:
        return known
    digest = compute(Path(path))
    remember_sha256(path, digest)
    return digest
