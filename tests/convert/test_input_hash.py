"""The input files' sha256, computed on a thread of its own: right digests, a named file on a read error, and
a cancel that ends the thread."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from medcal_gui.convert.input_hash import InputHasher
from medcal_gui.core.errors import Cancelled, InputError
from medcal_gui.core.jobs import CancelToken, Progress


def _files(root: Path) -> list[Path]:
    files = []
    for i, size in enumerate((0, 1, 9 * 1024 * 1024 + 5)):  # empty, tiny, more than one 8 MiB read
        f = root / "sub" / f"f{i}.bin" if i == 2 else root / f"f{i}.bin"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(os.urandom(size))
        files.append(f)
    return files


def test_digests_and_the_folder_listing(tmp_path: Path) -> None:
    files = _files(tmp_path)
    seen: list[Progress] = []
    digest, rows = InputHasher(files, tmp_path, CancelToken()).result(seen.append)
    assert [r["name"] for r in rows] == ["f0.bin", "f1.bin", "sub/f2.bin"]
    for f, r in zip(files, rows, strict=True):
        assert r["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest() and r["bytes"] == f.stat().st_size
    listing = "".join(f"{r['sha256']}  {r['name']}\n" for r in rows)
    assert digest == hashlib.sha256(listing.encode()).hexdigest()
    assert all(p.stage == "hash input" and p.total == sum(f.stat().st_size for f in files) for p in seen)


def test_an_unreadable_input_is_named(tmp_path: Path) -> None:
    files = _files(tmp_path)
    files[1].unlink()
    files[1].mkdir()  # a folder where a file was
    with pytest.raises(InputError) as info:
        InputHasher(files, tmp_path, CancelToken()).result(lambda p: None)
    assert str(files[1]) in info.value.message


def test_cancel_ends_the_thread(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: _feed(fifo), daemon=True)
    writer.start()
    token = CancelToken()
    hasher = InputHasher([fifo], tmp_path, token)
    calls = []

    def progress(p: Progress) -> None:
        calls.append(p.done)
        if len(calls) == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        hasher.result(progress)
    hasher.stop()
    assert not any(t.name == "medcal-hash-inputs" and t.is_alive() for t in threading.enumerate())


def _feed(fifo: Path) -> None:
    """An input that never ends until the reader stops: 1 MiB writes, as long as the hasher reads."""
    try:
        with open(fifo, "wb") as fh:
            while True:
                fh.write(bytes(1024 * 1024))
    except OSError:
        pass
