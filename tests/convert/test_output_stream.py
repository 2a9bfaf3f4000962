"""A conversion's output stream: the bytes on disk and their sha256, past the page cache (O_DIRECT) or through it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from medcal_gui.convert.output_stream import BLOCK, DirectFile, HashingWriter


def _pieces(rng: np.random.Generator, total: int) -> list[bytes | memoryview]:
    """Slices of awkward sizes (odd, and larger than the staging buffer), as bytes and as numpy views."""
    sizes = [1, 31, BLOCK - 1, BLOCK + 1, DirectFile.STAGE - 7, DirectFile.STAGE + 4099, 3 * BLOCK]
    out: list[bytes | memoryview] = []
    while sum(len(p) for p in out) < total:
        n = sizes[len(out) % len(sizes)]
        arr = rng.integers(0, 256, n, dtype=np.uint8)
        out.append(arr.tobytes() if len(out) % 2 else arr.data)
    return out


@pytest.mark.parametrize("direct", [True, False], ids=["past-the-page-cache", "through-the-page-cache"])
@pytest.mark.parametrize("head_len", [5003, 2 * BLOCK])
def test_the_file_holds_head_and_slices_and_its_sha256(tmp_path: Path, direct: bool, head_len: int) -> None:
    rng = np.random.default_rng(head_len)
    head = rng.integers(0, 256, head_len, dtype=np.uint8).tobytes()
    pieces = _pieces(rng, 3 * DirectFile.STAGE)
    target = tmp_path / "out.gguf"
    target.write_bytes(head)
    with open(target, "r+b") as fh:
        fh.seek(0, 2)
        sink = HashingWriter(fh, head, direct=direct)
        if direct and not sink.direct:
            sink.stop()
            pytest.skip(f"the file system of {tmp_path} refuses O_DIRECT")
        assert sink.direct is direct
        for p in pieces:
            sink.put(p)
        sink.pad(32)
        digest = sink.finish()
        sink.stop()
        fh.flush()
    expected = head + b"".join(bytes(p) for p in pieces)
    expected += bytes(-len(expected) % 32)
    data = target.read_bytes()
    assert len(data) == len(expected) == sink.pos
    assert data == expected
    assert digest == hashlib.sha256(expected).hexdigest()


def test_stop_without_finish_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """A cancel mid-way: the threads end and the O_DIRECT descriptor is closed (the caller removes the file)."""
    import os

    target = tmp_path / "out.gguf"
    target.write_bytes(b"head")
    before = set(os.listdir("/proc/self/fd"))
    with open(target, "r+b") as fh:
        fh.seek(0, 2)
        sink = HashingWriter(fh, b"head")
        sink.put(b"x" * (BLOCK * 3 + 1))
        sink.stop()
    assert set(os.listdir("/proc/self/fd")) <= before


def test_a_file_system_that_refuses_direct_writes_gets_buffered_ones(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Some file systems accept the O_DIRECT open and refuse the writes (EINVAL): the first block is tried at
    once, and on a refusal everything goes through the page cache. (No such file system here: the refusal is
    injected into the direct descriptor's writes only.)"""
    import errno
    import os

    real_open, real_pwrite = os.open, os.pwrite
    direct_fds: set[int] = set()

    def fake_open(path: str, flags: int, *args: int) -> int:
        fd = real_open(path, flags, *args)
        if flags & getattr(os, "O_DIRECT", 0):
            direct_fds.add(fd)
        return fd

    def fake_pwrite(fd: int, data: bytes, offset: int) -> int:
        if fd in direct_fds:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "pwrite", fake_pwrite)
    head = b"h" * 5003
    target = tmp_path / "out.gguf"
    target.write_bytes(head)
    with open(target, "r+b") as fh:
        fh.seek(0, 2)
        sink = HashingWriter(fh, head)
        if not direct_fds:
            sink.stop()
            pytest.skip(f"the file system of {tmp_path} refuses the O_DIRECT open itself")
        assert not sink.direct
        sink.put(b"x" * (3 * BLOCK + 5))
        digest = sink.finish()
        sink.stop()
    assert target.read_bytes() == head + b"x" * (3 * BLOCK + 5)
    assert digest == hashlib.sha256(head + b"x" * (3 * BLOCK + 5)).hexdigest()


def test_a_small_file_is_cut_to_its_length(tmp_path: Path) -> None:
    """The first block is written whole (zeros after the head): a file shorter than that ends where it should."""
    target = tmp_path / "small.gguf"
    target.write_bytes(b"head")
    with open(target, "r+b") as fh:
        fh.seek(0, 2)
        sink = HashingWriter(fh, b"head")
        sink.put(b"tail")
        sink.finish()
        sink.stop()
    assert target.read_bytes() == b"headtail"
