"""How a conversion's output bytes reach the disk: written on one thread and hashed on another while the caller
reads and converts the next slice, and written past the page cache where the file system allows it.

Measured on the 4B stand-in (2 cores, 8.6 GB out): copying each slice into the page cache (write()) took a
quarter of the conversion's CPU time, about 8 s, as much as the sha256 of the output. With O_DIRECT the disk
reads the bytes from a staging buffer of ours instead; the one copy left is into that buffer (14 GB/s, 0.6 s).
Where O_DIRECT is refused (tmpfs, some network file systems) the writes go through the page cache as before,
with the kernel asked to start writing them out every 64 MB.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from medcal_gui.core.errors import OutputError
from medcal_gui.core.units import MiB
from medcal_gui.llama.libc import start_writeback

if TYPE_CHECKING:
    from pathlib import Path

BLOCK = 4096  # O_DIRECT offsets, lengths and buffer addresses: multiples of the device's block (4096 is safe)
Chunk = bytes | memoryview


class DirectFile:
    """Appends to the file open as `fh` through a second, O_DIRECT descriptor: whole blocks from an aligned
    staging buffer, and the last partial block through `fh` at `close()`. `open()` returns None where the file
    system refuses O_DIRECT."""

    STAGE = 16 * MiB  # bytes gathered before one write to the disk

    def __init__(self, fh: BinaryIO, fd: int, head: bytes) -> None:
        self._fh = fh
        self._fd = fd
        self._base = len(head) - len(head) % BLOCK  # file offset of the staging buffer's first byte
        self._buf = mmap.mmap(-1, self.STAGE)  # anonymous: page-aligned, as O_DIRECT wants
        self._view = memoryview(self._buf)
        self._fill = len(head) - self._base
        # the head's last partial block goes down again, with the data that follows it
        self._view[:self._fill] = head[self._base:]

    @classmethod
    def open(cls, fh: BinaryIO, head: bytes) -> DirectFile | None:
        """`fh` holds `head` and nothing after it."""
        flag = getattr(os, "O_DIRECT", 0)
        if not flag:
            return None
        try:
            fd = os.open(fh.name, os.O_WRONLY | flag)
        except OSError:  # EINVAL: this file system does not do direct I/O
            return None
        out = cls(fh, fd, head)
        if not out._probe():
            out.release()
            return None
        return out

    def _probe(self) -> bool:
        """Write the first block (the head's last bytes, zeros after them) past the page cache: some file
        systems take the O_DIRECT open and refuse the writes (alignment rules of their own). The zeros are
        written over, and `close()` cuts the file to its length in any case."""
        try:
            return os.pwrite(self._fd, self._view[:BLOCK], self._base) == BLOCK
        except OSError:
            return False

    def write(self, data: Chunk) -> None:
        src = memoryview(data).cast("B")
        while len(src):
            n = min(len(src), self.STAGE - self._fill)
            self._view[self._fill:self._fill + n] = src[:n]
            self._fill += n
            src = src[n:]
            if self._fill == self.STAGE:
                self._put(self.STAGE)

    def _put(self, n: int) -> None:
        done = 0
        while done < n:  # a short write of a direct descriptor still ends on a block boundary
            done += os.pwrite(self._fd, self._view[done:n], self._base + done)
        self._base += n
        self._fill -= n
        if self._fill:
            self._view[:self._fill] = self._view[n:n + self._fill]

    def close(self) -> None:
        """Write what is left: the whole blocks directly, the last partial one through `fh`."""
        try:
            end = self._base + self._fill
            whole = self._fill - self._fill % BLOCK
            if whole:
                self._put(whole)
            if self._fill:
                os.pwrite(self._fh.fileno(), self._view[:self._fill], self._base)
            os.ftruncate(self._fh.fileno(), end)  # a small file: the probe's zeros may lie past its end
            self._fh.seek(end)
        finally:
            self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._view.release()
        self._buf.close()


def write_error(path: Path, exc: OSError) -> OutputError:
    """What a failed write of the conversion's output (`path`: its partial file) says to the user: a full disk,
    a lost drive, in words (`write_gguf` turns every OSError of its writes into this, the writer thread's too)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        why = "the disk (or this user's quota, or the file-size limit) is full"
        fix = "Free some space, or write the GGUF to another disk, and convert again."
    else:
        why = exc.strerror or str(exc)
        fix = "Check the disk and the folder, and convert again."
    err = OutputError(f"Writing the converted model in {path.parent} failed: {why}. Nothing was kept. {fix}")
    err.__cause__ = exc
    return err


class HashingWriter:
    """Writes slices on one thread and hashes them on another while the caller reads and converts the next
    one (all three let go of the GIL: file writes, sha256, the casts), holding at most QUEUED slices in
    memory. Writing and hashing each take about as long as reading and converting (4B, 2 cores); one thread
    doing both was the conversion's bottleneck."""

    QUEUED = 2
    WRITEBACK = 64 * MiB  # buffered writes between two requests to the kernel to start writing them out

    def __init__(self, fh: BinaryIO, head: bytes, *, direct: bool = True) -> None:
        """`fh` is open for writing and holds `head` (and nothing after it); `direct=False`: through the page
        cache whatever the file system."""
        self._hash = hashlib.sha256(head)
        self.pos = len(head)
        self._error: BaseException | None = None
        self._queues: list[queue.Queue[Chunk | None]] = []
        self._threads: list[threading.Thread] = []
        self._fh = fh
        self._direct = DirectFile.open(fh, head) if direct else None
        self._flushed = self._written = len(head)
        for name, work in (("writer", self._write), ("hasher", self._hash.update)):
            q: queue.Queue[Chunk | None] = queue.Queue(self.QUEUED)
            t = threading.Thread(target=self._run, args=(q, work), name=f"medcal-convert-{name}", daemon=True)
            self._queues.append(q)
            self._threads.append(t)
            t.start()

    @property
    def direct(self) -> bool:
        """Whether the bytes go to the disk past the page cache (O_DIRECT)."""
        return self._direct is not None

    def _run(self, q: queue.Queue[Chunk | None], work: Callable[[Chunk], object]) -> None:
        while (data := q.get()) is not None:
            if self._error is None:
                try:
                    work(data)
                except BaseException as exc:  # handed to the caller at its next put or at finish
                    self._error = exc

    def _write(self, data: Chunk) -> None:
        if self._direct is not None:
            self._direct.write(data)
            return
        self._fh.write(data)
        self._written += len(data)
        if self._written - self._flushed >= self.WRITEBACK:
            self._fh.flush()
            start_writeback(self._fh.fileno(), self._flushed, self._written - self._flushed)
            self._flushed = self._written

    def put(self, data: Chunk) -> int:
        if self._error is not None:
            raise self._error
        for q in self._queues:
            q.put(data)
        self.pos += len(data)
        return len(data)

    def pad(self, align: int) -> None:
        if self.pos % align:
            self.put(bytes(align - self.pos % align))

    def finish(self) -> str:
        """Wait for every slice to be written; the sha256 of the whole file."""
        self._join()
        if self._error is not None:
            raise self._error
        if self._direct is not None:
            direct, self._direct = self._direct, None
            direct.close()
        return self._hash.hexdigest()

    def _join(self) -> None:
        for q, t in zip(self._queues, self._threads, strict=True):
            if t.is_alive():
                q.put(None)
                t.join()

    def stop(self) -> None:
        """End the threads (after `finish`, or on an error or a cancel of the caller: nothing more is written)."""
        self._join()
        if self._direct is not None:
            direct, self._direct = self._direct, None
            direct.release()
