"""``papergrade demo``: the whole loop on this machine, from printing to grades.

Prints a class set from the bundled example, and says where everything went.  Later stages
(simulated photos, grading) join here as they exist, so the demo always shows the product's
real state.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from worksheets.publish import publish
from worksheets.spec import load_roster, load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run the whole loop on example data")
    parser.add_argument("--out", type=Path, default=Path("demo"), help="output folder (demo/)")
    parser.add_argument("--spec", type=Path, default=EXAMPLES / "linear-layer.yaml")
    parser.add_argument("--students", type=Path, default=EXAMPLES / "roster.csv")
    parser.set_defaults(func=run)


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    students = load_roster(args.students)
    print(f"1/1 printing '{spec.title}' for {len(students)} students ...")
    printed = publish(spec, args.out / "print", students, progress=log)
    print()
    print("Demo finished. Results:")
    print(f"  worksheets to print   {printed.worksheets_pdf.resolve()}")
    print(f"  answer key            {printed.answer_key_pdf.resolve()}")
    print(f"  grading key           {printed.key_json.resolve()}")
    return 0
