"""`medcal publish`: a folder ready to share (GGUFs as hubs name them, model card, SHA256SUMS, Modelfiles)."""

from __future__ import annotations

import argparse
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
    "the PHI scan flags unless you confirm with --yes-publish-flagged FILENAME."
)


def configure(p: argparse.ArgumentParser) -> None:
    add_fact_args(p)
    p.add_argument("-d", "--dir", dest="dest", type=Path, required=True, metavar="DIR", help="the folder to write")
    p.add_argument("--include-calibration", action="store_true", help="copy the calibration text and its log")
    p.add_argument("--yes-publish-flagged", action="append", default=[], metavar="FILENAME",
                   help="publish this calibration file although the PHI scan flagged it")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.workflows.handover.publish import publish_folder
    from medcal_gui.workflows.handover.publish_facts import gather_facts

    bar = TerminalProgress(quiet=args.json)
    with sigint_cancels(CancelToken()) as token:
        facts = gather_facts(list(args.quants), cancel=token, **fact_kwargs(args))
        res = publish_folder(facts, Path(args.dest), include_calibration=args.include_calibration,
                             confirm_flagged=list(args.yes_publish_flagged), progress=bar, cancel=token)
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
