"""The GUI thread never blocks: the longest gap between 20 ms timer ticks stays under 150 ms while a job runs
(importance matrix then quantize, or a chat reply streaming, on the tiny real model)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from medcal_gui.core.jobs import CancelToken, no_progress
from medcal_gui.dataset.reading.loader import LoadOptions
from medcal_gui.ui.panes.narratives_pane import load_inputs
from medcal_gui.ui.panes.quantize_pane import QuantizePane
from medcal_gui.ui.panes.verify_pane import VerifyPane
from medcal_gui.ui.workbench import Workbench

TICK_MS = 20
BOUND_S = 0.150


class GapMeter:
    """Ticks every 20 ms on the GUI thread and keeps the longest time between two ticks."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.longest = 0.0
        self.ticks = 0

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last:
            self.longest = max(self.longest, now - self.last)
        self.last = now
        self.ticks += 1

    def start(self) -> None:
        self.last = 0.0
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()


@pytest.fixture
def meter() -> Iterator[GapMeter]:
    m = GapMeter()
    yield m
    m.stop()


@pytest.fixture
def loaded_bench(bench: Workbench, sample_file: Path, tiny_model: Path) -> Workbench:
    bench.set_loaded(load_inputs([sample_file], LoadOptions(), no_progress, CancelToken()))
    bench.model_path = tiny_model
    return bench


def test_imatrix_and_quantize_never_block_the_gui(qtbot, loaded_bench: Workbench, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                 meter: GapMeter) -> None:
    pane = QuantizePane(loaded_bench)
    qtbot.addWidget(pane)
    pane.ctx_spin.setValue(128)
    pane.chunks_spin.setValue(100)
    pane.out_dir_edit.setText(str(tmp_path))
    pane.table.select("Q4_K_M")
    qtbot.waitUntil(lambda: pane.ready() and pane.run_btn.isEnabled(), timeout=20000)
    meter.start()
    with qtbot.waitSignal(pane.quantized, timeout=120000):
        assert pane.run()
    meter.stop()
    print(f"longest gap {meter.longest * 1000:.1f} ms over {meter.ticks} ticks")
    assert meter.ticks > 10
    assert meter.longest < BOUND_S, f"the GUI thread stalled for {meter.longest * 1000:.0f} ms"


def test_a_streaming_reply_never_blocks_the_gui(qtbot, loaded_bench: Workbench, tiny_model: Path,  # type: ignore[no-untyped-def]
                                                meter: GapMeter) -> None:
    pane = VerifyPane(loaded_bench)
    qtbot.addWidget(pane)
    pane.set_models(tiny_model, tiny_model)
    pane.params.set("max_tokens", 150)
    pane.params.set("seed", 3)
    meter.start()
    with qtbot.waitSignal(pane.reply_done, timeout=60000) as sig:
        assert pane.send("Summarise the night's rhythm findings.")
    meter.stop()
    print(f"longest gap {meter.longest * 1000:.1f} ms over {meter.ticks} ticks")
    assert sig.args[0]["quant"].completion_tokens > 10
    assert meter.longest < BOUND_S, f"the GUI thread stalled for {meter.longest * 1000:.0f} ms"
