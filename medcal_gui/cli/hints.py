"""The CLI's phrasing of an `OptionHint`: the command-line flag that would help ("use --split paragraphs").

The GUI phrases the same hint with its own controls (ui/); the core's messages name neither.
"""

from __future__ import annotations

from medcal_gui.core.errors import MedcalError, OptionHint

# LoadOptions field -> the flag that sets it (commands/_dataset_args.py defines the flags).
FLAGS = {"split": "--split", "text_field": "--text-field", "encoding": "--encoding"}


def cli_hint(hint: OptionHint | None) -> str:
    """' Use --split paragraphs.' (with a leading space), or '' without a hint. A hint without a value
    (the text field) asks the user to pick; the message itself lists the choices."""
    if hint is None:
        return ""
    flag = FLAGS.get(hint.option, "--" + hint.option.replace("_", "-"))
    if hint.value is not None:
        return f" Use {flag} {hint.value}."
    if hint.option == "text_field":
        return f" Choose the field that holds the narrative with {flag} NAME."
    return f" Choose one with {flag} VALUE."


def cli_message(exc: MedcalError) -> str:
    return exc.message + cli_hint(exc.hint)
