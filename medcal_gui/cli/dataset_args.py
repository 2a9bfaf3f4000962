"""Arguments shared by the commands that read narratives."""

from __future__ import annotations

import argparse

from medcal_gui.dataset.formatting import DEFAULT_LAYOUT, LAYOUTS
from medcal_gui.dataset.reading.loader import SPLITS, LoadOptions
from medcal_gui.dataset.variants import DEFAULT_VARIANT


def add_load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoding", default="auto", metavar="auto|NAME",
                   help="decode every input with this encoding instead of detecting it (default: auto)")
    p.add_argument("--text-field", default="text", metavar="NAME",
                   help="JSONL/CSV field holding the narrative (default: text)")
    p.add_argument("--split", choices=SPLITS, default="headers",
                   help="how .txt files are split into records: 'Below is a ... topic:' headers (default) "
                        "or blank-line separated paragraphs")


def add_format_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", default=DEFAULT_VARIANT, metavar="NAME",
                   help=f"prompt variant (default: {DEFAULT_VARIANT})")
    p.add_argument("--layout", choices=LAYOUTS, default=DEFAULT_LAYOUT,
                   help="seed: the seed document's record, byte for byte (default); gemma: Gemma's own chat "
                        "template")


def load_options(args: argparse.Namespace) -> LoadOptions:
    return LoadOptions(encoding=args.encoding, text_field=args.text_field, split=args.split)
