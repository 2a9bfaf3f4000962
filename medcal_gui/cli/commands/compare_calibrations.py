"""`medcal compare-calibrations`: quantize once per calibration text and rank the quants on held-out text."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.output import print_json, print_warnings
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.errors import InputError
from medcal_gui.core.jobs import CancelToken

NAME = "compare-calibrations"
HELP = "A/B calibration texts: imatrix + quantize + KLD on held-out text for each"
DESCRIPTION = (
    "For each --calibration NAME=FILE: compute the importance matrix, quantize --model to --type with it, "
    "then score every quant against --model on the --heldout text (KL divergence, llama-perplexity's "
    "method) and rank them by mean KLD. Writes the imatrix and quant files, comparison.md, comparison.json "
    "and comparison.svg (a plain SVG figure, written after the tables) into -d OUTDIR. The held-out text "
    "may not be, or be contained in, any calibration file. --include-no-imatrix adds a baseline without "
    "calibration text (a uniform matrix for types llama.cpp refuses to make without one, such as IQ3_XXS)."
)


def _calibration(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {value!r}")
    return name, Path(path)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", type=Path, required=True, metavar="BASE", help="the unquantized GGUF")
    p.add_argument("--type", metavar="TYPE", help="quantization type, e.g. IQ3_XXS")
    p.add_argument("--heldout", type=Path, required=True, metavar="FILE",
                   help="held-out UTF-8 text the calibrations never saw")
    p.add_argument("--calibration", type=_calibration, action="append", default=[], metavar="NAME=FILE",
                   help="a candidate calibration text (repeat)")
    p.add_argument("--include-no-imatrix", action="store_true", help="add a baseline without calibration text")
    p.add_argument("-d", "--dir", type=Path, required=True, metavar="OUTDIR", help="folder for all outputs")
    flags.add_ctx(p, 512, "tokens per chunk for imatrix and eval (default 512)", old_calibration=_calibration)
    # counts are read as text and checked in run(): one line naming the flag, not argparse's usage
    p.add_argument("--imatrix-chunks", default=None, metavar="N", help="imatrix: at most N chunks")
    p.add_argument("--eval-chunks", default=None, metavar="N", help="eval: at most N chunks")
    flags.add_threads(p)
    flags.add_deprecated(p, "-q", "type", "--type TYPE")
    p.add_argument("--no-parse-special", action="store_true",
                   help="treat special-token text like <start_of_turn> as plain text")
    p.add_argument("--no-plot", action="store_true", help="do not write comparison.svg")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    flags.require(args, "type", "--type TYPE")
    from medcal_gui.workflows.compare_calibrations import compare_calibrations, markdown_table

    if not args.calibration and not args.include_no_imatrix:
        raise InputError("Give at least one --calibration NAME=FILE (or --include-no-imatrix).")
    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        res = compare_calibrations(
            args.model, args.type, args.heldout, args.calibration, args.dir,
            include_no_imatrix=args.include_no_imatrix, n_ctx=args.ctx,
            imatrix_chunks=flags.whole_number(args.imatrix_chunks, "--imatrix-chunks"),
            eval_chunks=flags.whole_number(args.eval_chunks, "--eval-chunks"), threads=args.threads,
            parse_special=not args.no_parse_special,
            plot=not args.no_plot, progress=bar, cancel=token)
    bar.close()
    if args.json:
        print_json(res.to_json())
        return 0
    print(markdown_table(res))
    print_warnings(res.warnings)
    for p in (res.table_md, res.table_json, res.plot):
        if p is not None:
            print(f"wrote {p}")
    print(f"{res.seconds:.0f} s")
    return 0
