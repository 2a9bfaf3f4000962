"""The Verify pane's Answers tab: base and quant answer the held-out prompts greedily, side by side."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from medcal_gui.behaviour.agree import AgreeResult, Prompt, agree
from medcal_gui.behaviour.agree_report import diff_spans
from medcal_gui.core.jobs import CancelToken, ProgressCallback
from medcal_gui.ui.workbench import Workbench

Models = Callable[[], tuple[Path | None, Path | None]]  # (base, quant)


def _runs_html(runs: Sequence[tuple[str, bool]], colour: str) -> str:
    return "".join(f'<span style="background:{colour}">{html.escape(t)}</span>' if d else html.escape(t)
                   for t, d in runs).replace("\n", "<br>")


class AnswersView(QWidget):
    def __init__(self, bench: Workbench, models: Models, prompts: Callable[[], list[Prompt]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bench, self.models, self.prompts = bench, models, prompts
        self.result: AgreeResult | None = None
        self.run_btn = QPushButton("Compare answers")
        self.tokens = QSpinBox()
        self.tokens.setRange(8, 1024)
        self.tokens.setValue(128)
        self.limit = QSpinBox()
        self.limit.setRange(1, 1000)
        self.limit.setValue(8)
        self.summary = QLabel("Greedy answers of the base and the quant to the held-out prompts.")
        self.summary.setWordWrap(True)
        self.list = QListWidget()
        self.base_view, self.quant_view = QTextBrowser(), QTextBrowser()
        self.facts = QLabel("")
        self.facts.setWordWrap(True)
        top = QHBoxLayout()
        for text, w in (("Tokens", self.tokens), ("Prompts", self.limit)):
            top.addWidget(QLabel(text))
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.run_btn)
        side = QHBoxLayout()
        side.addWidget(self.list, 1)
        side.addWidget(self.base_view, 2)
        side.addWidget(self.quant_view, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.summary)
        lay.addLayout(side, 1)
        lay.addWidget(self.facts)
        self.run_btn.clicked.connect(lambda: self.run())
        self.list.currentRowChanged.connect(self.show_prompt)

    def run(self) -> bool:
        base, quant = self.models()
        if not base or not quant:
            self.summary.setText("Choose the quant and its base first.")
            return False
        prompts = self.prompts()[: self.limit.value()]
        if not prompts:
            self.summary.setText("Load narratives (step 1) to get held-out prompts.")
            return False
        n_max, threads = self.tokens.value(), self.bench.settings.threads or None

        def job(progress: ProgressCallback, cancel: CancelToken) -> AgreeResult:
            return agree(base, [quant], prompts, n_max=n_max, threads=threads, progress=progress, cancel=cancel)

        self.summary.setText(f"Answering {len(prompts)} prompts with {base.name} and {quant.name}…")
        return self.bench.start_job(job, "Comparing answers", on_done=self.set_result,
                                    on_cancelled=lambda: self.summary.setText("Cancelled."))

    def set_result(self, res: AgreeResult) -> None:
        self.result = res
        m = res.models[0]
        s = m.summary()
        self.summary.setText(f"{m.name}: identical {m.identical.text()}; facts kept {m.facts_kept.text()}; "
                             f"mean edit similarity {s['edit_similarity_mean']:.3f}")
        self.list.clear()
        for p in m.prompts:
            self.list.addItem(f"{'=' if p.identical else '≠'} {p.id}")
        self.list.setCurrentRow(0)

    def show_prompt(self, row: int) -> None:
        if self.result is None or not 0 <= row < len(self.result.models[0].prompts):
            return
        p = self.result.models[0].prompts[row]
        ra, rb = diff_spans(p.base.text, p.other.text)
        self.base_view.setHtml(f"<b>{html.escape(self.result.base.name)}</b><br>" + _runs_html(ra, "#fbd3d3"))
        self.quant_view.setHtml(f"<b>{html.escape(self.result.models[0].name)}</b><br>"
                                + _runs_html(rb, "#cdeccd"))
        where = "identical" if p.identical else f"they part at token {p.first_diff}"
        self.facts.setText(f"{where}; facts kept {len(p.facts.kept)}/{len(p.facts.base)}; missing: "
                           f"{', '.join(p.facts.missing) or 'none'}")
