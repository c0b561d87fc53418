"""Errors of the grading pipeline, each with a stable code and advice for the teacher.

A page-level error becomes that page's ``status`` in results.json; it never stops the batch.
"""

from __future__ import annotations

from worksheets.errors import PapergradeError


class PageError(PapergradeError):
    """A page (or file) that cannot be graded; ``code`` becomes its status."""

    code = "page_error"


class UnreadableFile(PageError):
    code = "unreadable_file"


class UnsupportedFormat(PageError):
    code = "unsupported_format"


class TooBlurred(PageError):
    code = "too_blurred"


class TooDark(PageError):
    code = "too_dark"


class Overexposed(PageError):
    code = "overexposed"


class LowResolution(PageError):
    code = "low_resolution"


class MarkersMissing(PageError):
    code = "markers_missing"


class QrUnreadable(PageError):
    code = "qr_unreadable"


class UnknownWorksheet(PageError):
    code = "unknown_worksheet"


class AnswerKeyPage(PageError):
    code = "answer_key_page"


class AlignmentUncertain(PageError):
    code = "alignment_uncertain"


class ReaderModelError(PapergradeError):
    """The reader's model files are missing or do not match their config."""

    code = "reader_model"
