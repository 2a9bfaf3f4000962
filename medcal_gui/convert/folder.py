"""The files of a Hugging Face model folder, read so that none of them can hang the converter, exhaust its
memory, reach outside the folder or end in a traceback.

A downloaded folder is input from a stranger: a shard index or a symbolic link can point at any file of the
machine (`../../.ssh/id_rsa` as a chat template would end up inside the GGUF), a JSON file can be nested
100,000 deep, a template can be in another encoding. Every file the converter reads goes through here: it
must resolve inside the folder (or, in the Hugging Face hub cache, to that repository's own `blobs/`), be a
regular file under a size bound, and be UTF-8; a failure is one line naming the file, the line or key, and
what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from medcal_gui.core.errors import DataError, ModelError
from medcal_gui.core.text_files import loads_json, read_bytes_bounded
from medcal_gui.core.units import MiB

# config.json, tokenizer_config.json, generation_config.json, the shard index ...: kilobytes; a tokenizer_config
# listing every added token of a 256k vocabulary is a few MB
MAX_JSON_BYTES = 64 * MiB
# tokenizer.json (MedGemma's: 33 MB) and tokenizer.model (4.7 MB)
MAX_TOKENIZER_BYTES = 256 * MiB
# chat templates and README.md (kilobytes)
MAX_TEXT_BYTES = 16 * MiB
DOWNLOAD_AGAIN = "Download the model again."


class FolderFileError(ModelError):
    """A file of the model folder cannot be used: outside the folder, unreadable, or holding a value of the
    wrong kind. The message names the file and the line or key."""


def _hub_blobs(root: Path) -> Path | None:
    """The hub cache's blob folder of the repository whose snapshot `root` (resolved) is:
    `models--org--name/snapshots/<revision>/` links each file to `models--org--name/blobs/<sha>`."""
    if root.parent.name == "snapshots":
        return root.parent.parent / "blobs"
    return None


def outside_reason(root: Path, path: Path) -> str | None:
    """Why `path` may not be read as part of the folder `root` (None: it may)."""
    try:
        real_root = root.resolve()
        real = path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: a loop of symbolic links
        return f"cannot be followed ({exc})"
    if real == real_root or real_root in real.parents:
        return None
    blobs = _hub_blobs(real_root)
    if blobs is not None and real.parent == blobs.resolve():
        return None
    return f"leads outside the model folder {root} (to {real})"


def check_inside(root: Path, path: Path, what: str) -> Path:
    """`path`, when it resolves inside the model folder `root`; else a FolderFileError naming it."""
    why = outside_reason(root, path)
    if why is not None:
        raise FolderFileError(f"The {what} {path} {why}: medcal reads a model only from inside its folder. Put "
                              "the file itself in the folder (not a link to elsewhere) and convert again.")
    return path


def present(path: Path) -> bool:
    """Whether the folder holds an entry of that name: a FIFO, a device or a broken link too, which the read
    then refuses by name (rather than passing it over as absent)."""
    return os.path.lexists(path)


def read_bytes(root: Path, path: Path, what: str, limit: int) -> bytes:
    check_inside(root, path, what)
    return read_bytes_bounded(path, what, limit)


def decode_utf8(data: bytes, path: Path, what: str, fix: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FolderFileError(f"{path}, line {line}: the {what} is not UTF-8 (byte {exc.start} is "
                              f"0x{data[exc.start]:02x}). {fix}") from None


def read_text(root: Path, path: Path, what: str, *, fix: str, limit: int = MAX_TEXT_BYTES) -> str:
    return decode_utf8(read_bytes(root, path, what, limit), path, what, fix)


def parse_json(text: str, path: Path, what: str) -> object:
    """json.loads with every failure one line at the file: invalid JSON at its line and column, and JSON
    nested too deeply to parse (RecursionError)."""
    try:
        return loads_json(text, what, path)
    except DataError as exc:
        raise FolderFileError(f"{exc.message} {DOWNLOAD_AGAIN}") from None


def read_json(root: Path, path: Path, what: str, *, limit: int = MAX_JSON_BYTES) -> object | None:
    """The JSON value of `path` (None when the folder has no such entry)."""
    if not present(path):
        return None
    data = read_bytes(root, path, what, limit)
    return parse_json(decode_utf8(data, path, what, f"Save it as UTF-8, or {DOWNLOAD_AGAIN[0].lower()}"
                                  f"{DOWNLOAD_AGAIN[1:]}"), path, what)
