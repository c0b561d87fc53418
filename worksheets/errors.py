"""The one exception hierarchy of Papergrade.

Every error a user can cause carries a stable ``code`` (used in results files, exit codes, HTTP
statuses and task states) and a message that says what to do about it.  ``grader`` adds its own
subclasses; nothing else defines exceptions that reach a user.
"""

from __future__ import annotations


class PapergradeError(Exception):
    """Base class: a problem the user can fix, with a stable machine-readable code."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SpecError(PapergradeError):
    """The worksheet spec (YAML) or roster is invalid."""

    code = "bad_spec"
    exit_code = 2


class ExerciseError(PapergradeError):
    """An exercise family was asked for something it cannot produce."""

    code = "bad_exercise"
    exit_code = 2


class OutputFolderError(PapergradeError):
    """The folder results are to be written to cannot be made or used."""

    code = "bad_output_folder"
    exit_code = 2


class KeyFileError(PapergradeError):
    """A key.json file is missing, unreadable or of an unknown schema."""

    code = "bad_key"
    exit_code = 2
