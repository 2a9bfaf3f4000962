"""`medcal recipe`: one quant type per tensor, chosen to minimise the measured error under an exact size."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.jobs import CancelToken

NAME = "recipe"
HELP = "per-tensor quant types chosen to fit a size: the least measured error, as a GGUF and a tensor-type file"
DESCRIPTION = (
    "Quantize --model once per candidate type (--types) with the importance matrix, measure every tensor's "
    "importance-weighted error in each, weigh the errors by tensor class and depth with a few probes on the "
    "--heldout text (KL divergence), and choose the type of every tensor that minimises the weighted error "
    "within --target-size (the whole file, metadata included; never exceeded) or --target-bpw. Writes -o OUT.gguf "
    "(+ .sha256, manifest), OUT.tensor-types.txt (stock llama-quantize --tensor-type-file rebuilds it), and "
    "OUT.recipe.json/.md/.svg; with --heldout, the recipe and the stock types near its size are scored on it. "
    "The measured errors and probe figures are kept in BASE.recipe-work/ beside OUT and reused (a folder medcal "
    "marks as its own: one holding anything else is refused). Nothing is made before every setting and path is "
    "checked; a cancel removes a new OUT together with every file describing it."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", type=Path, required=True, metavar="BASE", help="the unquantized GGUF")
    p.add_argument("--imatrix", type=Path, required=True, metavar="FILE", help="importance matrix (medcal imatrix)")
    flags.add_target(p)
    p.add_argument("--heldout", type=Path, default=None, metavar="FILE",
                   help="held-out UTF-8 text the calibration never saw: weighs the errors and scores the result")
    p.add_argument("--types", type=flags.type_list, default=None, metavar="T1,T2,...",
                   help="candidate ggml tensor types (default: resources/recipe.toml), e.g. Q4_K,Q5_0,Q8_0,F16")
    p.add_argument("--compare", type=flags.type_list, default=None, metavar="T1,T2,...",
                   help="stock types to score against (default: those near the recipe's size)")
    p.add_argument("--ladder", type=Path, default=None, metavar="DIR",
                   help="a `medcal ladder` folder of the same model and imatrix: its rungs are the stock files "
                        "compared, and its figures are used when it scored the same --heldout text")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.gguf", help="the recipe's GGUF")
    flags.add_threads(p)
    flags.add_ctx(p, 512, "tokens per chunk for the probes and the scoring (default 512)")
    # counts are read as text and checked in run(): one line naming the flag, not argparse's usage
    p.add_argument("--probe-chunks", default=None, metavar="N",
                   help="held-out chunks each probe is scored on (default: resources/recipe.toml)")
    p.add_argument("--eval-chunks", default=None, metavar="N", help="scoring: at most N chunks")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.core.units import finite_float, parse_size
    from medcal_gui.workflows.recipe.recipe import run_recipe
    from medcal_gui.workflows.recipe.recipe_report import markdown

    size = None if args.target_size is None else parse_size(args.target_size, "--target-size")
    bpw = None if args.target_bpw is None else finite_float(args.target_bpw, "--target-bpw")
    probe_chunks = flags.whole_number(args.probe_chunks, "--probe-chunks")
    eval_chunks = flags.whole_number(args.eval_chunks, "--eval-chunks")
    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        res = run_recipe(args.model, args.imatrix, args.output, target_bytes=size, target_bpw=bpw,
                         heldout=args.heldout, types=args.types, threads=args.threads, n_ctx=args.ctx,
                         probe_chunks=probe_chunks, eval_chunks=eval_chunks, compare=args.compare,
                         ladder=args.ladder,
                         progress=bar, cancel=token)
    bar.close()
    if args.json:
        print(json.dumps(res.to_json(), indent=2, ensure_ascii=False))
        return 0
    print(markdown(res))
    for p in res.outputs.values():
        print(f"wrote {p}")
    return 0
