"""Gemma's turn markers: the one definition every layer uses (formatting, token counts, model checks, the
converter, chat). With `parse_special` they are the single control tokens 105 and 106 of Gemma 3."""

from __future__ import annotations

TURN_START = "<start_of_turn>"
TURN_END = "<end_of_turn>"
TURN_MARKERS = (TURN_START, TURN_END)
