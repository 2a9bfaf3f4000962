"""The main window: step list, pane stack, log dock, status bar with the current job, menus, settings."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QSize, Qt, qVersion
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from medcal_gui import __version__
from medcal_gui.core.jobs import Progress
from medcal_gui.core.progress_text import describe
from medcal_gui.core.units import format_bytes
from medcal_gui.ui import dialogs
from medcal_gui.ui.dialogs import confirm_cancel
from medcal_gui.ui.guide import GuideWindow
from medcal_gui.ui.jobs.closing import CloseController
from medcal_gui.ui.panes.base import Pane
from medcal_gui.ui.panes.format_pane import FormatPane
from medcal_gui.ui.panes.narratives_pane import NarrativesPane
from medcal_gui.ui.panes.quantize_pane import QuantizePane
from medcal_gui.ui.panes.verify_pane import VerifyPane
from medcal_gui.ui.settings import Settings
from medcal_gui.ui.widgets.log_dock import LogDock
from medcal_gui.ui.widgets.page import Page
from medcal_gui.ui.widgets.screen_fit import fitted_size
from medcal_gui.ui.workbench import Workbench

LOG = logging.getLogger("medcal_gui.ui")
PANE_CLASSES: list[type[Pane]] = [NarrativesPane, FormatPane, QuantizePane, VerifyPane]
DONE_ROLE = Qt.ItemDataRole.UserRole + 1
HINT_KEY = "ui/first_run_hint_done"
# The smallest window: fits a 1280x720 screen with its panel and title bar (checked by the layout test).
MIN_SIZE = (1024, 640)


def default_size(available: QSize) -> tuple[int, int]:
    """The first window: 1280x800, or the screen's free area less a title bar when that is smaller (a
    1280x720 laptop), never below the minimum size."""
    return fitted_size(available, (1280, 800), MIN_SIZE)


def menu_label(index: int, title: str) -> str:
    """A step's View-menu text: its number as the mnemonic, and any "&" in the title shown as itself."""
    return f"&{index + 1} {title.replace('&', '&&')}"


def about_text() -> str:
    from medcal_gui.llama.versions import versions

    v = versions()  # never fails: unavailable parts say so
    return (f"<h3>medcal {__version__}</h3>"
            "<p>Offline workbench: clinical narratives to a calibrated, quantized and verified GGUF.</p>"
            f"<p>llama.cpp {v.get('llama.cpp', '?')}, llama-cpp-python {v.get('llama-cpp-python', '?')}<br>"
            f"Qt {qVersion()} (PySide6 {pyside_version})<br>Python {v['Python']}</p>")


def describe_progress(title: str, p: Progress | None) -> str:
    return describe(title, p)  # the stage rows' formatter: one source for both


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, model: Path | None = None,
                 load_samples: bool = True) -> None:
        super().__init__()
        self.setWindowTitle(f"medcal {__version__}")
        self.setObjectName("main_window")
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        self.bench = Workbench(self.settings, self)
        self.bench.error_parent = self
        self.bench.model_path = Path(model) if model else None
        if model:
            self.settings.model_path = str(model)
        self.panes: list[Pane] = []
        self._guide: GuideWindow | None = None
        self._job_t0 = 0.0
        self._build()
        for cls in PANE_CLASSES:
            self.add_pane(cls(self.bench))
        self._build_menus()
        self.setMinimumSize(*MIN_SIZE)
        self._restore()
        self.set_current(0)
        self.bench.step_done_changed.connect(self._step_done_changed)
        self.bench.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.bench.step_requested.connect(self.show_step)
        jobs = self.bench.jobs
        jobs.started.connect(self._job_started)
        jobs.progress.connect(self._job_progress)
        jobs.finished.connect(lambda _r: self._job_ended(f"{jobs.title}: done"))
        jobs.failed.connect(lambda exc, _tb: self._job_ended(f"{jobs.title}: failed"))
        jobs.cancelled.connect(lambda: self._job_ended(f"{jobs.title}: cancelled"))
        self.closer = CloseController(self, self.bench, show_stopping=self._show_stopping, save=self._save,
                                      before_close=self._before_close)
        if load_samples:
            self.narratives.load_samples()

    # -- building -----------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.steps = QListWidget()
        self.steps.setObjectName("steps")
        self.steps.setIconSize(QSize(16, 16))
        self.steps.setFixedWidth(190)
        self.steps.setSpacing(2)
        self.steps.currentRowChanged.connect(self._step_clicked)
        self.stack = QStackedWidget()
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(6, 6, 6, 0)
        self.hint = self._first_run_hint()
        outer.addWidget(self.hint)
        lay = QHBoxLayout()
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.steps)
        lay.addWidget(self.stack, 1)
        outer.addLayout(lay, 1)
        self.setCentralWidget(central)
        self.log_dock = LogDock(self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)

        sb = self.statusBar()
        self.job_label = QLabel("")
        self.job_bar = QProgressBar()
        self.job_bar.setFixedWidth(220)
        self.job_bar.setTextVisible(True)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Cancel the current job (Esc)")
        self.cancel_btn.clicked.connect(self.cancel_job)
        sb.addPermanentWidget(self.job_label)
        sb.addPermanentWidget(self.job_bar)
        sb.addPermanentWidget(self.cancel_btn)
        self._show_job_widgets(False)
        pix = QPixmap(16, 16)
        pix.fill(Qt.GlobalColor.transparent)
        self._blank_icon = QIcon(pix)
        self._done_icon = self.style().standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton)

    def _first_run_hint(self) -> QFrame:
        """A one-line welcome on the first start, until dismissed (remembered in the settings)."""
        box = QFrame()
        box.setObjectName("first_run_hint")
        box.setFrameShape(QFrame.Shape.StyledPanel)
        text = QLabel("<b>New here?</b> Step 1 shows the bundled sample narratives: open your own (Ctrl+O) "
                      "or drop them here, then follow the steps on the left in order.")
        text.setWordWrap(True)
        guide = QPushButton("User guide")
        guide.clicked.connect(self.show_guide)
        done = QPushButton("Got it")
        done.clicked.connect(self.dismiss_hint)
        row = QHBoxLayout(box)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(text, 1)
        row.addWidget(guide)
        row.addWidget(done)
        self.hint_done_btn = done
        box.setVisible(not self.settings.get_bool(HINT_KEY))
        return box

    def dismiss_hint(self) -> None:
        self.hint.hide()
        self.settings.set(HINT_KEY, True)

    def _action(self, text: str, slot: object, shortcuts: list[QKeySequence | str] | None = None) -> QAction:
        act = QAction(text, self)
        if shortcuts:
            act.setShortcuts([QKeySequence(s) for s in shortcuts])
        act.triggered.connect(slot)
        return act

    def _build_menus(self) -> None:
        mb = self.menuBar()
        file = mb.addMenu("&File")
        self.open_action = self._action("&Open files…", self.open_files, [QKeySequence.StandardKey.Open])
        file.addAction(self.open_action)
        file.addAction(self._action("Open &folder…", self.open_folder, ["Ctrl+Shift+O"]))
        self.recent_menu = file.addMenu("&Recent files")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()
        file.addSeparator()
        file.addAction(self._action("&Export…", self.export, ["Ctrl+E"]))
        file.addActions([self._action("&Publish…", self.publish), self._action("Quantization &report…", self.report)])
        file.addSeparator()
        self.clear_cache_action = self._action("Clear the evaluation &cache…", self.clear_eval_cache)
        file.addAction(self.clear_cache_action)
        file.addSeparator()
        file.addAction(self._action("&Quit", self.close, ["Ctrl+Q"]))

        view = mb.addMenu("&View")
        self.step_actions = []
        for i, pane in enumerate(self.panes):
            act = self._action(menu_label(i, pane.title), lambda _c=False, i=i: self.set_current(i),
                               [f"Ctrl+{i + 1}"])
            view.addAction(act)
            self.step_actions.append(act)
        view.addSeparator()
        view.addAction(self.log_dock.toggleViewAction())

        job = mb.addMenu("&Job")
        self.cancel_action = self._action("&Cancel current job", self.ask_cancel_job, ["Esc", "Ctrl+."])
        self.cancel_action.setEnabled(False)
        job.addAction(self.cancel_action)
        self.bench.jobs.busy_changed.connect(self.cancel_action.setEnabled)

        helpm = mb.addMenu("&Help")
        self.guide_action = self._action("&User guide", self.show_guide, [QKeySequence.StandardKey.HelpContents])
        helpm.addAction(self.guide_action)
        helpm.addAction(self._action("&About medcal", self.about))

    def _restore(self) -> None:
        geo = self.settings.geometry
        if geo is None or not self.restoreGeometry(geo):
            self.resize(*default_size(self.screen().availableGeometry().size()))
        state = self.settings.window_state
        if state is None or not self.restoreState(state):
            self.resizeDocks([self.log_dock], [110], Qt.Orientation.Vertical)

    # -- panes and steps ----------------------------------------------------------------------------------
    @property
    def narratives(self) -> NarrativesPane:
        return self.pane("narratives")  # type: ignore[return-value]

    @property
    def format(self) -> FormatPane:
        return self.pane("format")  # type: ignore[return-value]

    def pane(self, key: str) -> Pane:
        return next(p for p in self.panes if p.key == key)

    def add_pane(self, pane: Pane) -> int:
        """Append a pane (a step) to the list and the stack; returns its index."""
        self.panes.append(pane)
        # In a scroll area, a pane's own minimum never sets the window's: a small screen scrolls instead.
        self.stack.addWidget(Page(pane))
        item = QListWidgetItem(self._blank_icon, self._step_text(len(self.panes) - 1, pane, False))
        item.setToolTip(f"{pane.title} (Ctrl+{len(self.panes)})")
        self.steps.addItem(item)
        return len(self.panes) - 1

    def _step_text(self, i: int, pane: Pane, done: bool) -> str:
        return f"{i + 1}  {pane.title}"

    def _step_done_changed(self, key: str, done: bool) -> None:
        for i, p in enumerate(self.panes):
            if p.key == key:
                item = self.steps.item(i)
                item.setText(self._step_text(i, p, done))
                item.setIcon(self._done_icon if done else self._blank_icon)
                item.setData(DONE_ROLE, done)
                item.setToolTip(f"{p.title} (Ctrl+{i + 1}): " + ("done" if done else "not done yet"))

    def is_step_done(self, index: int) -> bool:
        return self.bench.is_step_done(self.panes[index].key)

    def show_step(self, key: str) -> None:
        """Show the step whose pane has this key (a pane asks through `Workbench.step_requested`)."""
        for i, pane in enumerate(self.panes):
            if pane.key == key:
                self.set_current(i)
                return

    def set_current(self, index: int) -> None:
        if 0 <= index < len(self.panes):
            self.steps.setCurrentRow(index)

    def current_pane(self) -> Pane:
        return self.panes[self.stack.currentIndex()]

    def _step_clicked(self, row: int) -> None:
        if 0 <= row < len(self.panes):
            self.stack.setCurrentIndex(row)
            self.panes[row].activated()

    # -- actions ------------------------------------------------------------------------------------------
    def open_files(self) -> None:
        self.set_current(0)
        self.narratives.open_files_dialog()

    def open_folder(self) -> None:
        self.set_current(0)
        self.narratives.open_folder_dialog()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files
        for path in recent:
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _c=False, p=path: self._open_recent(p))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self.settings.clear_recent)
        self.recent_menu.setEnabled(bool(recent))

    def _open_recent(self, path: str) -> None:
        self.set_current(0)
        self.narratives.load_paths([path])

    def export(self) -> None:
        self.set_current(1)
        self.format.export_dialog()

    def publish(self) -> None:
        from medcal_gui.ui.views.hand_over import publish_dialog

        publish_dialog(self.bench, self)

    def report(self) -> None:
        from medcal_gui.ui.views.hand_over import report_dialog

        report_dialog(self.bench, self)

    def show_guide(self) -> GuideWindow:
        """Help > User guide: the guide shipped with the app, offline, in its own window."""
        if self._guide is None:
            self._guide = GuideWindow(self)
        self._guide.show()
        self._guide.raise_()
        return self._guide

    def clear_eval_cache(self) -> None:
        """File > Clear the evaluation cache: the base passes kept for evaluations, after asking."""
        from medcal_gui.evaluate.eval_cache import cache_usage, clear_cache

        usage = cache_usage()
        if usage.entries == 0:
            self.statusBar().showMessage(f"The evaluation cache is empty ({usage.folder}).", 8000)
            return
        if not dialogs.ask_yes_no(self, "Clear the evaluation cache?",
                                  f"Remove {usage.entries} saved base-model pass(es), {format_bytes(usage.bytes)} in "
                                  f"{usage.folder}? They are computed again the next time an evaluation needs them."):
            return
        freed = clear_cache()
        self.statusBar().showMessage(f"Evaluation cache cleared: {format_bytes(freed)} freed.", 8000)

    def about(self) -> None:
        QMessageBox.about(self, "About medcal", about_text())

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        self.set_current(0)
        self.narratives.dropEvent(event)

    # -- the current job ----------------------------------------------------------------------------------
    def ask_cancel_job(self) -> None:
        """Esc / Job > Cancel: a long job asks first (an hour of imatrix is one key away)."""
        jobs = self.bench.jobs
        if jobs.is_running() and confirm_cancel(self, jobs.title, time.monotonic() - self._job_t0,
                                                jobs.last_progress):
            self.cancel_job()

    def cancel_job(self) -> None:
        if self.bench.jobs.is_running():
            self.job_label.setText(f"{self.bench.jobs.title}: cancelling…")
            self.bench.jobs.cancel()

    def _show_job_widgets(self, on: bool) -> None:
        self.job_bar.setVisible(on)
        self.cancel_btn.setVisible(on)

    def _job_started(self, title: str) -> None:
        self._job_t0 = time.monotonic()
        self._show_job_widgets(True)
        self.job_bar.setRange(0, 0)
        self.job_label.setText(describe_progress(title, None))

    def _job_progress(self, p: Progress) -> None:
        frac = p.fraction
        if frac is None:
            self.job_bar.setRange(0, 0)
        else:
            self.job_bar.setRange(0, 1000)
            self.job_bar.setValue(round(frac * 1000))
        self.job_label.setText(describe_progress(self.bench.jobs.title, p))

    def _job_ended(self, text: str) -> None:
        self._show_job_widgets(False)
        self.job_label.setText("Stopping…" if self.closer.stopping else "")
        self.statusBar().showMessage(text, 6000)
        LOG.info("%s", text)

    # -- closing ------------------------------------------------------------------------------------------
    def _show_stopping(self, title: str) -> None:
        """The visible state while jobs stop before quitting: the event loop keeps running meanwhile."""
        self.centralWidget().setEnabled(False)
        self.cancel_action.setEnabled(False)
        self.cancel_btn.setEnabled(False)
        self.job_label.setText(f"Stopping “{title}”…" if title else "Stopping…")
        self.statusBar().showMessage("Stopping before quitting…")

    def _save(self) -> None:
        self.settings.geometry = self.saveGeometry()
        self.settings.window_state = self.saveState()
        self.settings.sync()

    def _before_close(self) -> None:
        for pane in self.panes:
            close_models = getattr(pane, "close_models", None)
            if close_models is not None:
                close_models()  # free the chat models (their memory and threads) before Qt goes
        self.log_dock.detach()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.closer.close_event(event):
            super().closeEvent(event)
