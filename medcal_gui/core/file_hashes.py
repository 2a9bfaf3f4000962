"""The sha256 of a file, remembered per file version (core.version_memo), for every part of the app that needs
one: quantizing the same base again (every rung of a ladder), evaluating against it, a recipe and the ladder's
records all find its digest here instead of reading gigabytes again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medcal_gui.core.fsutil import sha256_file
from medcal_gui.core.version_memo import KEEP, VersionMemo, version_key  # noqa: F401 - part of this API

MEMO = VersionMemo("sha256-cache.json")


def memo_path() -> Path:
    return MEMO.path()


def known_sha256(path: Path) -> str | None:
    """The digest recorded for this very version of `path` by an earlier run, if any."""
    v = MEMO.get(path)
    return v if isinstance(v, str) and len(v) == 64 else None


def remember_sha256(path: Path, digest: str) -> None:
    """Record `digest` for this version of `path` (and forget the file's older versions)."""
    MEMO.put(path, digest)


def file_sha256(path: Path, compute: Callable[[Path], str] = sha256_file) -> str:
    """sha256 of `path`: remembered, or computed with `compute` (which may check a cancel token) and recorded."""
    known = known_sha256(path)
    if known is not None:
        return known
    digest = compute(Path(path))
    remember_sha256(path, digest)
    return digest
