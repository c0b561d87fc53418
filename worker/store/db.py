"""Engines and migrations: which database, how to connect, and bringing its schema to head.

SQLite is the default (one file in the data folder); PostgreSQL is chosen by URL.  Migrations
run programmatically from the scripts inside this package, so an installed package needs no
alembic.ini and every process that opens the store finds the schema it expects.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from worker.store.errors import StoreUnavailable

DATABASE_URL_ENV = "PAPERGRADE_DATABASE_URL"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Read-only sessions ask for this option; see _begin_sqlite.
READ_ONLY_OPTION = "papergrade_read_only"
# Seconds a SQLite writer waits for another process's transaction before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
# Alembic keeps the running migration in module globals, so one process migrates one at a time.
_MIGRATION_LOCK = threading.Lock()


def resolve_url(url: str | None, data_dir: Path) -> str:
    """The database URL: the argument, else $PAPERGRADE_DATABASE_URL, else a SQLite file."""
    chosen = url or os.environ.get(DATABASE_URL_ENV) or ""
    if not chosen:
        return f"sqlite:///{(data_dir / 'papergrade.db').resolve().as_posix()}"
    # Hosting services often hand out postgres://, which SQLAlchemy 2 no longer accepts.
    if chosen.startswith("postgres://"):
        chosen = "postgresql://" + chosen.removeprefix("postgres://")
    return chosen


def safe_url(url: str) -> str:
    """The URL for messages, password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def with_installed_driver(url: URL) -> URL:
    """A plain ``postgresql://`` URL with the driver Papergrade installs.

    SQLAlchemy 2.1 reads a plain ``postgresql://`` as psycopg 3, while the ``postgres``
    extra installs psycopg2; a URL that names its driver is left as it is.
    """
    if url.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
        return url.set(drivername="postgresql+psycopg2")
    return url


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and real transactions."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
            event.listen(engine, "connect", _configure_sqlite)
            event.listen(engine, "begin", _begin_sqlite)
            return engine
        return create_engine(with_installed_driver(parsed), pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ModuleNotFoundError) as exc:
        raise StoreUnavailable(
            f"cannot use the database URL {safe_url(url)} ({exc}); use sqlite:///path/file.db "
            "or postgresql://user@host/db (install papergrade[postgres] for PostgreSQL)"
        ) from None


def _configure_sqlite(dbapi_connection: Any, connection_record: Any) -> None:
    # The sqlite3 module's own transaction handling skips BEGIN before DDL and cannot take a
    # write lock up front; turn it off and let _begin_sqlite start every transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        # WAL lets the web pages read while a grading batch writes.
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    # Writers take the lock at BEGIN, so two processes never both read-then-write and deadlock;
    # the busy timeout then makes the second one wait its turn.
    read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration pointing at this package's migration scripts (no ini file)."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR.as_posix())
    # Revision files must be importable module names (mypy checks them): r<rev>_<slug>.py.
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    if url is not None:
        # '%' is ConfigParser's interpolation character; URLs may contain it (escaped passwords).
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def lock_key(name: str) -> int:
    """A stable 64-bit signed key for PostgreSQL advisory locks."""
    digest = hashlib.sha256(f"papergrade:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``, safely when several processes start at once."""
    config = alembic_config()
    with _MIGRATION_LOCK, engine.begin() as connection:
        # One migrator at a time: SQLite's BEGIN IMMEDIATE already holds the write lock; on
        # PostgreSQL an advisory lock, released at commit, makes the others wait and then
        # find the schema at head.
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key("migrate")}
            )
        current = MigrationContext.configure(connection).get_current_revision()
        if revision == "head" and current == head_revision():
            return
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def open_engine(url: str) -> Engine:
    """Connect and migrate; any failure becomes a StoreUnavailable with the URL and advice."""
    engine = create_store_engine(url)
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = getattr(exc, "orig", None) or exc
        raise StoreUnavailable(
            f"cannot open the database {safe_url(url)}: {str(reason).strip()}; check that it "
            f"is reachable and writable, or set {DATABASE_URL_ENV}"
        ) from None
    except BaseException:
        engine.dispose()
        raise
    return engine
