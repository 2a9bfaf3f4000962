"""`medcal imatrix`: compute llama.cpp's importance matrix over formatted calibration files."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.output import print_json, print_warnings
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.jobs import CancelToken

NAME = "imatrix"
HELP = "compute an importance matrix (llama-imatrix) over calibration text"
DESCRIPTION = (
    "Run the model over the calibration text in chunks of --ctx tokens and record, for every weight matrix, "
    "how strongly each input column is used (llama.cpp's importance matrix). The result guides "
    "`medcal quantize --imatrix`. Special tokens such as <start_of_turn> are parsed (unlike llama-imatrix's "
    "default); --no-parse-special turns that off."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", type=Path, required=True, metavar="MODEL",
                   help="GGUF model (F16/F32 best)")
    p.add_argument("--calibration", type=Path, nargs="+", metavar="FILE",
                   help="UTF-8 calibration text files (from `medcal format`), read in order")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="imatrix file to write")
    flags.add_ctx(p, 512, "tokens per chunk (default 512)")
    flags.add_deprecated(p, "-f", "calibration", "--calibration FILE...", convert=Path, nargs="+")
    p.add_argument("--chunks", type=int, default=None, metavar="N", help="process at most N chunks")
    flags.add_threads(p)
    p.add_argument("--no-parse-special", action="store_true",
                   help="treat special-token text like <start_of_turn> as plain text")
    p.add_argument("--ppl", action="store_true", help="also report perplexity (second half of each chunk)")
    p.add_argument("--process-output", action="store_true", help="also collect output.weight")
    p.add_argument("--format", choices=["gguf", "dat"], default=None,
                   help="output format (default: dat when OUT ends in .dat, else gguf)")
    p.add_argument("--in-file", type=Path, nargs="+", default=[], metavar="IMATRIX",
                   help="earlier imatrix files to merge into the result")
    p.add_argument("--gpu-layers", type=int, default=0, metavar="N", help="layers to offload to a GPU")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    flags.require(args, "calibration", "--calibration FILE...")
    from medcal_gui.calibrate.imatrix import compute_imatrix
    from medcal_gui.core.errors import ModelError
    from medcal_gui.core.fsutil import check_input_file, check_output_path

    # before any work: a folder or FIFO as the model or a matrix (a FIFO hung the reader), and an output that
    # is a folder (a traceback after the work), a FIFO (replaced by a file) or an input
    check_input_file(args.model, "model file", error=ModelError)
    for f in args.in_file:
        check_input_file(f, "importance matrix (--in-file)")
    check_output_path(args.output, [args.model, *args.calibration, *args.in_file], what="importance matrix")

    fmt = args.format or ("dat" if args.output.suffix.lower() == ".dat" else "gguf")
    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        res = compute_imatrix(
            args.model, list(args.calibration), n_ctx=args.ctx, n_chunks=args.chunks, threads=args.threads,
            parse_special=not args.no_parse_special, compute_ppl=args.ppl, process_output=args.process_output,
            n_gpu_layers=args.gpu_layers, in_files=list(args.in_file), out=args.output, out_format=fmt,
            progress=bar, cancel=token,
        )
    bar.close()
    if args.json:
        print_json(res.to_json())
        return 0
    print(f"{res.entries} entries from {res.chunks} chunks of {res.chunk_size} tokens "
          f"({res.tokens_processed} of {res.tokens_total} tokens; {res.tokens_per_s:.0f} tokens/s, "
          f"{res.elapsed_s:.1f} s)")
    if res.ppl is not None:
        err = f" +/- {res.ppl_stderr:.4f}" if res.ppl_stderr is not None else ""
        print(f"perplexity {res.ppl:.4f}{err}")
    print_warnings(res.warnings)
    print(f"wrote {res.out} ({res.format}, chunk_count {res.chunk_count})")
    return 0
