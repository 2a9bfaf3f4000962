"""The sha256 of every input file of a conversion, computed on a thread of its own while the conversion runs.

Hashing a download's 8.6 GB before converting it used to take a third of the convert step's time. The
conversion reads the same bytes, so the two share the page cache (a model smaller than the RAM is read from
disk once) and run on two cores at once; sha256 and file reads let go of the GIL. Only the caller reports
progress: the thread counts the bytes it has hashed, and the caller shows that count while it waits.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import InputError
from medcal_gui.core.fsutil import file_windows
from medcal_gui.core.jobs import BackgroundCall, CancelToken, Progress, ProgressCallback, RateMeter

STAGE = "hash input"


class InputHasher:
    """Hashes `files` (each relative to `root`) in order; `result()` waits and returns the folder's digest and
    the per-file rows. `stop()` ends the thread early (on an error or a cancel of the caller)."""

    def __init__(self, files: list[Path], root: Path, cancel: CancelToken) -> None:
        self.files = files
        self.root = root
        self.total = sum(f.stat().st_size for f in files)
        self.done = 0
        self._cancel = cancel
        self._stop = threading.Event()
        self._rows: list[dict[str, Any]] = []
        self._call = BackgroundCall(self._run, name="medcal-hash-inputs")

    def _run(self) -> None:
        f = self.root
        try:
            for f in self.files:
                h = hashlib.sha256()
                with open(f, "rb") as fh:
                    for chunk in file_windows(fh):
                        if self._stop.is_set() or self._cancel.cancelled:
                            return
                        h.update(chunk)
                        self.done += len(chunk)
                self._rows.append({"name": str(f.relative_to(self.root)), "sha256": h.hexdigest(),
                                   "bytes": f.stat().st_size})
        except OSError as exc:  # any other error reaches the caller as it is, through result()
            raise InputError(f"The input file {f} cannot be read: {exc.strerror or exc}.") from None

    def stop(self) -> None:
        self._stop.set()
        self._call.join()

    def result(self, progress: ProgressCallback) -> tuple[str, list[dict[str, Any]]]:
        """Wait for the last file, showing the bytes hashed; raises the thread's error or the caller's cancel."""
        meter = RateMeter()
        self._call.wait(self._cancel, 0.2, lambda: progress(Progress(
            STAGE, self.done, self.total, unit="bytes", rate=meter.rate(self.done), rate_unit="B",
            eta_s=meter.eta(self.done, self.total), message="the input files")))
        self._cancel.check()
        self._call.outcome()
        # one digest for the folder: sha256 of its sha256sum listing
        listing = "".join(f"{r['sha256']}  {r['name']}\n" for r in self._rows)
        return hashlib.sha256(listing.encode("utf-8")).hexdigest(), list(self._rows)
