"""`medcal` command line. Each subcommand lives in `medcal_gui/cli/commands/<name>.py` and exposes
`NAME`, `HELP`, `configure(parser)` and `run(args) -> int`. With no subcommand the GUI opens."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import ModuleType

from medcal_gui.cli.commands.self_test import VersionAction
from medcal_gui.cli.hints import cli_message
from medcal_gui.core.errors import MedcalError

COMMAND_MODULES = [
    "format", "validate", "inspect", "tokens", "imatrix", "quantize", "demo_model", "pipeline",
    "eval", "compare_calibrations", "ladder", "recipe", "agree", "mcq", "chat", "convert", "self_test", "gui",
    "cache", "publish", "report",
]


def _load_commands(only: str | None = None) -> list[ModuleType]:
    mods = []
    for name in COMMAND_MODULES:
        if only is not None and name.replace("_", "-") != only:
            continue
        full = f"medcal_gui.cli.commands.{name}"
        if importlib.util.find_spec(full) is not None:
            mods.append(importlib.import_module(full))
    return mods


def _named_command(argv: Sequence[str]) -> str | None:
    """The command an argument list names (its first word that is not an option), if it is one of ours."""
    word = next((a for a in argv if not a.startswith("-")), None)
    known = {m.replace("_", "-") for m in COMMAND_MODULES}
    return word if word in known else None


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The whole parser, or (`only`) the parser of one command: a command started by name loads just its own
    module (21 modules took 80 ms, and `medcal quantize` starts its child only after its parser is built)."""
    parser = argparse.ArgumentParser(
        prog="medcal",
        description="Calibrate, quantize and verify a medical LLM (GGUF) offline. "
                    "With no command, the desktop app opens.",
    )
    parser.add_argument("--version", action=VersionAction)  # medcal, llama.cpp, Qt and Python versions
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging (and llama.cpp's log)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    by_name: dict[str, ModuleType] = {}
    for mod in _load_commands(only):
        # argparse %-formats help strings (for %(default)s): a plain "%" in a command's summary is kept as is
        p = sub.add_parser(mod.NAME, help=mod.HELP.replace("%", "%%"),
                           description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.configure(p)
        by_name[mod.NAME] = mod
    return parser, by_name


def main(argv: Sequence[str] | None = None) -> int:
    global _reported
    _reported = False
    try:
        rc = _dispatch(argv)
    except KeyboardInterrupt:
        # a signal outside a command's own handling: during start-up, or a late second Ctrl-C after the job's
        # cancel was already reported (uncaught, Python ended the process "killed by SIGINT", exit -2)
        if not _reported:
            print("medcal: cancelled", file=sys.stderr)
        rc = 130
    if argv is None:
        # The command is over: a signal from now on must not change its exit status or print a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # The process ends now (the command line's own run, not a caller's): the interpreter's last garbage
        # collection walked every object of numpy and the app, 16 ms of every command, to free memory the
        # process hands back anyway. Frozen objects are left out of it; files and atexit hooks close as usual.
        gc.freeze()
    return rc


_reported = False  # whether this run has printed its error or cancel line


def _report() -> None:
    global _reported
    _reported = True


def _term_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _dispatch(argv: Sequence[str] | None) -> int:
    # The CPU probe uses the spawn start method; a frozen bundle needs this first (elsewhere it does nothing,
    # and importing multiprocessing cost every command 5 ms).
    if getattr(sys, "frozen", False):
        import multiprocessing

        multiprocessing.freeze_support()
    if argv is None and sys.argv[1:2] == ["--medcal-quantize-child"]:  # a bundle's quantize child
        return int(importlib.import_module("medcal_gui.quantize.quantize_child").main())
    if argv is None and _named_command(sys.argv[1:]) not in (None, "gui"):
        # `kill PID` before a command's job has started (parsing, reading inputs) ends it as Ctrl-C does, with
        # its one "cancelled" line: the default action killed the process without a word. A job's own handler
        # (progress.sigint_cancels) takes over while it runs. The window keeps Qt's own handling.
        signal.signal(signal.SIGTERM, _term_as_interrupt)
    parser, commands = build_parser(_named_command(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    name = args.command or "gui"
    if name not in commands:
        parser.print_help()
        return 0
    try:
        return int(commands[name].run(args) or 0)
    except MedcalError as exc:
        _report()
        print(f"medcal {name}: error: {cli_message(exc)}", file=sys.stderr)
        if exc.details and args.verbose:
            print(exc.details, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _report()
        print(f"medcal {name}: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `medcal validate FILE | head`: the reader left; say nothing more and let nothing flush into the pipe
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
