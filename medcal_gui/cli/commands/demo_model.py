"""`medcal demo-model`: prepare (once) the F16 Gemma 3 270M demo model and print its path."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.output import print_json
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.jobs import CancelToken
from medcal_gui.gguf_files import DEMO_MODEL_LABEL

NAME = "demo-model"
HELP = "prepare the demo model (Gemma 3 270M dequantized to F16) and print its path"
DESCRIPTION = (HELP + ". " + DEMO_MODEL_LABEL + ". It is made once from the weights packaged with medcal "
               "and reused afterwards.")


def configure(p: argparse.ArgumentParser) -> None:
    flags.add_deprecated(p, "-o", "output_dir", "-d DIR", convert=Path)
    flags.add_deprecated(p, "--output-dir", "output_dir", "--dir DIR", convert=Path)
    p.add_argument("-d", "--dir", dest="output_dir", type=Path, metavar="DIR",
                   help="folder to keep it in (default: medcal's model cache)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    token = CancelToken()
    bar = TerminalProgress(quiet=args.json)
    from medcal_gui.gguf_files.demo_model import demo_model_ready, prepare_demo_model

    if args.output_dir is not None:
        from medcal_gui.core.fsutil import check_output_dir

        check_output_dir(args.output_dir)  # a file or FIFO there was "File exists", after the work started
    reused = demo_model_ready(args.output_dir)
    with sigint_cancels(token):
        path = prepare_demo_model(args.output_dir, progress=bar, cancel=token)
    bar.close()
    if args.json:
        print_json({"path": str(path), "label": DEMO_MODEL_LABEL, "size_bytes": path.stat().st_size,
                    "reused": reused})
    else:
        print(path)
    return 0
