"""The two libc calls medcal makes, bound here beside llama.cpp's: llama/ is the only ctypes edge.

Light on purpose (ctypes alone: no numpy, no llama_cpp): the quantize child imports it while it starts.
Both calls are Linux's; elsewhere they do nothing and say so.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h
SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);
def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (prctl(PR_SET_PDEATHSIG)); False
    where it cannot be asked (not Linux)."""
    libc = _libc()
    try:
        return libc is not None and libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except AttributeError:
        return False


# int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags);
@functools.cache
def _sync_file_range() -> Any:
    libc = _libc()
    try:
        fn = libc.sync_file_range if libc is not None else None
    except AttributeError:
        return None
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        fn.restype = ctypes.c_int
    return fn


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a just-written range to disk now, without waiting for it (Linux's
    sync_file_range(SYNC_FILE_RANGE_WRITE); nothing elsewhere). A large output then reaches the disk while it
    is being made, instead of gigabytes of dirty pages being flushed after the last byte."""
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, offset, length, SYNC_FILE_RANGE_WRITE)  # best effort: a failure only means the flush comes later
