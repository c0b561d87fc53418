"""The results store: SQLite by default, PostgreSQL by URL, schema kept by Alembic migrations.

``open_store(url, data_dir)`` connects, brings the schema to head and returns a :class:`Store`;
the original uploads are kept under ``data_dir/uploads``.
"""

from __future__ import annotations

from pathlib import Path

from worker.store.db import DATABASE_URL_ENV, open_engine, resolve_url
from worker.store.errors import RecordNotFound, StoreError, StoreUnavailable
from worker.store.repository import (
    BatchRecord,
    PageSaved,
    Regrade,
    ReviewRecord,
    Store,
    StoredPage,
    UploadSaved,
)

__all__ = [
    "DATABASE_URL_ENV",
    "BatchRecord",
    "PageSaved",
    "RecordNotFound",
    "Regrade",
    "ReviewRecord",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredPage",
    "UploadSaved",
    "open_store",
]


def open_store(url: str | None, data_dir: Path) -> Store:
    """Open (and migrate) the store: ``url``, else $PAPERGRADE_DATABASE_URL, else SQLite.

    The default database is ``<data_dir>/papergrade.db``.  Close the store when done (it is a
    context manager) so its connections are released.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    return Store(open_engine(resolve_url(url, data_dir)), data_dir)
