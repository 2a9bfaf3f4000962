"""What was computed from a file, remembered per file version in the user's cache (a model's sha256, its
shape), so that the next run, the next rung of a ladder or the window's next look finds it instead of reading
the file again.

A version is (resolved path, size, mtime in ns, inode): a file rewritten in place or replaced by another gets a
new key, so a remembered value is never stale. A memo is a cache only: a missing or broken memo means computing
again, never an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import MedcalError
from medcal_gui.core.fsutil import write_text_atomic
from medcal_gui.core.resources import user_cache_dir

KEEP = 256  # file versions remembered per memo (the newest)


def version_key(path: Path) -> str:
    p = Path(path).resolve()
    st = p.stat()
    return f"{p}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"


class VersionMemo:
    """One memo file, `<user cache>/<file_name>`: a JSON object from version keys to values."""

    def __init__(self, file_name: str, keep: int = KEEP) -> None:
        self.file_name = file_name
        self.keep = keep

    def path(self) -> Path:
        return user_cache_dir() / self.file_name

    def _all(self) -> dict[str, Any]:
        try:
            memo = json.loads(self.path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): v for k, v in memo.items()} if isinstance(memo, dict) else {}

    def get(self, path: Path) -> Any | None:
        """The value recorded for this very version of `path`, if any."""
        try:
            return self._all().get(version_key(path))
        except OSError:
            return None

    def put(self, path: Path, value: Any) -> None:
        """Record `value` for this version of `path` (and forget the file's older versions)."""
        try:
            key = version_key(path)
            stem = key.rsplit("|", 3)[0] + "|"
            memo = {k: v for k, v in self._all().items() if not k.startswith(stem)}
            memo[key] = value
            write_text_atomic(self.path(), json.dumps(dict(list(memo.items())[-self.keep:]), indent=0) + "\n")
        except (OSError, MedcalError, TypeError, ValueError):
            pass  # a cache only
