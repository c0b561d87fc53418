"""PostgreSQL for store tests: find the server, make throwaway databases and schemas.

The server is expected at 127.0.0.1:5432 with trust authentication (user postgres or root), or
wherever $PAPERGRADE_TEST_POSTGRES_URL points (a URL to its maintenance database).  Without it
the PostgreSQL tests skip with the reason; where they must run (CI, or
PAPERGRADE_REQUIRE_POSTGRES=1) they fail instead.  Nothing but the databases made here is
touched, and those are dropped afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

ADMIN_URL_ENV = "PAPERGRADE_TEST_POSTGRES_URL"
REQUIRE_ENVS = ("PAPERGRADE_REQUIRE_POSTGRES", "CI")
DEFAULT_ADMIN_URLS = tuple(
    f"postgresql+psycopg2://{user}@127.0.0.1:5432/postgres" for user in ("postgres", "root")
)


@cache
def find_postgres() -> tuple[str | None, str]:
    """(URL of the maintenance database, "") or (None, why not)."""
    if importlib.util.find_spec("psycopg2") is None:
        return None, "psycopg2 is not installed (pip install -e '.[dev]')"
    urls = [os.environ[ADMIN_URL_ENV]] if os.environ.get(ADMIN_URL_ENV) else DEFAULT_ADMIN_URLS
    reason = ""
    for url in urls:
        engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
        try:
            with engine.connect():
                return url, ""
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0]
        finally:
            engine.dispose()
    where = make_url(urls[-1]).render_as_string(hide_password=True)
    return None, f"PostgreSQL is not reachable at {where}: {reason}"


def postgres_required() -> bool:
    return any(os.environ.get(name, "").lower() not in ("", "0", "false") for name in REQUIRE_ENVS)


def postgres_admin_url_or_skip() -> str:
    url, reason = find_postgres()
    if url is None:
        if postgres_required():
            pytest.fail(f"PostgreSQL tests must run here: {reason}")
        pytest.skip(reason)
    return url


@contextmanager
def throwaway_database(admin_url: str) -> Iterator[str]:
    """A new, empty database for the duration; yields its URL and drops it afterwards."""
    name = f"papergrade_test_{secrets.token_hex(6)}"
    admin = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def throwaway_schema(database_url: str) -> Iterator[str]:
    """A new schema in that database, first on the search path of the URL yielded.

    Much faster than a database per test (dropping a database forces a checkpoint).
    """
    name = f"t_{secrets.token_hex(6)}"
    admin = create_engine(database_url, poolclass=NullPool)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        try:
            url = make_url(database_url).update_query_dict({"options": f"-csearch_path={name}"})
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    finally:
        admin.dispose()
