"""The validation checklist view: one row per check (pass / fail / warn / info) that explains itself
(a coloured mark, the title, the detail underneath), then the report's errors and warnings."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser, QWidget

from medcal_gui.dataset.validation.results import ValidationReport
from medcal_gui.ui.widgets.highlighter import is_dark

STATUS_WORD = {"pass": "Pass", "fail": "Fail", "warn": "Warning", "info": "Info"}
STATUS_MARK = {"pass": "✔", "fail": "✘", "warn": "⚠", "info": "ℹ"}
# (light window, dark window)
_STATUS_COLOUR = {"pass": ("#2e7d32", "#81c784"), "fail": ("#c62828", "#ef9a9a"),
                  "warn": ("#b26a00", "#ffcc80"), "info": ("#1565c0", "#90caf9")}


class ChecklistView(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.report: ValidationReport | None = None
        self.set_report(None)

    def _colour(self, status: str) -> str:
        light, dark = _STATUS_COLOUR[status]
        return dark if is_dark(self.palette()) else light

    def _row(self, status: str, title: str, detail: str) -> str:
        c = self._colour(status)
        return (f'<tr><td width="22" valign="top" style="color:{c}; font-size:large">{STATUS_MARK[status]}</td>'
                f'<td valign="top"><b style="color:{c}">{html.escape(title)}</b>'
                f'<span style="color:{c}"> — {STATUS_WORD[status]}</span><br>{html.escape(detail)}</td></tr>')

    def set_report(self, report: ValidationReport | None) -> None:
        self.report = report
        if report is None:
            self.setHtml("<p><i>Load narratives to check the formatted dataset.</i></p>")
            return
        rows = [self._row(c.status, c.title, c.detail) for c in report.checks]
        for kind, status, items in (("Error", "fail", report.errors), ("Warning", "warn", report.warnings)):
            rows += [self._row(status, kind, msg) for msg in items]
        self.setHtml('<table cellspacing="0" cellpadding="3" width="100%">' + "".join(rows) + "</table>")

    def statuses(self) -> list[tuple[str, str]]:
        """(status, title) of each check row, for tests and the step mark."""
        return [(c.status, c.title) for c in self.report.checks] if self.report else []

    def has_fail(self) -> bool:
        return self.report is None or bool(self.report.errors) or any(
            c.status == "fail" for c in self.report.checks)
