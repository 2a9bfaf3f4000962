"""`medcal inspect`: what a GGUF model is, and what to watch for before calibrating and quantizing it."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli.output import print_json

NAME = "inspect"
HELP = "describe a GGUF model: architecture, size, file type, tokenizer, chat markers, warnings"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, metavar="MODEL", help="the .gguf model file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.core.errors import ModelError
    from medcal_gui.core.fsutil import check_input_file
    from medcal_gui.inspection.model_info import inspect_model

    check_input_file(args.model, "model file", error=ModelError)  # a FIFO was reported as an empty file

    info = inspect_model(args.model)
    if args.json:
        print_json(info.to_json())
    else:
        print("\n".join(info.summary_lines()))
    return 0
