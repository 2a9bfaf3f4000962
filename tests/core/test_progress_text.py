"""The one progress formatter (stage rows and the status bar): no wild first ETA, an ETA that counts down."""

from __future__ import annotations

from medcal_gui.core.jobs import Progress
from medcal_gui.core.progress_text import describe, detail_text, eta_left, is_long_job


def test_no_eta_from_the_first_units() -> None:
    first = Progress("quantize", 1, 236, unit="tensors", eta_s=238.0)  # the 3:58 for a 12 s stage
    assert "ETA" not in detail_text(first)
    later = Progress("quantize", 30, 236, unit="tensors", eta_s=9.0)
    assert detail_text(later) == "30/236 tensors · ETA 0:09"


def test_the_eta_counts_down_and_never_goes_stale() -> None:
    p = Progress("imatrix", 3, 4, unit="chunks", eta_s=65.0)
    assert eta_left(p, 0.0) == "ETA 1:05"
    assert eta_left(p, 20.0) == "ETA 0:45"
    assert eta_left(p, 80.0) == "finishing…"


def test_status_bar_and_stage_row_show_the_same_figures() -> None:
    p = Progress("imatrix", 5, 20, unit="chunks", rate=812.4, rate_unit="tokens", eta_s=30.0, extra={"ppl": 9.5})
    row = detail_text(p)
    assert row == "5/20 chunks · 812 tokens/s · PPL 9.50 · ETA 0:30"
    assert describe("Quantizing to Q4_K_M", p) == "Quantizing to Q4_K_M: imatrix · " + row


def test_long_jobs_are_the_ones_to_confirm() -> None:
    assert not is_long_job(5.0, Progress("imatrix", 1, 3, eta_s=10.0))
    assert is_long_job(5.0, Progress("imatrix", 1, 300, eta_s=3000.0))
    assert is_long_job(600.0, None)
