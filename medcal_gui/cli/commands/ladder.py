"""`medcal ladder`: which quant should I ship? Sweep types with one imatrix and one base pass; size,
fidelity and speed side by side, the trade-off drawn, one file recommended."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.output import print_json, print_warnings
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.jobs import CancelToken

NAME = "ladder"
HELP = "sweep quant types: size, KLD and llama-bench speed per type, and a recommendation"
DESCRIPTION = (
    "Quantize --model to each of --types with one importance matrix (--imatrix, or computed once from "
    "--calibration), score every rung on the --heldout text against one base pass (as `medcal eval`), and "
    "time each the way `llama-bench -p 512 -n 128` does. Writes the quants, ladder.json, ladder.md and "
    "ladder.svg into -d OUTDIR and recommends the smallest rung that meets --max-kld/--max-size/--min-tg "
    "(near-lossless, KLD <= 0.01, by default), or with only --max-size the best fidelity within it. "
    "A re-run reuses the rungs already finished with the same inputs."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", type=Path, required=True, metavar="BASE", help="the unquantized GGUF")
    p.add_argument("--heldout", type=Path, required=True, metavar="FILE",
                   help="held-out UTF-8 text the calibration never saw")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--imatrix", type=Path, default=None, metavar="FILE", help="importance matrix to use")
    src.add_argument("--calibration", type=Path, action="append", default=[], metavar="FILE",
                     help="calibration text to compute the importance matrix from (repeat)")
    p.add_argument("--types", type=flags.type_list, default=None, metavar="T1,T2,...",
                   help="quantization types (default: the ladder in resources/quant_types.toml)")
    flags.add_threads(p)
    p.add_argument("--questions", type=Path, default=None, metavar="FILE",
                   help="multiple-choice questions (JSONL, MedQA shape): adds each rung's accuracy, and the "
                        "questions it lost and gained against the base with the McNemar p")
    p.add_argument("--max-size", default=None, metavar="SIZE", help="largest acceptable file, e.g. 2.5GB")
    # numbers are read as text and checked in run(): argparse's float() takes nan, inf and 1e400
    p.add_argument("--max-kld", default=None, metavar="X", help="largest acceptable mean KLD")
    p.add_argument("--min-tg", default=None, metavar="TOKENS_PER_S",
                   help="slowest acceptable generation speed (tg128 tokens/s)")
    p.add_argument("-d", "--dir", type=Path, required=True, metavar="OUTDIR", help="folder for all outputs")
    flags.add_ctx(p, 512, "tokens per chunk for imatrix and eval (default 512)")
    p.add_argument("--eval-chunks", default=None, metavar="N", help="eval: at most N chunks")
    p.add_argument("--imatrix-chunks", default=None, metavar="N", help="imatrix: at most N chunks")
    p.add_argument("--reps", "-r", default="5", metavar="N", help="speed repetitions (default 5)")
    p.add_argument("--no-parse-special", action="store_true",
                   help="treat special-token text like <start_of_turn> as plain text")
    p.add_argument("--json", action="store_true", help="print ladder.json")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.core.units import finite_float, parse_size
    from medcal_gui.workflows.ladder.ladder import MAX_REPS, run_ladder
    from medcal_gui.workflows.ladder.ladder_report import markdown
    from medcal_gui.workflows.ladder.results import Constraints

    c = Constraints(max_kld=None if args.max_kld is None else finite_float(args.max_kld, "--max-kld", low=0),
                    max_size=None if args.max_size is None else parse_size(args.max_size, "--max-size"),
                    min_tg=None if args.min_tg is None else finite_float(args.min_tg, "--min-tg", low=0))
    reps = flags.whole_number(args.reps, "--reps", high=MAX_REPS)
    eval_chunks = flags.whole_number(args.eval_chunks, "--eval-chunks")
    imatrix_chunks = flags.whole_number(args.imatrix_chunks, "--imatrix-chunks")
    assert reps is not None
    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        res = run_ladder(args.model, args.heldout, imatrix=args.imatrix, calibration=list(args.calibration),
                         types=args.types, threads=args.threads, constraints=c, out_dir=args.dir, n_ctx=args.ctx,
                         eval_chunks=eval_chunks, imatrix_chunks=imatrix_chunks, reps=reps,
                         parse_special=not args.no_parse_special, questions=args.questions, progress=bar,
                         cancel=token)
    bar.close()
    if args.json:
        print_json(res.to_json())
        return 0
    print(markdown(res))
    print_warnings(res.warnings)
    for p in res.outputs.values():
        print(f"wrote {p}")
    print(f"{res.seconds:.0f} s")
    return 0
