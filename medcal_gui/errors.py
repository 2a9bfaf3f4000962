"""One exception family. Every message is meant for the user: what happened, where, what to do."""

from __future__ import annotations


class MedcalError(Exception):
    """Base of every error medcal reports to a user.

    `message` is the plain-words summary; `details` optional longer text (shown expandable in the GUI).
    `exit_code` is what the CLI exits with.
    """

    exit_code = 1

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InputError(MedcalError):
    """An input cannot be used at all (missing, empty, binary, undecodable, wrong kind of file)."""

    exit_code = 2


class DataError(InputError):
    """A problem inside an input's data, located at a file and line."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 details: str | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}" + (f", line {line}" if line is not None else "") + ": "
        super().__init__(where + message, details)
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
