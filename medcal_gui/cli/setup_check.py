"""`python -m medcal_gui.cli.setup_check`: before the window opens, check that Qt's X11 (xcb) platform plugin
finds every system library it needs, and print the exact `apt-get install` line for those missing.

Qt's own message on a missing library names the wrong one ("xcb-cursor0 ... is needed" when libxcb-cursor0
is there and libxcb-icccm4 is not), so this asks the dynamic linker (`ldd`) instead. Imports no Qt.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_SONAME = re.compile(r"^lib(.+?)\.so\.(\d+)")


def qt_dir() -> Path | None:
    """PySide6's Qt folder (…/PySide6/Qt), found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "Qt"


def xcb_libraries(qt: Path) -> list[Path]:
    """The xcb platform plugin and the Qt library that carries most of its X11 dependencies."""
    return [p for p in (qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6XcbQpa.so.6")
            if p.is_file()]


def missing_libraries(files: Sequence[Path]) -> list[str]:
    """Shared libraries that `ldd` reports as "not found" for any of `files`, sorted, each once."""
    missing: set[str] = set()
    for f in files:
        out = subprocess.run(["ldd", str(f)], capture_output=True, text=True, check=False).stdout
        missing.update(_NOT_FOUND.findall(out))
    return sorted(missing)


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships `soname`, by Debian's library naming policy:
    libxcb-icccm.so.4 -> libxcb-icccm4, libxkbcommon-x11.so.0 -> libxkbcommon-x11-0, libGL.so.1 -> libgl1."""
    m = _SONAME.match(soname)
    if not m:
        return soname
    name, version = m.group(1).lower(), m.group(2)
    return f"lib{name}{'-' if name[-1].isdigit() else ''}{version}"


def apt_line(missing: Sequence[str]) -> str:
    return "sudo apt-get install " + " ".join(dict.fromkeys(debian_package(s) for s in missing))


def check(files: Sequence[Path] | None = None) -> tuple[int, str]:
    """(exit code, message): 0 when the plugin's libraries are all there (or nothing can be checked)."""
    if shutil.which("ldd") is None or not sys.platform.startswith("linux"):
        return 0, ""
    platform = os.environ.get("QT_QPA_PLATFORM", "xcb").split(":")[0]
    if platform not in ("", "xcb"):
        return 0, ""  # another platform (offscreen, wayland) was asked for: the xcb plugin is not used
    if files is None:
        qt = qt_dir()
        if qt is None:
            return 1, "PySide6 is not installed in this environment: run `make run` again to set it up."
        files = xcb_libraries(qt)
    missing = missing_libraries(files)
    if not missing:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            # Qt would print "could not connect to display" and abort the process (SIGABRT, a core dump)
            return 1, ("The window cannot open: there is no display (DISPLAY is not set). Run it from a desktop "
                       "session, or set QT_QPA_PLATFORM=offscreen for screenshots; every other command works "
                       "without a display.")
        return 0, ""
    return 1, ("The window cannot open: Qt's X11 plugin needs system libraries that are not installed ("
               + ", ".join(missing) + "). Install them with:\n    " + apt_line(missing)
               + "\n(or your distribution's packages of the same names), then run `make run` again.")


def main() -> int:
    code, message = check()
    if message:
        print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
