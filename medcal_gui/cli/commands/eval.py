"""`medcal eval`: perplexity and KL divergence of quants against their base (llama-perplexity's method)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.output import print_json, print_warnings
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.core.errors import MedcalError, OutputError
from medcal_gui.core.jobs import CancelToken

NAME = "eval"
HELP = "compare quantized models with their base (KL divergence, perplexity)"
DESCRIPTION = (
    "Score each --model against --base on a held-out text the way `llama-perplexity --kl-divergence` does: "
    "chunks of --ctx tokens with BOS first, scored on their second half. The base's pass is cached (by the "
    "files' sha256), so more quants of the same base cost one pass each. Special tokens such as "
    "<start_of_turn> are parsed unless --no-parse-special (llama-perplexity never parses them; with that "
    "flag the figures match it)."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", "-b", type=Path, required=True, metavar="BASE", help="the unquantized GGUF")
    p.add_argument("--model", "-m", type=Path, action="append", required=True, metavar="QUANT",
                   help="quantized GGUF to verify (repeat for several)")
    p.add_argument("--text", type=Path, metavar="FILE",
                   help="held-out UTF-8 text (not the calibration text)")
    flags.add_ctx(p, 512, "tokens per chunk (default 512)")
    flags.add_deprecated(p, "-f", "text", "--text FILE", convert=Path)
    p.add_argument("--chunks", type=int, default=None, metavar="N", help="score at most N chunks")
    flags.add_threads(p)
    p.add_argument("--no-parse-special", action="store_true",
                   help="treat special-token text like <start_of_turn> as plain text (as llama-perplexity)")
    p.add_argument("--no-cache", action="store_true", help="run the base pass again (and refresh its cache)")
    p.add_argument("--plot", type=Path, default=None, metavar="SVG",
                   help="write an SVG figure: KLD histogram per model and the perplexity ratios")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _table(res: object) -> str:
    from medcal_gui.evaluate.evaluate import EvalResult

    assert isinstance(res, EvalResult)
    head = ("model", "PPL", "PPL ratio", "mean KLD", "median", "99%", "max", "same top", "RMS dp")
    rows = [head]
    for m in res.models:
        rows.append((m.name, f"{m.ppl_model:.4f}", f"{m.ppl_ratio:.4f}", f"{m.kld_mean:.6f}",
                     f"{m.kld_median:.6f}", f"{m.kld_p99:.5f}", f"{m.kld_max:.4f}",
                     f"{m.same_top_pct:.2f} %", f"{m.rms_dp_pct:.3f} %"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    def line(r: tuple[str, ...]) -> str:
        cells = zip(r, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join(line(r) for r in rows)


def run(args: argparse.Namespace) -> int:
    flags.require(args, "text", "--text FILE")
    from medcal_gui.core.fsutil import check_output_path
    from medcal_gui.evaluate.evaluate import evaluate

    if args.plot is not None:
        # checked before the work: never over an input, never a folder or a device
        check_output_path(args.plot, [args.base, *args.model, args.text])
        if args.plot.suffix.lower() != ".svg":
            raise OutputError(f"--plot writes an SVG figure: name it .svg (got {args.plot}).")
    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        res = evaluate(args.base, list(args.model), args.text, n_ctx=args.ctx, threads=args.threads,
                       parse_special=not args.no_parse_special, n_chunks=args.chunks,
                       use_cache=not args.no_cache, progress=bar, cancel=token)
    bar.close()
    plot = None
    if args.plot is not None:
        from medcal_gui.core.svg_chart import plot_eval

        try:
            plot = plot_eval([m.name for m in res.models], [m.kld_values for m in res.models],
                             [m.ppl_ratio for m in res.models], args.plot,
                             title=f"{res.base.name} on {Path(res.text).name} (n_ctx {res.n_ctx})")
        except (MedcalError, OSError) as exc:  # the figures stand without the plot: print them anyway
            why = exc.message if isinstance(exc, MedcalError) else (exc.strerror or str(exc))
            res.warnings.append(f"The plot {args.plot} was not written ({why}).")
    if args.json:
        d = res.to_json()
        if plot is not None:
            d["plot"] = str(plot)
        print_json(d)
        return 0
    src = "read from the cache" if res.base_from_cache else f"{res.base_seconds:.1f} s"
    print(f"base {res.base.name}: PPL {res.models[0].ppl_base:.4f} on {res.text} ({res.chunks} chunks of "
          f"{res.n_ctx}, {res.tokens_scored} tokens scored; base pass {src})")
    print(_table(res))
    print_warnings(res.warnings)
    if plot is not None:
        print(f"wrote {plot}")
    return 0
