"""`medcal report`: the printable quantization report (PDF, written by Qt) a reviewer signs."""

from __future__ import annotations

import argparse
from pathlib import Path

from medcal_gui.cli.output import print_json
from medcal_gui.cli.publish_args import add_fact_args, fact_kwargs
from medcal_gui.core.errors import OutputError

NAME = "report"
HELP = "write the printable quantization report (PDF) for clinical governance"
DESCRIPTION = (
    "One document for a reviewer: what went in (base and its hash, calibration set summary and hash, "
    "settings), what came out (each file and its hash), how faithful it is (eval figures, the KLD histogram "
    "from `medcal eval --plot`, the ladder's chart, behaviour checks with flips and p-values), versions and a "
    "signature line. Laid out and written by Qt: no browser, no network."
)


def configure(p: argparse.ArgumentParser) -> None:
    add_fact_args(p)
    p.add_argument("--plot", type=Path, metavar="SVG", help="the KLD histogram `medcal eval --plot` wrote")
    p.add_argument("--reviewer", default="", metavar="NAME", help="print this name on the signature line")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="REPORT.pdf", help="the PDF to write")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from medcal_gui.core.fsutil import check_output_path
    from medcal_gui.workflows.handover.publish_facts import gather_facts
    from medcal_gui.workflows.handover.report_doc import build_report

    out = Path(args.output)
    if out.suffix.lower() != ".pdf":
        raise OutputError(f"The report is a PDF: name it .pdf (got {out}).")
    inputs = [*args.quants] + [p for p in (args.base, args.imatrix, args.calibration, args.plot, args.eval_json,
                                           args.ladder, args.agree, args.mcq, args.dataset_log) if p]
    check_output_path(out, inputs)
    facts = gather_facts(list(args.quants), **fact_kwargs(args))
    doc = build_report(facts, hist_svg=args.plot, reviewer=args.reviewer)
    from medcal_gui.ui.views.report_pdf import ensure_gui_app, write_pdf

    ensure_gui_app()
    pages = write_pdf(doc, out, title=f"Quantization report: {facts.model_name}")
    if args.json:
        print_json({"output": str(out), "pages": pages, "figures": doc.figures})
    else:
        print(f"wrote {out} ({pages} page(s)) for {len(facts.quants)} file(s) of {facts.model_name}")
    return 0
