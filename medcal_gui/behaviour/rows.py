"""Checks shared by the question and prompt files (`mcq`, `ladder --questions`, `agree --prompts`): each row
is one JSON value, and a value of the wrong shape is a DataError at its file and line that says what it found
and what to write, never a str() of a list or an object passed on as if it were text."""

from __future__ import annotations

from medcal_gui.core.errors import DataError

# a question with its options, or a prompt with its messages: a million characters is about 250k tokens,
# more than any context medcal opens; above it, tokenizing alone would take minutes and gigabytes
MAX_ROW_CHARS = 1_000_000


def json_kind(value: object) -> str:
    """The JSON name of `value`'s type, as a user who wrote the file would call it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def row_id(row: dict[str, object], path: str, line: int) -> str:
    """The row's `id` (a text or a whole number), or `line<N>` when it has none."""
    if "id" not in row:
        return f"line{line}"
    ident = row["id"]
    if isinstance(ident, int) and not isinstance(ident, bool):
        return str(ident)
    if not isinstance(ident, str) or not ident.strip():
        found = "an empty text" if isinstance(ident, str) else json_kind(ident)
        raise DataError(f'the id is {found}; write a text such as "id": "case-{line}", or leave the id out.',
                        path, line)
    return ident  # as written: an id is a key the user looks up, not text to tidy


def text_field(row: dict[str, object], key: str, path: str, line: int, example: str) -> str:
    """row[key] as stripped text: missing, empty or not a JSON string is refused with `example` (how to
    write the field)."""
    if key not in row or row[key] is None:
        raise DataError(f"the {key} is missing; write {example}.", path, line)
    value = row[key]
    if not isinstance(value, str):
        raise DataError(f"the {key} is {json_kind(value)}, not a text; write {example}.", path, line)
    if not value.strip():
        raise DataError(f"the {key} is empty; write {example}.", path, line)
    return value.strip()


def option_text(value: object, label: str, path: str, line: int) -> str:
    """One option's text: a JSON string, or a number written as one (`[5, 10, 20]`); never a list, an
    object, null or true/false turned into their Python spelling."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(f"option {label} is {json_kind(value)}, not a text; write each option as a text, "
                        f'e.g. "{label}": "Atrial fibrillation".', path, line)
    if not value.strip():
        raise DataError(f"option {label} is empty; give every option a text.", path, line)
    return value.strip()


def check_size(n_chars: int, what: str, path: str, line: int) -> None:
    if n_chars > MAX_ROW_CHARS:
        raise DataError(f"{what} is {n_chars:,} characters long; medcal reads at most {MAX_ROW_CHARS:,} "
                        "characters a line (far more than a context holds). Shorten it.", path, line)
