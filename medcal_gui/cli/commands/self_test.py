"""`medcal self-test`: check, headless, that this installation (or stand-alone bundle) works end to end.

Also home of `--version`'s action, which reports every component's version (medcal, llama.cpp,
llama-cpp-python, Qt, Python). Qt is imported lazily, only for the Qt check and the version line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from medcal_gui.cli.output import print_json

NAME = "self-test"
HELP = "check headless that medcal works here: tiny model, format, imatrix, quantize, generate"
DESCRIPTION = (
    "Run medcal's whole pipeline on a tiny generated model in a temporary folder (removed afterwards): "
    "load the bundled data, start Qt without a window, format the sample narratives, compute an importance "
    "matrix, quantize to Q4_K_M in a child process, load the quant and generate a few tokens. Prints one "
    "line; exits 0 when everything worked, 1 otherwise. Use it to check a stand-alone bundle on a new machine."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-qt", action="store_true", help="skip the headless Qt check")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="work in DIR and leave the files there (default: a temporary folder, removed)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def qt_versions() -> dict[str, str]:
    from medcal_gui.ui.self_check import qt_versions as versions  # Qt stays in ui/

    return versions()


def all_versions() -> dict[str, str]:
    from medcal_gui.llama.versions import versions

    v = versions()
    build = v.pop("build")
    v.update(qt_versions())
    v["build"] = build
    return v


def version_text() -> str:
    v = all_versions()
    return "\n".join([f"medcal {v.pop('medcal')}"] + [f"{k}: {val}" for k, val in v.items()])


class VersionAction(argparse.Action):
    """`--version`: medcal's, llama.cpp's, Qt's and Python's versions, one a line (computed only when asked)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0,
                         help=help or "show the versions of medcal, llama.cpp, Qt and Python, and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(version_text())
        parser.exit()


def step_qt(work: Path) -> str:
    from medcal_gui.ui.self_check import step_qt as step

    return step(work)


def run(args: argparse.Namespace) -> int:
    from medcal_gui.workflows.self_test import StepResult, run_self_test

    verbose = bool(getattr(args, "verbose", False))

    def show(step: StepResult) -> None:
        if verbose:
            state = "ok" if step.ok else "FAILED"
            print(f"  {step.name}: {state} in {step.seconds:.1f} s: {step.detail or step.error}", file=sys.stderr)
            if step.traceback:
                print(step.traceback, file=sys.stderr)

    if args.keep is not None:
        from medcal_gui.core.fsutil import check_output_dir

        check_output_dir(args.keep, "folder to keep the files in (--keep)")  # a file there was a traceback
    extra = [] if args.no_qt else [("qt", step_qt)]
    res = run_self_test(extra, keep=args.keep, on_step=show)
    if args.json:
        doc = res.to_json()
        doc["versions"] = all_versions()
        print_json(doc)
    else:
        print(res.summary_line())
    if not res.ok:
        bad = res.failed
        if bad is not None and bad.traceback and not verbose:
            print("medcal self-test: run with -v (medcal -v self-test) for the full error.", file=sys.stderr)
        return 1
    return 0
