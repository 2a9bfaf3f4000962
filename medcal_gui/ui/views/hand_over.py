"""File > Publish… and File > Quantization report…: hand the last quant over from the window.

The work is the CLI's (`publish_facts`, `publish`, `report_doc`) run as the window's job; the PDF itself is
written on the GUI thread afterwards (QTextDocument and QPdfWriter belong there; it takes about a second).
Publishing is planned first (nothing written), the dialog lists what will be copied from where and why, and
only then is the folder written, as a second job.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QListWidget,
    QVBoxLayout,
    QWidget,
)

from medcal_gui.core.errors import MedcalError
from medcal_gui.core.jobs import CancelToken, ProgressCallback
from medcal_gui.ui.workbench import Workbench
from medcal_gui.workflows.handover.publish import PublishPlan, PublishResult, plan_publish, write_publish
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


class PublishPlanDialog(QDialog):
    """What a publish will copy (from where, and why it may be) and write, before anything is: OK publishes."""

    def __init__(self, plan: PublishPlan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Publish: what will be copied")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Into {plan.folder}, medcal will copy {len(plan.copies)} file(s) and write "
                             f"{len(plan.texts) + 1}. Nothing has been written yet."))
        self.files = QListWidget()
        self.files.addItems(plan.describe())
        lay.addWidget(self.files)
        if plan.warnings:
            note = QLabel("\n".join(plan.warnings))
            note.setWordWrap(True)
            lay.addWidget(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Publish")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(760, 360)

    def lines(self) -> list[str]:
        return [self.files.item(i).text() for i in range(self.files.count())]


def confirm_plan(parent: QWidget | None, plan: PublishPlan) -> bool:
    return PublishPlanDialog(plan, parent).exec() == QDialog.DialogCode.Accepted


def publish_dialog(bench: Workbench, parent: QWidget) -> None:
    quants = _quants(bench, parent)
    if not quants:
        return
    folder = QFileDialog.getExistingDirectory(parent, "Publish into folder")
    if folder:
        publish_to(bench, quants, Path(folder), confirm=lambda plan: confirm_plan(parent, plan))


def publish_to(bench: Workbench, quants: list[Path], folder: Path, base: Path | None = None,
               confirm: Callable[[PublishPlan], bool] | None = None) -> bool:
    """Plan the publish as a job; then, when `confirm` (the dialog listing the plan) agrees or is None, write
    it as a second job."""
    base = base or _base(bench)

    def plan_job(progress: ProgressCallback, cancel: CancelToken) -> PublishPlan:
        return plan_publish(gather_facts(quants, base=base, cancel=cancel), folder)

    def planned(plan: PublishPlan) -> None:
        if confirm is not None and not confirm(plan):
            bench.message.emit(f"Publishing to {folder} cancelled: nothing was written.")
            return

        def write_job(progress: ProgressCallback, cancel: CancelToken) -> PublishResult:
            return write_publish(plan, progress=progress, cancel=cancel)

        bench.start_job(write_job, f"Publishing to {folder}", on_done=done)

    def done(res: PublishResult) -> None:
        bench.message.emit(f"Published {len(res.facts.quants)} file(s) to {res.folder} "
                           f"({len(res.files)} files with the card, Modelfiles and SHA256SUMS)")

    return bench.start_job(plan_job, f"Checking what to publish to {folder}", on_done=planned)


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
