"""`medcal pipeline`: narratives to a calibrated quant in one go."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.dataset_args import add_format_args, add_load_args, load_options
from medcal_gui.cli.output import print_json, print_warnings
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.jobs import CancelToken
from medcal_gui.core.units import format_bytes
from medcal_gui.dataset.holdout import HELDOUT_FRACTION

NAME = "pipeline"
HELP = "format, validate, compute the imatrix and quantize in one go (the GUI's steps 1-3)"
DESCRIPTION = (
    "The GUI's workflow without the window, with its defaults and file names: the last "
    f"{HELDOUT_FRACTION:.0%} of the records are held out (--no-hold-out to use all), the rest formatted "
    "and validated, the importance matrix computed and the model quantized. Ctrl-C or a failure removes "
    "everything this run wrote and restores what it had replaced."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--narratives", nargs="+", type=Path, required=True, metavar="FILE",
                   help="narrative files or folders")
    p.add_argument("-m", "--model", type=Path, required=True, help="the F16/BF16/F32 GGUF to quantize")
    p.add_argument("--type", required=True, help="quant type, e.g. Q4_K_M, IQ4_XS, IQ3_XXS")
    p.add_argument("-d", "--dir", type=Path, required=True, metavar="OUTDIR", help="folder for every artefact")
    flags.add_ctx(p, 512, "imatrix chunk size in tokens (default 512)")
    p.add_argument("--chunks", type=int, help="process at most N chunks")
    flags.add_threads(p)
    p.add_argument("--no-hold-out", action="store_true",
                   help=f"calibrate on every record (default: the last {HELDOUT_FRACTION:.0%} are held out, as in "
                        "the GUI, and written as the .heldout.txt for `medcal eval`)")
    p.add_argument("--json", action="store_true")
    add_format_args(p)
    add_load_args(p)


def run(args: argparse.Namespace) -> int:
    from medcal_gui.core.errors import ModelError
    from medcal_gui.core.fsutil import check_input_file, check_output_dir
    from medcal_gui.workflows.pipeline import run_pipeline

    check_input_file(args.model, "model file", error=ModelError)  # a folder x.gguf was "does not exist"
    check_output_dir(args.dir)

    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        res = run_pipeline(args.narratives, args.model, args.type, args.dir, variant=args.variant,
                           layout=args.layout, hold_out=not args.no_hold_out,
                           options=load_options(args), n_ctx=args.ctx, n_chunks=args.chunks,
                           threads=args.threads, progress=bar, cancel=token)
    bar.close()
    if args.json:
        print_json(res.to_json())
        return 0
    held = f", {res.held_out} held out to {res.heldout}" if res.heldout else ""
    print(f"{res.records} records formatted to {res.calibration}{held}")
    imat = res.run.imatrix
    if imat:
        print(f"imatrix: {imat.entries} entries from {imat.chunks} chunks -> {imat.out}")
    q = res.run.quant
    print(f"quantized {q.qtype}: {format_bytes(q.output_bytes)} -> {q.out} ({res.seconds:.1f} s in all)")
    print_warnings(res.warnings)
    return 0
