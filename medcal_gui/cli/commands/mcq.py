"""`medcal mcq`: multiple-choice accuracy of one or more models, and the verdicts that flipped between them."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.output import print_json
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.jobs import CancelToken

NAME = "mcq"
HELP = "multiple-choice accuracy on a question file (MedQA-style JSONL), with flips and McNemar's test"
DESCRIPTION = (
    "Score every option of every question by the log-likelihood of its tokens after the question (rendered "
    "through the model's chat template), as llama.cpp's --multiple-choice and lm-eval-harness do; the "
    "question is evaluated once and shared by its options. Prints each model's accuracy with a 95 %% "
    "confidence interval and, for every --model after the first, the questions it lost and gained against "
    "the first with an exact McNemar p-value. A sample smoke set (not a benchmark) ships in "
    "resources/samples/questions/."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", type=Path, action="append", required=True, metavar="MODEL",
                   help="GGUF to score (repeat: the first is the reference for flips)")
    p.add_argument("--questions", type=Path, required=True, metavar="FILE",
                   help="JSONL: question, options (letter -> text, or a list), answer (letter or index)")
    flags.add_ctx(p, 2048, "context size in tokens (default 2048)")
    flags.add_threads(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.behaviour.mcq import run_mcq

    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        res = run_mcq(list(args.model), args.questions, n_ctx=args.ctx, threads=args.threads, progress=bar,
                      cancel=token)
    bar.close()
    if args.json:
        print_json(res.to_json())
        return 0
    print(f"{res.n_questions} questions from {res.questions}")
    width = max(len(m.name) for m in res.models)
    for m in res.models:
        print(f"  {m.name.ljust(width)}  accuracy {m.accuracy.text()}  ({m.tokens_evaluated} tokens, "
              f"{m.seconds:.1f} s)")
    for f in res.flips:
        verdict = "not more than chance" if f.p_value >= 0.05 else "more than chance"
        print(f"  {f.b} against {f.a}: lost {len(f.lost)}, gained {len(f.gained)}; exact McNemar "
              f"p = {f.p_value:.3g} ({verdict} at 5 %)")
        if f.lost:
            print(f"    lost: {', '.join(f.lost)}")
        if f.gained:
            print(f"    gained: {', '.join(f.gained)}")
    return 0
