"""`medcal publish`: a folder ready to share (GGUFs as hubs name them, model card, SHA256SUMS, Modelfiles)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medcal_gui.cli.output import print_json, print_warnings
from medcal_gui.cli.progress import TerminalProgress, sigint_cancels
from medcal_gui.cli.publish_args import add_fact_args, fact_kwargs
from medcal_gui.core.jobs import CancelToken

NAME = "publish"
HELP = "write a folder to hand the quants over: model card, SHA256SUMS, Ollama Modelfiles"
DESCRIPTION = (
    "Hard-link (or copy) the quants into -d DIR named <model>-<TYPE>.gguf, with the mmproj and the imatrix, "
    "their manifests, README.md (a model card with YAML front matter: base, licence, files and figures, how "
    "the imatrix was made, commands to rebuild), an Ollama Modelfile per GGUF and SHA256SUMS. The "
    "calibration text is described by its counts and hash; --include-calibration copies it, and refuses text "
    "the PHI scan flags unless you confirm with --yes-publish-flagged FILENAME. Only files you name, or the "
    "importance matrix whose sha256 the quants' manifests record (and which still matches it), are copied; "
    "what will be copied from where is printed before anything is written (--dry-run: only that)."
)


def configure(p: argparse.ArgumentParser) -> None:
    add_fact_args(p)
    p.add_argument("-d", "--dir", dest="dest", type=Path, required=True, metavar="DIR", help="the folder to write")
    p.add_argument("--include-calibration", action="store_true", help="copy the calibration text and its log")
    p.add_argument("--yes-publish-flagged", action="append", default=[], metavar="FILENAME",
                   help="publish this calibration file although the PHI scan flagged it")
    p.add_argument("--dry-run", action="store_true", help="print what would be copied and written; write nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.workflows.handover.publish import plan_publish, write_publish
    from medcal_gui.workflows.handover.publish_facts import gather_facts

    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        facts = gather_facts(list(args.quants), cancel=token, **fact_kwargs(args))
        plan = plan_publish(facts, Path(args.dest), include_calibration=args.include_calibration,
                            confirm_flagged=list(args.yes_publish_flagged))
        # what is copied from where, before a byte is written (stderr under --json: stdout is the document)
        out = sys.stderr if args.json else sys.stdout
        print(f"{'would publish' if args.dry_run else 'publishing'} into {plan.folder}:", file=out)
        for line in plan.describe():
            print(f"  {line}", file=out)
        out.flush()
        if args.dry_run:
            bar.close()
            if args.json:
                print_json({"folder": str(plan.folder), "dry_run": True, "plan": plan.describe(),
                            "warnings": plan.warnings})
            else:
                print_warnings(plan.warnings)
            return 0
        res = write_publish(plan, progress=bar, cancel=token)
    bar.close()
    if args.json:
        print_json(res.to_json())
        return 0
    print(f"published {len(facts.quants)} quant(s) of {facts.model_name} to {res.folder} "
          f"({res.linked} linked, {res.copied} copied):")
    for f in res.files:
        print(f"  {f}")
    print_warnings(res.warnings)
    print(f"check it with: (cd {res.folder} && sha256sum -c SHA256SUMS)")
    return 0
