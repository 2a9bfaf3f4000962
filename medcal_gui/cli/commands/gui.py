"""`medcal gui`: open the desktop app (also what `medcal` with no command does)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "gui"
HELP = "open the desktop app"
DESCRIPTION = ("Open the desktop workbench. --screenshot DIR opens it with the sample data, saves one PNG per "
               "pane into DIR and exits (works without a display with QT_QPA_PLATFORM=offscreen).")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--screenshot", type=Path, metavar="DIR",
                   help="save one screenshot per pane into DIR, then exit")
    p.add_argument("-m", "--model", type=Path, metavar="PATH", help="a GGUF model to start with")


def run(args: argparse.Namespace) -> int:
    import sys

    from medcal_gui.cli import setup_check

    # The same check as `make run`'s, before Qt loads: without it a missing system library (or no display)
    # aborts the process in Qt's plugin loader (SIGABRT) with a message that can name the wrong library.
    code, message = setup_check.check()
    if code:
        print(f"medcal gui: error: {message}", file=sys.stderr)
        return 2
    # Qt is imported only here, so the other commands run without it.
    from medcal_gui.ui.app import run_gui

    return run_gui(model=getattr(args, "model", None), screenshot=getattr(args, "screenshot", None),
                   verbose=bool(getattr(args, "verbose", False)))
