"""``papergrade print``: a class set of worksheets, the answer key PDF and key.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from worksheets.errors import SpecError
from worksheets.publish import publish
from worksheets.spec import load_roster, load_spec, spec_json_schema


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "print",
        help="print a worksheet class set from a YAML spec",
        description="Lay out and print worksheets (one variant per student or numbered copy), "
        "an answer-key PDF and key.json for grading.",
    )
    parser.add_argument("spec", type=Path, nargs="?", help="worksheet spec (YAML)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--copies", type=int, help="numbered copies (default: the spec's, or 1)")
    who.add_argument("--students", type=Path, help="roster CSV with student_id,name")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder (out/)")
    parser.add_argument("--seed", type=int, help="override the spec's seed")
    parser.add_argument("--schema", action="store_true", help="print the spec's JSON Schema")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.schema:
        print(spec_json_schema())
        return 0
    if args.spec is None:
        raise SpecError("give a worksheet spec, e.g. papergrade print examples/linear-layer.yaml")
    spec = load_spec(args.spec)
    if args.seed is not None:
        spec = spec.model_copy(update={"seed": args.seed})
    if args.copies is not None and args.copies < 1:
        raise SpecError("--copies must be at least 1")
    students = load_roster(args.students) if args.students else None
    if students is None and spec.variants.roster:
        students = load_roster((args.spec.parent / spec.variants.roster).resolve())
    printed = publish(spec, args.out, students, args.copies,
                      progress=lambda message: print(f"  {message}", file=sys.stderr))
    print(f"Printed {printed.variants} worksheet(s), {printed.pages} page(s):")
    print(f"  worksheets   {printed.worksheets_pdf}")
    print(f"  answer key   {printed.answer_key_pdf}")
    print(f"  grading key  {printed.key_json}")
    return 0
