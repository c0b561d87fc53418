"""``papergrade exercises``: the exercise families, one line each, with their parameters."""

from __future__ import annotations

import argparse
from typing import Any

from worksheets.exercises.registry import FAMILIES


def describe_params(params_model: Any) -> str:
    parts = []
    for name, info in params_model.model_fields.items():
        default = info.get_default(call_default_factory=True)
        parts.append(f"{name}={default!r}")
    return ", ".join(parts)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("exercises", help="list the exercise families")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also describe each parameter")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    width = max(len(name) for name in FAMILIES)
    for name, family in FAMILIES.items():
        print(f"{name:<{width}}  {family.summary}  [{describe_params(family.Params)}]")
        if args.verbose:
            for param, info in family.Params.model_fields.items():
                print(f"{'':<{width}}    {param}: {info.description or ''}")
    return 0
