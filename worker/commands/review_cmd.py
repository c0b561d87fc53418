"""``papergrade review``: settle the fields and students the grader was unsure of."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from worker.review import run_review


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "review", help="walk the review queue in the terminal and type corrections",
        description="Shows the doubted readings of the key's answer a group at a time, then "
        "each other doubtful box (crop path and a preview), takes your answers, re-grades what "
        "depends on them and regenerates the outputs.")
    parser.add_argument("results", type=Path, help="results folder written by grade")
    parser.add_argument("--database-url", help="results store URL (default: SQLite in results)")
    parser.add_argument("--who", help="your name for the review history (default: login name)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    colour = sys.stdout.isatty()
    try:
        run_review(args.results, database_url=args.database_url, colour=colour, who=args.who)
    except EOFError:
        print("\nreview stopped; decisions made so far are saved", file=sys.stderr)
    return 0
