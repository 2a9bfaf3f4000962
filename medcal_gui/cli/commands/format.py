"""`medcal format`: narratives in, the formatted calibration file (or the seed's whole set) out."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli.dataset_args import add_format_args, add_load_args, load_options
from medcal_gui.cli.hints import cli_hint
from medcal_gui.cli.output import print_json
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.errors import InputError
from medcal_gui.core.jobs import CancelToken
from medcal_gui.dataset.export import export_dataset
from medcal_gui.dataset.formatting import DEFAULT_OUTPUT
from medcal_gui.dataset.variants import get_variant

NAME = "format"
HELP = "format narratives into the Gemma chat calibration file"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", type=Path,
                   help="narrative files (.txt, .jsonl, .csv) or folders")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help=f"formatted file to write (default: ./{DEFAULT_OUTPUT})")
    p.add_argument("-d", "--dir", type=Path, metavar="DIR", help="folder for the outputs")
    p.add_argument("--all-variants", action="store_true",
                   help="write the seed's whole set: every variant, the original format, the log and a README")
    p.add_argument("--latin1-copy", action="store_true",
                   help="also write a latin-1 copy of the formatted file when every character fits")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_format_args(p)
    add_load_args(p)


def run(args: argparse.Namespace) -> int:
    if args.output and args.dir:
        raise InputError("Use either -o FILE or -d DIR, not both.")
    if args.output and args.all_variants:
        raise InputError("--all-variants writes several files: give a folder with -d DIR instead of -o.")
    variant = get_variant(args.variant)
    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        res = export_dataset(args.inputs, out=args.output, dest_dir=args.dir, all_variants=args.all_variants,
                             variant=variant, layout=args.layout, options=load_options(args),
                             latin1_copy=args.latin1_copy, progress=bar, cancel=token)
    bar.close()
    if args.json:
        print_json(res.to_json())
        return 0
    for f in res.files:
        conf = f" (chardet confidence {f['chardet_confidence']:.2f})" if f["chardet_confidence"] else ""
        print(f"{f['path']}: read as {f['encoding']} ({f['note']}){conf}")
    pops = ", ".join(f"{v} {k}" for k, v in sorted(res.populations.items()))
    print(f"{res.records} records ({pops}); variant {res.variant}, layout {res.layout}; "
          f"{res.seconds:.2f} s")
    hints = {i.message: i.hint for i in res.issues}
    for w in res.warnings:
        print(f"warning: {w}{cli_hint(hints.get(w))}")
    for n in res.notes:
        print(f"note: {n}")
    for p in res.outputs:
        print(f"wrote {p}")
    return 0
