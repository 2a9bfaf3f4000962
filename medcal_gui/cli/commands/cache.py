"""`medcal cache`: where the evaluation cache is and how big; `--clear` empties it."""

from __future__ import annotations

import argparse

from medcal_gui.core.units import format_bytes

NAME = "cache"
HELP = "show the evaluation cache's size, or empty it (--clear)"
DESCRIPTION = (
    "`medcal eval` and the GUI's verify step keep each base model's pass on a held-out text in a cache, so "
    "more quants of the same base cost one pass each. This shows where it is and how much it holds; "
    "--clear removes every entry the cache wrote and the folders of runs that were killed (a running "
    "evaluation's folder stays), and nothing else: a folder that holds files medcal did not write is refused, "
    "naming them. Set MEDCAL_EVAL_CACHE to move it, MEDCAL_EVAL_CACHE_MB to change its size limit (4096)."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clear", action="store_true", help="remove every entry")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.evaluate.eval_cache import cache_usage, clear_cache

    u = cache_usage()  # refuses a bad MEDCAL_EVAL_CACHE_MB, and a folder holding what medcal did not write
    if args.clear:
        freed = clear_cache()
        print(f"evaluation cache {u.folder} cleared: {format_bytes(freed)} freed")
        return 0
    print(f"evaluation cache {u.folder}: {u.entries} entr{'y' if u.entries == 1 else 'ies'}, "
          f"{format_bytes(u.bytes)} (limit {u.limit / 1e6:.0f} MB)")
    return 0
