"""`medcal validate`: the seed's checklist (and more) on a formatted or narrative file."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli.hints import cli_hint
from medcal_gui.cli.output import print_json, print_warnings
from medcal_gui.core.errors import InputError
from medcal_gui.dataset.reading.loader import LoadOptions, load_dataset
from medcal_gui.dataset.validation.validate import narrative_digest, validate_file

NAME = "validate"
HELP = "check a formatted calibration file (exit 0: no errors, 1: errors, 2: unusable input)"
_MARK = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "info": "INFO"}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--expect-records", type=int, metavar="N", help="the number of records there should be")
    p.add_argument("--source", type=Path, nargs="+", metavar="INPUT",
                   help="the original narratives: check every narrative is intact")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    digests = None
    if args.source:
        ds = load_dataset(args.source, LoadOptions())
        errors = [i.message + cli_hint(i.hint) for i in ds.issues if i.severity == "error"]
        if errors:
            raise InputError("The source narratives have errors: " + "; ".join(errors[:3]))
        digests = [narrative_digest(r.text) for r in ds.records]
    report = validate_file(args.file, args.expect_records, digests)
    if args.json:
        print_json(report.to_json())
    else:
        print(f"{args.file}: {report.records} records ({report.kind}"
              + (f", {report.layout} layout" if report.layout else "") + ")")
        for c in report.checks:
            print(f"  [{_MARK[c.status]}] {c.title}: {c.detail}")
        for e in report.errors:
            print(f"error: {e}")
        print_warnings(report.warnings)
    return 0 if report.ok else 1
