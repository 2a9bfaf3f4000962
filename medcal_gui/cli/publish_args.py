"""Options `medcal publish` and `medcal report` share: the quants and what is known about them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_fact_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("quants", nargs="+", type=Path, metavar="QUANT", help="quantized GGUF files of one base")
    p.add_argument("--base", type=Path, metavar="BASE",
                   help="the unquantized GGUF (default: the one the quants' manifests name, when it is there)")
    p.add_argument("--mmproj", type=Path, metavar="FILE", help="the vision projector of a multimodal base")
    p.add_argument("--imatrix", type=Path, metavar="FILE", help="the importance matrix (default: the manifests')")
    p.add_argument("--calibration", type=Path, metavar="FILE", help="the calibration text (hashed, not copied)")
    p.add_argument("--dataset-log", type=Path, metavar="JSON",
                   help="calibration_dataset_log.json (default: the one beside --calibration)")
    p.add_argument("--eval", dest="eval_json", type=Path, metavar="JSON", help="`medcal eval --json` output")
    p.add_argument("--ladder", type=Path, metavar="JSON", help="ladder.json from `medcal ladder`")
    p.add_argument("--agree", type=Path, metavar="JSON", help="the agreement checks' JSON")
    p.add_argument("--mcq", type=Path, metavar="JSON", help="the multiple-choice checks' JSON")


def fact_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"base": args.base, "imatrix": args.imatrix, "mmproj": args.mmproj, "calibration": args.calibration,
            "dataset_log": args.dataset_log, "eval_json": args.eval_json, "ladder": args.ladder,
            "agree": args.agree, "mcq": args.mcq}
