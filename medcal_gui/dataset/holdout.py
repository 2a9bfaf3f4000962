"""The one hold-out rule: which records calibrate the importance matrix and which are kept for step 4.

The GUI, `medcal pipeline`, the ladder and the behaviour checks all split here, so a file is never scored on
the text it was calibrated with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from medcal_gui.dataset.formatting import format_dataset
from medcal_gui.dataset.records import Record
from medcal_gui.dataset.variants import Variant

HELDOUT_FRACTION = 0.2


def split_records(records: Sequence[Record], fraction: float = HELDOUT_FRACTION) -> tuple[list[Record],
                                                                                          list[Record]]:
    """(calibration, held-out): the last `fraction` of the records (at least one, when there are two or
    more) is held out for step 4's evaluation; the rest calibrates."""
    recs = list(records)
    if len(recs) < 2 or fraction <= 0:
        return recs, []
    n_held = max(1, round(len(recs) * fraction))
    return recs[:-n_held], recs[-n_held:]


@dataclass(frozen=True)
class CalibrationText:
    text: str
    records: int
    variant: str
    layout: str
    held_out: int  # records kept out of it

    @property
    def label(self) -> str:
        """What the importance matrix records as its dataset."""
        held = f", last {self.held_out} held out" if self.held_out else ""
        return f"medcal: {self.records} records, variant {self.variant}, {self.layout} layout{held}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def calibration_text(records: Sequence[Record], variant: Variant, layout: str,
                     hold_out: bool = True) -> CalibrationText:
    calib, held = split_records(records) if hold_out else (list(records), [])
    return CalibrationText(format_dataset(calib, variant, layout), len(calib), variant.name, layout, len(held))


def heldout_text(records: Sequence[Record], variant: Variant, layout: str) -> tuple[str, int]:
    """The held-out split formatted like the calibration text, and its record count."""
    _, held = split_records(records)
    return format_dataset(held, variant, layout), len(held)
