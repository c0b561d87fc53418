"""Developer commands for the store's schema: ``python -m worker.store upgrade|current|revision``.

``revision`` autogenerates a new migration from the models against a database at head.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command

from worker.store.db import alembic_config, create_store_engine, migrate, resolve_url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.store", description=__doc__)
    parser.add_argument("action", choices=["upgrade", "current", "revision"])
    parser.add_argument("--url", help="database URL (default: $PAPERGRADE_DATABASE_URL or "
                        "SQLite in --data-dir)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("-m", "--message", default="schema change", help="revision message")
    args = parser.parse_args(argv)
    url = resolve_url(args.url, args.data_dir)
    config = alembic_config(url)
    if args.action == "revision":
        command.revision(config, message=args.message, autogenerate=True)
    elif args.action == "current":
        command.current(config, verbose=True)
    else:
        engine = create_store_engine(url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
