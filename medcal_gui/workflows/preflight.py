"""Before any work, and after a failed one: the checks every long step (ladder, recipe, compare-calibrations)
runs before it creates anything, and the tidy-up that leaves a folder as it was when the step fails.

A step checks its counts, its context and its input files first, then every output path (fsutil's
`check_output_path`: never over an input), and only then creates its folders. `missing_folders` says which
folders creating one will make; if the step fails or is cancelled, `remove_made_folders` removes those again,
each only while it holds nothing (or nothing but medcal's own marker and empty folders): a finished result, or a
file the user put there meanwhile, keeps its folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from medcal_gui.core.errors import InputError
from medcal_gui.core.ownership import MARKER, is_marked, remove_marked


def check_count(value: int | None, flag: str, *, low: int = 1, high: int | None = None) -> None:
    """A count (repetitions, chunks, tokens) that is a whole number within [low, high], or None (not given);
    the message names the flag and reads as the command line's own (`cli.flags.whole_number`)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f" between {low} and {high}" if high is not None else f" of at least {low}"
        raise InputError(f"{flag}: {value!r} is out of range; write a whole number{bounds}.")


def check_ctx(n_ctx: int) -> None:
    """The context llama.cpp's evaluation and imatrix take (checked up front, not after the first hour)."""
    if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 16 or n_ctx % 2:
        raise InputError(f"--ctx: {n_ctx!r} is not a context size medcal can use; write an even number of at "
                         "least 16 tokens, e.g. --ctx 512.")


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first: what creating it will make."""
    made: list[Path] = []
    p = Path(folder)
    while not os.path.lexists(p) and p != p.parent:
        made.append(p)
        p = p.parent
    return made


def remove_made_folders(made: Sequence[Path], kind: str) -> None:
    """After a failed or cancelled run: remove the folders it created (`missing_folders` before it started),
    deepest first, each only while it holds nothing, or nothing but medcal's own marker of `kind`. A folder
    that holds anything else (a finished rung, a file the user put there meanwhile) stays, and so do its
    parents."""
    for folder in made:
        try:
            names = os.listdir(folder)
        except OSError:
            return
        if MARKER in names and is_marked(folder, kind) and _only_empty_folders(folder, skip=MARKER):
            if not remove_marked(folder, kind):
                return
        elif not names:
            try:
                os.rmdir(folder)
            except OSError:
                return
        else:
            return


def _only_empty_folders(folder: Path, skip: str) -> bool:
    """Whether `folder` holds nothing but `skip` and folders that hold nothing (what a run made before it
    failed: a candidates/ folder with no candidate yet). A link, a file or anything else anywhere: False."""
    for entry in os.scandir(folder):
        if entry.name == skip and entry.is_file(follow_symlinks=False):
            continue
        if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            return False
        if not _only_empty_folders(Path(entry.path), skip=""):
            return False
    return True
