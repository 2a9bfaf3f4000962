"""`medcal cache`: where the evaluation cache is and how big; `--clear` empties it."""

from __future__ import annotations

import argparse

NAME = "cache"
HELP = "show the evaluation cache's size, or empty it (--clear)"
DESCRIPTION = (
    "`medcal eval` and the GUI's verify step keep each base model's pass on a held-out text in a cache, so "
    "more quants of the same base cost one pass each. This shows where it is and how much it holds; "
    "--clear removes every entry and the folders of runs that were killed (a running evaluation's folder "
    "stays). Set MEDCAL_EVAL_CACHE to move it, MEDCAL_EVAL_CACHE_MB to change its size limit (4096)."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clear", action="store_true", help="remove every entry")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.evaluate.eval_cache import cache_usage, clear_cache

    if args.clear:
        freed = clear_cache()
        print(f"evaluation cache {cache_usage().folder} cleared: {freed / 1e6:.1f} MB freed")
        return 0
    u = cache_usage()
    print(f"evaluation cache {u.folder}: {u.entries} entr{'y' if u.entries == 1 else 'ies'}, "
          f"{u.bytes / 1e6:.1f} MB")
    return 0
