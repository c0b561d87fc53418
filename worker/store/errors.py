"""Errors of the results store, each with a stable code and advice for whoever runs the service."""

from __future__ import annotations

from worksheets.errors import PapergradeError


class StoreError(PapergradeError):
    """The store was asked for something it cannot do (e.g. override a page that was not graded)."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The database cannot be opened or migrated."""

    code = "database_unavailable"
    exit_code = 3


class RecordNotFound(StoreError):
    """A worksheet, upload, page, field, student or batch id that the store does not hold."""

    code = "not_found"
