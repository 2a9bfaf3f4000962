"""One exception family. Every message is meant for the user: what happened, where, what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OptionHint:
    """A setting the user can change to get past a problem, for each front end to phrase its own way.

    `option` names a `LoadOptions` field ("split", "text_field", "encoding"); `value` is the value to try,
    or None when the user must pick one (from `choices`, when known). The CLI says "use --split
    paragraphs" (commands/_hints.py), the GUI names its own control; the core's message names neither.
    """

    option: str
    value: str | None = None
    choices: tuple[str, ...] = ()


class MedcalError(Exception):
    """Base of every error medcal reports to a user.

    `message` is the plain-words summary; `details` optional longer text (shown expandable in the GUI).
    `exit_code` is what the CLI exits with. `hint`, when set, is the setting that would help; the front end
    that shows the message adds it in its own words.
    """

    exit_code = 1

    def __init__(self, message: str, details: str | None = None, hint: OptionHint | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.hint = hint


class InputError(MedcalError):
    """An input cannot be used at all (missing, empty, binary, undecodable, wrong kind of file)."""

    exit_code = 2


class DataError(InputError):
    """A problem inside an input's data, located at a file and line."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 details: str | None = None, hint: OptionHint | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}" + (f", line {line}" if line is not None else "") + ": "
        super().__init__(where + message, details, hint)
        self.path = path
        self.line = line


class OutputError(MedcalError):
    """An output cannot be written (unwritable folder, would overwrite an input, no space)."""

    exit_code = 2


class ModelError(InputError):
    """A model file cannot be used."""


class SetupError(MedcalError):
    """The installation itself cannot work (a library of another version than medcal was built for)."""


class Cancelled(MedcalError):
    """The user cancelled a job; partial outputs have been removed."""

    exit_code = 130

    def __init__(self, message: str = "Cancelled by the user; nothing partial was left behind.") -> None:
        super().__init__(message)
