"""The window's phrasing of a core hint (the setting that would help): it names the window's own control,
never a CLI flag. The CLI phrases the same hint with its flags (commands/)."""

from __future__ import annotations

from typing import Any

# LoadOptions field -> where the window sets it.
CONTROLS = {"split": "“Split .txt by” above the file list",
            "text_field": "“Text field (.jsonl, .csv)” above the file list",
            "encoding": "the file's “Decode as” cell"}


def gui_hint(hint: Any) -> str:
    """" Choose paragraphs in “Split .txt by” above the file list." (leading space), or "" without a hint."""
    if hint is None:
        return ""
    option = str(getattr(hint, "option", ""))
    value = getattr(hint, "value", None)
    choices = tuple(getattr(hint, "choices", ()) or ())
    where = CONTROLS.get(option, f"the “{option.replace('_', ' ')}” setting")
    if option == "text_field":
        if value:
            return f" Type {value} in {where}."
        listed = f" ({', '.join(choices)})" if choices else ""
        return f" Type the name of the field that holds the narrative{listed} in {where}."
    if value:
        return f" Choose {value} in {where}."
    return f" Choose one of {', '.join(choices)} in {where}." if choices else f" Choose another in {where}."
