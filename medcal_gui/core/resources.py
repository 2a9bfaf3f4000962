"""Where the bundled data lives: `resources/` beside the package (source tree or editable install),
inside a PyInstaller bundle, or wherever MEDCAL_RESOURCES points."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    env = os.environ.get("MEDCAL_RESOURCES")
    candidates = [Path(env)] if env else []
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        candidates.append(Path(meipass) / "resources")
    here = Path(__file__).resolve().parent
    candidates += [here.parent.parent / "resources", here.parent / "resources"]
    for c in candidates:
        if (c / "variants").is_dir():
            return c
    raise FileNotFoundError("medcal's resources folder was not found (looked in: "
                            + ", ".join(str(c) for c in candidates) + ")")


def variants_dir() -> Path:
    return resources_dir() / "variants"


def samples_dir() -> Path:
    return resources_dir() / "samples"


def user_data_dir() -> Path:
    """Per-user folder for user variants and caches (XDG on Linux)."""
    base = os.environ.get("MEDCAL_HOME")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "medcal"


def user_cache_dir() -> Path:
    base = os.environ.get("MEDCAL_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "medcal"


def user_variants_dir() -> Path:
    return user_data_dir() / "variants"
