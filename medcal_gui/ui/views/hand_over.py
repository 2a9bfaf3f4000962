"""File > Publish… and File > Quantization report…: hand the last quant over from the window.

The work is the CLI's (`publish_facts`, `publish`, `report_doc`) run as the window's job; the PDF itself is
written on the GUI thread afterwards (QTextDocument and QPdfWriter belong there; it takes about a second).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from medcal_gui.core.errors import MedcalError
from medcal_gui.core.jobs import CancelToken, ProgressCallback
from medcal_gui.ui.workbench import Workbench
from medcal_gui.workflows.handover.publish import PublishResult, publish_folder
from medcal_gui.workflows.handover.publish_facts import gather_facts
from medcal_gui.workflows.handover.report_doc import ReportDoc, build_report


def _quants(bench: Workbench, parent: QWidget) -> list[Path]:
    if bench.last_quant is not None and bench.last_quant.is_file():
        return [bench.last_quant]
    names, _ = QFileDialog.getOpenFileNames(parent, "Quantized models to hand over", "", "GGUF (*.gguf)")
    return [Path(n) for n in names]


def _base(bench: Workbench) -> Path | None:
    last = bench.settings.get_str("quantize/last_base")
    return Path(last) if last and Path(last).is_file() else None


def publish_dialog(bench: Workbench, parent: QWidget) -> None:
    quants = _quants(bench, parent)
    if not quants:
        return
    folder = QFileDialog.getExistingDirectory(parent, "Publish into folder")
    if folder:
        publish_to(bench, quants, Path(folder))


def publish_to(bench: Workbench, quants: list[Path], folder: Path, base: Path | None = None) -> bool:
    base = base or _base(bench)

    def job(progress: ProgressCallback, cancel: CancelToken) -> PublishResult:
        facts = gather_facts(quants, base=base, cancel=cancel)
        return publish_folder(facts, folder, progress=progress, cancel=cancel)

    def done(res: PublishResult) -> None:
        bench.message.emit(f"Published {len(res.facts.quants)} file(s) to {res.folder} "
                           f"({len(res.files)} files with the card, Modelfiles and SHA256SUMS)")

    return bench.start_job(job, f"Publishing to {folder}", on_done=done)


def report_dialog(bench: Workbench, parent: QWidget) -> None:
    quants = _quants(bench, parent)
    if not quants:
        return
    out, _ = QFileDialog.getSaveFileName(parent, "Save the quantization report", "REPORT.pdf", "PDF (*.pdf)")
    if out:
        report_to(bench, quants, Path(out) if out.lower().endswith(".pdf") else Path(out + ".pdf"))


def report_to(bench: Workbench, quants: list[Path], out: Path, base: Path | None = None) -> bool:
    base = base or _base(bench)

    def job(progress: ProgressCallback, cancel: CancelToken) -> ReportDoc:
        return build_report(gather_facts(quants, base=base, cancel=cancel))

    def done(doc: ReportDoc) -> None:
        from medcal_gui.ui.views.report_pdf import write_pdf

        try:
            pages = write_pdf(doc, out)
        except (MedcalError, OSError) as exc:
            bench.message.emit(f"The report {out} was not written: {exc}")
            return
        bench.message.emit(f"Wrote the report {out} ({pages} page(s))")

    return bench.start_job(job, f"Writing the report {out.name}", on_done=done)
