"""Developer commands for the store's schema: ``python -m worker.store upgrade|current|revision``.

``revision`` autogenerates a new migration from the models against a database at head.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command

from worker.store import open_store
from worker.store.db import alembic_config, resolve_url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.store", description=__doc__)
    parser.add_argument("action", choices=["upgrade", "current", "revision"])
    parser.add_argument("--url", help="database URL (default: $PAPERGRADE_DATABASE_URL or "
                        "SQLite in --data-dir)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("-m", "--message", default="schema change", help="revision message")
    args = parser.parse_args(argv)
    if args.action == "upgrade":
        open_store(args.url, args.data_dir).close()
        return 0
    config = alembic_config(resolve_url(args.url, args.data_dir))
    if args.action == "revision":
        command.revision(config, message=args.message, autogenerate=True)
    else:
        command.current(config, verbose=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
