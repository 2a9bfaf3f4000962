"""`medcal tokens`: how many tokens calibration text makes for a model, and how they fill n_ctx chunks."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli.output import print_json
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.jobs import CancelToken

NAME = "tokens"
HELP = "count the tokens of calibration text with a model's tokenizer (chunks, records, chat markers)"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", type=Path, nargs="+", metavar="FILE", help="UTF-8 text (formatted or plain)")
    p.add_argument("-m", "--model", type=Path, required=True, metavar="MODEL", help="the .gguf model file")
    p.add_argument("-c", "--ctx", type=int, default=512, metavar="N", help="chunk size in tokens (default 512)")
    p.add_argument("--no-parse-special", action="store_true",
                   help="tokenize <start_of_turn> etc. as plain text (as llama-imatrix does without "
                        "--parse-special)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.calibrate.tokens import count_tokens
    from medcal_gui.core.errors import ModelError
    from medcal_gui.core.fsutil import check_input_file

    check_input_file(args.model, "model file", error=ModelError)  # a FIFO was reported as an empty file

    token = CancelToken()
    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(token):
        report = count_tokens(args.model, list(args.files), n_ctx=args.ctx,
                              parse_special=not args.no_parse_special, progress=bar, cancel=token)
    bar.close()
    if args.json:
        print_json(report.to_json())
    else:
        print("\n".join(report.summary_lines()))
    return 0
