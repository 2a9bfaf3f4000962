"""The chat layouts. `seed` reproduces the seed document's record byte for byte; `gemma` is Gemma's own
chat template (no newline before <end_of_turn>), the exact inference-time form."""

from __future__ import annotations

from medcal_gui.dataset.records import END_TURN, START_TURN, Record
from medcal_gui.dataset.variants import Variant

LAYOUTS = ("seed", "gemma")
DEFAULT_LAYOUT = "seed"
DEFAULT_OUTPUT = "medgemma_calibration_imatrix_formatted.txt"
ORIGINAL_OUTPUT = "cardiology_calibration_imatrix.txt"


def user_content(narrative: str, variant: Variant) -> str:
    head = f"{variant.marker}\n" if variant.marker else ""
    return f"{head}{variant.instruction}\n{narrative}"


def format_record(narrative: str, variant: Variant, layout: str = DEFAULT_LAYOUT) -> str:
    content = user_content(narrative, variant)
    if layout == "seed":
        return (f"{START_TURN}user\n{content}\n{END_TURN}\n"
                f"{START_TURN}model\n{variant.response_text}\n{END_TURN}\n\n")
    if layout == "gemma":
        return (f"{START_TURN}user\n{content}{END_TURN}\n"
                f"{START_TURN}model\n{variant.response_text}{END_TURN}\n")
    raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")


def format_original(record: Record) -> str:
    """The narrative in the original 'Below is a <topic> topic:' format, normalised."""
    return f"Below is a {record.topic or 'cardiology'} topic:\n\n{record.text}\n\n"


def format_dataset(records: list[Record], variant: Variant, layout: str = DEFAULT_LAYOUT) -> str:
    return "".join(format_record(r.text, variant, layout) for r in records)
