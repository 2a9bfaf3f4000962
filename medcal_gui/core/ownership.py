"""What medcal wrote, recognised by its own marker: the one rule every clean-up path follows.

A folder medcal creates for its own use (an evaluation-cache entry, a recipe's work folder, a ladder's rungs)
holds a marker file naming the kind of folder it is. Clean-up removes a folder only when that marker is there
and names the expected kind, and never removes anything else in a folder the user owns: a `notes.txt` or a
`models/` folder beside medcal's entries stays, whatever the command was asked to clear.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from medcal_gui.core.errors import OutputError
from medcal_gui.core.fsutil import make_temp

MARKER = ".medcal-owned"


def mark_folder(folder: Path, kind: str) -> None:
    """Create `folder` (parents too) if needed and mark it as medcal's own of `kind`. An existing folder that
    holds anything but medcal's own marker of the same kind is refused, naming what is in it, so medcal never
    adopts (and later deletes) a folder of the user's."""
    folder = Path(folder)
    if folder.exists() and not is_marked(folder, kind):
        foreign = sorted(os.listdir(folder))
        if foreign:
            raise OutputError(f"The folder {folder} already holds files that medcal did not write "
                              f"({_names(foreign)}): medcal keeps its {kind} in a folder of its own. "
                              "Choose an empty or new folder.")
    folder.mkdir(parents=True, exist_ok=True)
    if not is_marked(folder, kind):
        fd, tmp = make_temp(folder)  # a temporary name the stale-partial sweep knows, should this be killed
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": kind, "by": "medcal"}) + "\n")
        os.replace(tmp, folder / MARKER)


def is_marked(folder: Path, kind: str) -> bool:
    """Whether `folder` (not a link) holds medcal's marker naming `kind`."""
    folder = Path(folder)
    marker = folder / MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink():
        return False
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == kind and data.get("by") == "medcal"


def remove_marked(folder: Path, kind: str) -> bool:
    """Remove `folder` if it is medcal's own of `kind`; True if removed. A folder without the marker is left
    exactly as it is (False)."""
    if not is_marked(folder, kind):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not Path(folder).exists()


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
