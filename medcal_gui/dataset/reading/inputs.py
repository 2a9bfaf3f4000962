"""Opening an input file safely: refuse what is not a regular, readable file before reading a byte of it.

A FIFO would block `open()` until a writer came, `/dev/zero` never ends, a folder or a broken link raise
errors that read as "no such file": each gets a one-line message naming the path and what it is instead.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from medcal_gui.core.errors import InputError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _os_problem(path: Path, exc: OSError) -> InputError:
    if isinstance(exc, PermissionError):
        return InputError(f"{path}: cannot be read (permission denied). Check the file's permissions, or "
                          "copy it somewhere you can read it.")
    if isinstance(exc, FileNotFoundError):
        if os.path.islink(path):
            return InputError(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist.")
        return InputError(f"{path}: no such file or folder.")
    return InputError(f"{path}: cannot be read ({exc.strerror or exc}).")


def read_error(path: Path, exc: OSError) -> InputError:
    """The message for an OSError met while reading `path` (an I/O error, a vanished file, ...)."""
    return _os_problem(path, exc)


def check_input_file(path: Path, what: str = "a text file") -> None:
    """Raise InputError unless `path` is a regular file this process can open for reading."""
    open_input(path, what).close()


def open_input(path: Path, what: str = "a text file") -> BinaryIO:
    """Open a regular file for binary reading, refusing FIFOs, devices, folders and broken links first.

    O_NONBLOCK makes opening a FIFO return at once (instead of waiting for a writer), so its type can be
    checked on the open descriptor, which is also what rules out a swap between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not {what}.") from None
    except OSError as exc:
        raise _os_problem(path, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: is {kind_of(st.st_mode)}, not {what}. Give a regular file.")
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return fh
