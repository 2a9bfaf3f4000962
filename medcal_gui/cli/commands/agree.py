"""`medcal agree`: greedy answers of a base and its quants to the same prompts, compared."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.output import print_json
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.jobs import CancelToken

NAME = "agree"
HELP = "compare the greedy answers of quants with their base's (identical %, similarity, clinical facts kept)"
DESCRIPTION = (
    "Answer every prompt with --base and each --model greedily (temperature 0) through the model's chat "
    "template, stopping at end of turn or after -n tokens, and compare: identical answers, the first token "
    "where they part, edit similarity and ROUGE-L, and the clinical facts of the base's answer (numbers with "
    "units, rhythm/diagnosis terms from resources/clinical_lexicon.toml, negations) kept by the quant. "
    "--prompts is a JSONL ({\"id\", \"prompt\"} or {\"id\", \"messages\"}) or narrative files, turned into "
    "prompts by --variant on the held-out records (the last 20 %%, as step 3 keeps them out)."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", "-b", type=Path, required=True, metavar="BASE", help="the unquantized GGUF")
    p.add_argument("--model", "-m", type=Path, action="append", required=True, metavar="QUANT",
                   help="quantized GGUF to compare (repeat for several)")
    p.add_argument("--prompts", "-p", type=Path, nargs="+", required=True, metavar="FILE",
                   help="a prompts JSONL, or narrative files")
    p.add_argument("-n", "--max-tokens", type=int, default=128, metavar="N", help="tokens per answer (128)")
    p.add_argument("--variant", default=None, help="prompt variant for narrative files (default: the default)")
    p.add_argument("--all-records", action="store_true", help="use every record, not only the held-out ones")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N prompts")
    flags.add_ctx(p, 2048, "context size in tokens (default 2048)")
    flags.add_threads(p)
    p.add_argument("-d", "--dir", dest="outdir", type=Path, default=None, metavar="DIR",
                   help="write agree.json, agree.html and agree.md (side by side, differences marked) here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


OUTPUT_NAMES = ("agree.html", "agree.md", "agree.json")


def check_outputs(outdir: Path, inputs: list[Path]) -> None:
    """Refuse, before any model is loaded, outputs medcal could not write safely: one that is an input, a
    folder, a FIFO or a device, or a DIR that is a file."""
    from medcal_gui.core.fsutil import check_output_path

    for name in OUTPUT_NAMES:
        check_output_path(outdir / name, inputs, what="agreement report")


def write_outputs(res: object, outdir: Path, inputs: list[Path]) -> list[str]:
    from medcal_gui.behaviour.agree import AgreeResult
    from medcal_gui.behaviour.agree_report import render_html, render_markdown
    from medcal_gui.core.fsutil import ensure_dir, write_text_atomic

    assert isinstance(res, AgreeResult)
    check_outputs(outdir, inputs)  # again: the folder may have changed during the minutes of work
    ensure_dir(outdir)
    targets = {"agree.html": render_html(res), "agree.md": render_markdown(res)}
    paths = [outdir / n for n in OUTPUT_NAMES]
    res.outputs = [str(p) for p in paths]
    for name, text in targets.items():
        write_text_atomic(outdir / name, text)
    write_text_atomic(outdir / "agree.json", json.dumps(res.to_json(), indent=2, ensure_ascii=False) + "\n")
    return res.outputs


def run(args: argparse.Namespace) -> int:
    from medcal_gui.behaviour.agree import agree, load_prompts
    from medcal_gui.behaviour.agree_report import summary_table

    inputs = [args.base, *args.model, *args.prompts]
    if args.outdir is not None:
        check_outputs(args.outdir, inputs)
    prompts = load_prompts(list(args.prompts), variant=args.variant, held_out=not args.all_records,
                           limit=args.limit)
    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        res = agree(args.base, list(args.model), prompts, n_max=args.max_tokens, n_ctx=args.ctx,
                    threads=args.threads, progress=bar, cancel=token)
        bar.close()
        if args.outdir is not None:
            # under the handler too: a SIGTERM while writing finishes these small atomic writes instead of
            # killing the process between a temporary file and its rename (a .medcal-partial-* left behind)
            token.check()
            write_outputs(res, args.outdir, inputs)
    if args.json:
        print_json(res.to_json())
        return 0
    print(f"{res.n_prompts} prompts, {res.decoding}, at most {res.n_max} tokens; base {res.base.name}")
    print(summary_table(res))
    for o in res.outputs:
        print(f"wrote {o}")
    return 0
