"""The validation checklist of a loaded dataset: every record formatted in one variant and layout, then the
whole text validated against the narratives it came from."""

from __future__ import annotations

from collections.abc import Sequence

from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.dataset.formatting import format_dataset
from medcal_gui.dataset.records import Record
from medcal_gui.dataset.validation.results import ValidationReport
from medcal_gui.dataset.validation.validate import validate_text
from medcal_gui.dataset.variants import Variant


def check_dataset(records: Sequence[Record], variant: Variant, layout: str,
                  progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> ValidationReport:
    """Format every record with `variant` and `layout` and validate the text (a job: progress, cancel)."""
    progress(Progress("validate", 0, len(records), "formatting", unit="records"))
    text = format_dataset(list(records), variant, layout)
    if cancel is not None:
        cancel.check()
    report = validate_text(text, sources=[r.text for r in records], ids=[r.id for r in records],
                           expected_marker=variant.marker or None)
    progress(Progress("validate", len(records), len(records), unit="records"))
    return report
