"""What step 4 (Verify & chat) shows, computed without Qt: the held-out share and what the demo model is (a base
model that continues text, so its chat replies stop at the next turn marker and stay short). The reading of
the KL divergence is `evaluate.kld_reading`'s."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medcal_gui.dataset.holdout import HELDOUT_FRACTION, heldout_text, split_records
from medcal_gui.dataset.records import Record

DEMO_MAX_TOKENS = 64  # a base model never ends its turn: keep its replies short unless asked otherwise
DEMO_CHAT_NOTE = ("The demo model (Gemma 3 270M) is a base model: it continues text rather than answering like "
                  "an assistant, and rarely ends its turn. Replies stop at the next turn marker it writes, or "
                  f"after {DEMO_MAX_TOKENS} tokens by default.")


def held_out_count(n_records: int) -> int:
    """How many of `n_records` step 3 keeps out of the importance matrix (step 4 evaluates on them)."""
    return len(split_records(range(n_records))[1])  # type: ignore[arg-type]


def held_out_percent() -> int:
    return round(HELDOUT_FRACTION * 100)


def is_demo_model(path: Path | None) -> bool:
    """The demo model, or a quant made from it (named after it by step 3)."""
    if path is None:
        return False
    from medcal_gui.gguf_files.demo_model import demo_model_path

    demo = demo_model_path()
    return path.name == demo.name or path.name.startswith(demo.stem + "-")


def heldout_split(records: Sequence[Record], variant: str, layout: str) -> tuple[str, str]:
    """The held-out records formatted as step 3 formats its calibration text (the settings' variant and
    layout, else the defaults step 3 uses), and a description of them."""
    from medcal_gui.dataset.formatting import DEFAULT_LAYOUT
    from medcal_gui.dataset.variants import DEFAULT_VARIANT, load_variants

    variants = load_variants()
    v = variants.get(variant) or variants[DEFAULT_VARIANT]
    layout = layout or DEFAULT_LAYOUT
    text, n = heldout_text(records, v, layout)
    return text, f"the last {n} of {len(records)} narratives ({v.name}, {layout} layout)"
