"""``papergrade demo``: the whole loop on this machine, from printing to grades.

1. prints a class set of the bundled example for the bundled roster,
2. simulates each student filling it in and photographing it with a phone,
3. grades the photos with the embedded defaults (SQLite store, no Redis),
and says where everything went.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grader.simulate_class import simulate_class
from worker.commands.grade_cmd import print_summary, progress_printer
from worker.jobs import GradeRequest, grade_batch
from worksheets.publish import publish
from worksheets.spec import load_roster, load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run the whole loop on example data")
    parser.add_argument("--out", type=Path, default=Path("demo"), help="output folder (demo/)")
    parser.add_argument("--spec", type=Path, default=EXAMPLES / "linear-layer.yaml")
    parser.add_argument("--students", type=Path, default=EXAMPLES / "roster.csv")
    parser.add_argument("--tier", choices=["scan", "phone", "hard"], default="phone",
                        help="how hard the simulated photos are (default: phone)")
    parser.add_argument("--seed", type=int, default=1)
    parser.set_defaults(func=run)


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    students = load_roster(args.students)
    print(f"1/3 printing '{spec.title}' for {len(students)} students ...")
    printed = publish(spec, args.out / "print", students, progress=log)
    key = json.loads(printed.key_json.read_text())
    photos = args.out / "photos"
    print(f"2/3 simulating {printed.pages} filled-in {args.tier} photos ...")
    simulate_class(key, printed.worksheets_pdf, photos, args.tier, args.seed,
                   progress=lambda done, total: log(f"photo {done}/{total}"))
    print("3/3 grading the photos (SQLite store, no Redis) ...")
    results = args.out / "results"
    summary = grade_batch(GradeRequest(printed.key_json, [photos], results),
                          progress=progress_printer())
    print()
    print_summary(summary, results)
    print()
    print("Demo finished. Also:")
    print(f"  worksheets to print   {printed.worksheets_pdf.resolve()}")
    print(f"  answer key            {printed.answer_key_pdf.resolve()}")
    print(f"  simulated photos      {photos.resolve()}")
    print(f"  review the doubtful boxes with: .venv/bin/papergrade review {results}")
    return 0
