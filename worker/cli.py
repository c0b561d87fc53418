"""The ``papergrade`` command line: one sub-command per module, registered explicitly.

Each command module provides ``add_parser(subparsers)`` which registers its arguments and sets
``func`` (taking the parsed namespace, returning an exit code).  Errors derived from
:class:`PapergradeError` are printed as one clear line with their code, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from worksheets.errors import PapergradeError


def _command_modules() -> list[ModuleType]:
    # Imported here so that 'papergrade --help' stays fast and one broken command cannot
    # take the others down at import time.
    from worker.commands import (
        align_cmd,
        demo_cmd,
        exercises_cmd,
        grade_cmd,
        print_cmd,
        read_cmd,
        review_cmd,
    )

    return [exercises_cmd, print_cmd, align_cmd, read_cmd, grade_cmd, review_cmd, demo_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="papergrade",
        description="Print worksheets, then grade photos or scans of them filled in by hand.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except PapergradeError as exc:
        print(f"papergrade: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("papergrade: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
