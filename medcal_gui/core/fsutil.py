"""Safe file output: atomic writes, never over an input, free-space checks.

Every output medcal writes goes through `atomic_output`: the data lands in a temporary file beside the
target and is renamed over it only when complete, so a failure or a cancel leaves nothing partial.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO

from medcal_gui.core.errors import InputError, OutputError
from medcal_gui.core.units import format_bytes

TMP_PREFIX = ".medcal-partial-"
# Our temporary files carry the writing process's id: `.medcal-partial-<pid>-<random><suffix>`.
_OWNED_TMP = re.compile(r"^" + re.escape(TMP_PREFIX) + r"(\d+)-")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_temp(folder: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """A temporary file beside the final output, with the permissions a normal new file would get."""
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=suffix, dir=folder)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, Path(tmp)


def same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def refuse_input_overwrite(out: Path, inputs: Iterable[Path]) -> None:
    for inp in inputs:
        if same_file(out, inp):
            raise OutputError(
                f"The output {out} is the same file as the input {inp}: medcal never overwrites an input. "
                "Choose another output name or folder."
            )


def _kind(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "a device"
    if stat.S_ISFIFO(st.st_mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(st.st_mode):
        return "a socket"
    return "not a regular file"


def check_output_path(out: Path, inputs: Iterable[Path] = (), *, sidecars: Sequence[str] = (),
                      what: str = "output") -> None:
    """Refuse, before any work starts, an output path medcal could not write safely.

    Refused with an OutputError naming the path: `out` (or a sidecar `out.name + suffix` for each suffix in
    `sidecars`, e.g. ".sha256") being an existing folder, device (/dev/null, /dev/full), FIFO or socket,
    which an atomic rename would replace by a regular file or fail on after the work; any of them being the
    same file as one of `inputs`; a parent that exists but is not a folder, or is not writable. Does not
    create anything. `what` names the output in the message ("quantized model", "plot").
    """
    out = Path(out)
    paths = [out] + [out.with_name(out.name + s) for s in sidecars]
    inputs = [Path(i) for i in inputs]
    probe = _first_existing(out.parent)
    _refuse_non_folder(probe, f"Cannot write to the folder {out.parent} for the {what} {out}: ")
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise OutputError(f"Cannot use {p} as the {what}: {exc.strerror or exc}.") from exc
        if st is None and os.path.islink(p):
            raise OutputError(f"The {what} {p} is a broken symbolic link. Remove it or choose another name.")
        if st is not None and not stat.S_ISREG(st.st_mode):
            beside = "" if p == out else f" (written beside the {what} {out.name})"
            inside = p / ("out" + out.suffix)
            hint = (f"Give a file name inside it, e.g. {inside}" if stat.S_ISDIR(st.st_mode) and p == out
                    else "Choose another output name")
            raise OutputError(f"The {what} path {p}{beside} is {_kind(st)}, not a file: medcal would replace it "
                              f"or fail on it after the work. {hint}.")
        refuse_input_overwrite(p, inputs)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"Cannot write the {what} {out}: the folder {probe} is not writable. "
                          "Pick a folder you can write to.")


def _first_existing(path: Path) -> Path:
    """`path`, or its nearest parent that exists (as anything: a broken link counts)."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _refuse_non_folder(path: Path, lead: str) -> None:
    """An OutputError (`lead` + what `path` is) when the existing `path` is not a folder: a file, a FIFO, a
    device or a broken link where an output folder has to be."""
    try:
        st = os.stat(path)
    except OSError:
        raise OutputError(f"{lead}{path} is a broken symbolic link, not a folder. Pick a folder you can "
                          "write to.") from None
    if not stat.S_ISDIR(st.st_mode):
        kind = "a file" if stat.S_ISREG(st.st_mode) else _kind(st)
        raise OutputError(f"{lead}{path} is {kind}, not a folder. Pick a folder you can write to.")


def check_output_dir(folder: Path, what: str = "output folder") -> None:
    """Refuse, before any work starts, an output folder that exists as something else (a file, a FIFO, a
    device: creating it later failed with "File exists" or a traceback) or cannot be made or written because
    of what is above it. Creates nothing."""
    folder = Path(folder)
    probe = _first_existing(folder)
    _refuse_non_folder(probe, f"The {what} {folder} cannot be used: " if probe != folder else f"The {what} ")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"Cannot write the {what} {folder}: the folder {probe} is not writable. "
                          "Pick a folder you can write to.")


def check_input_file(path: Path, what: str = "input file", *, error: type[InputError] = InputError) -> None:
    """Refuse, before any work starts, an input that is not a regular file, saying what it is instead: missing,
    a broken link, a folder (even one named `x.gguf`: "does not exist" sent users looking for a missing file),
    a FIFO (which would hang the reader), a device or a socket. `error` is the InputError subclass to raise
    (ModelError for a model)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise error(f"The {what} {path} is a symbolic link to {os.readlink(path)}, which does not exist.") from None
        raise error(f"The {what} {path} does not exist.") from None
    except OSError as exc:
        raise error(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from None
    if stat.S_ISREG(st.st_mode):
        return
    hint = "give the file inside it" if stat.S_ISDIR(st.st_mode) else "give a regular file"
    raise error(f"The {what} {path} is {_kind(st)}, not a file: {hint}.")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def stale_partials(folder: Path, suffix: str = "") -> list[Path]:
    """Temporary files of ours in `folder` whose writing process is gone (a run killed with kill -9)."""
    found: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for e in entries:
        m = _OWNED_TMP.match(e.name)
        if m and e.name.endswith(suffix) and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            found.append(Path(e.path))
    return found


def remove_stale_partials(folder: Path, suffix: str = "") -> list[str]:
    """Remove `stale_partials(folder, suffix)`; returns one plain-words note per file removed (or not)."""
    notes: list[str] = []
    for p in stale_partials(folder, suffix):
        try:
            size = p.stat().st_size
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            notes.append(f"Removed {p.name} ({format_bytes(size)}) from {folder}: a partial file an interrupted "
                         "earlier run left behind.")
        except OSError as exc:
            notes.append(f"A partial file an interrupted earlier run left behind, {p}, could not be removed "
                         f"({exc.strerror or exc}); delete it by hand.")
    return notes


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def ensure_dir(folder: Path) -> None:
    """Create `folder` if needed and prove it is writable (by creating and removing a probe file)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if isinstance(exc, FileExistsError | NotADirectoryError):  # say what is in the way, not "File exists"
            check_output_dir(folder, "folder")
        raise OutputError(f"Cannot write to the folder {folder}: {exc.strerror or exc}. "
                          "Pick a folder you can write to.") from exc


def check_free_space(folder: Path, needed: int, what: str = "the output") -> None:
    """Refuse early when `folder` has less than `needed` bytes (plus a 5% margin) free."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed * 1.05:
        raise OutputError(
            f"Not enough free space in {folder} for {what}: {format_bytes(needed, rough=True)} needed, "
            f"{format_bytes(free, rough=True)} free. Free some space or choose another folder."
        )


@contextlib.contextmanager
def atomic_output(target: Path, mode: str = "w", encoding: str | None = "utf-8",
                  newline: str | None = "\n") -> Iterator[IO[Any]]:
    """Open a temporary file beside `target`; rename it to `target` only if the block succeeds."""
    target = Path(target)
    ensure_dir(target.parent)
    fd, tmp_path = make_temp(target.parent)
    try:
        if "b" in mode:
            fh: IO[Any] = os.fdopen(fd, mode)
        else:
            fh = os.fdopen(fd, mode, encoding=encoding, newline=newline)
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target` for a writer that wants a filename (gguf, llama.cpp).

    The temporary file is renamed to `target` when the block succeeds and removed when it fails.
    """
    target = Path(target)
    ensure_dir(target.parent)
    fd, tmp_path = make_temp(target.parent, target.suffix + ".tmp")
    os.close(fd)
    try:
        yield tmp_path
        if not tmp_path.exists() or tmp_path.stat().st_size == 0:
            raise OutputError(f"Writing {target} produced no data.")
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_output(target) as fh:
        fh.write(text)


HASH_WINDOW = 8 * 1024 * 1024


def file_windows(fh: BinaryIO, window: int = HASH_WINDOW) -> Iterator[bytes | mmap.mmap]:
    """A file's bytes a window at a time, each to be used before the next is asked for. A regular file is mapped,
    so a hash reads it where the page cache holds it: read() copied every byte out first, which cost as much CPU
    as the sha256 itself on the 2-core machine (a 253 MB quant: 0.18 s). Anything else (a pipe) is read."""
    st = os.fstat(fh.fileno())
    if not stat.S_ISREG(st.st_mode):
        while chunk := fh.read(window):
            yield chunk
        return
    populate = getattr(mmap, "MAP_POPULATE", 0)  # Linux: map each window's pages in one call, not one fault
    for pos in range(0, st.st_size, window):  # each (12 ms less for that 253 MB quant)
        size = min(window, st.st_size - pos)
        if populate:
            mm = mmap.mmap(fh.fileno(), size, flags=mmap.MAP_SHARED | populate, prot=mmap.PROT_READ, offset=pos)
        else:
            mm = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ, offset=pos)
        with mm:
            yield mm


def sha256_file(path: Path, on_window: Callable[[int], object] | None = None) -> str:
    """The file's sha256; `on_window(bytes hashed so far)` after each window (a cancel check, progress)."""
    h = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        for w in file_windows(fh):
            h.update(w)
            done += len(w)
            if on_window is not None:
                on_window(done)
    return h.hexdigest()
