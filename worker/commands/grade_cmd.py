"""``papergrade grade``: grade photos and scans against a key, with progress and a summary."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader.grade import UNPLACED_REASON
from grader.io import folders_inside
from worker.jobs import GradeRequest, GradeSummary, PageDone, available_cores, grade_batch


def add_parser(subparsers: Any) -> None:
    from grader.outputs import GRADEBOOK_FORMATS

    parser = subparsers.add_parser(
        "grade",
        help="grade photos or scans of filled-in worksheets",
        description="Read every answer box of every page and grade it against the key. "
        "Inputs: JPEG, PNG, TIFF, HEIC, PDF, zip files and folders of these.",
    )
    parser.add_argument("inputs", type=Path, nargs="+", help="photos, scans, zips or folders")
    parser.add_argument("--key", type=Path, required=True, help="key.json written by print")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    parser.add_argument("--students", type=Path,
                        help="roster CSV (student_id,name) to match handwritten student numbers")
    parser.add_argument("--gradebook-format", choices=sorted(GRADEBOOK_FORMATS),
                        default="default", help="gradebook.csv layout (default: default)")
    parser.add_argument("--jobs", type=int, default=1,
                        help=f"worker processes (this machine has {available_cores()} cores)")
    parser.add_argument("--database-url",
                        help="SQLAlchemy URL of the results store (default: SQLite in --out)")
    parser.add_argument("--review-threshold", type=confidence, default=None, metavar="P",
                        help="send readings less sure than this (0-1) to review, on every page "
                        "(default: the reader model's own, calibrated for at most 1 wrong "
                        "reading in 500 accepted, lower on sharp, well-resolved pages; see "
                        "grader/models/MODEL_CARD.md for the trade-off)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no line per page")
    parser.set_defaults(func=run)


def confidence(text: str) -> float:
    """A threshold between 0 and 1, or a clear argparse error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def page_line(done: PageDone, summary: GradeSummary, rate: float) -> str:
    result = done.result
    attention = sum(summary.errors.values())
    counter = f"[{done.index:4d} | {rate:4.1f} pages/s | {attention} need attention]"
    if not result.graded:
        return f"{counter} ERROR  {result.message}"
    review = sum(f.verdict == "review" for f in result.fields)
    unplaced = sum(f.reason.startswith(UNPLACED_REASON) for f in result.fields)
    who = result.student.name if result.student else "student not identified yet"
    flags = f", {review} to review" if review else ""
    flags += (f" ({unplaced} box(es) could not be placed: retake it flat, without glare)"
              if unplaced else "")
    flags += ", identity to check" if result.identity_review else ""
    return (f"{counter} ok     {result.source}: {who}, page {result.page_number}, "
            f"{len(result.fields)} boxes{flags}")


def progress_printer(quiet: bool = False) -> Callable[[PageDone, GradeSummary], None]:
    """A progress callback: a line per page, or when ``quiet`` a line every 25 pages."""
    started = time.perf_counter()

    def progress(done: PageDone, summary: GradeSummary) -> None:
        rate = done.index / max(time.perf_counter() - started, 1e-6)
        if not quiet:
            print(page_line(done, summary, rate), file=sys.stderr)
        elif done.index % 25 == 0:
            print(f"  {done.index} pages, {rate:.1f} pages/s, "
                  f"{sum(summary.errors.values())} need attention", file=sys.stderr)

    return progress


def run(args: argparse.Namespace) -> int:
    request = GradeRequest(
        key_path=args.key, inputs=args.inputs, out_dir=args.out, roster_csv=args.students,
        database_url=args.database_url, gradebook_format=args.gradebook_format,
        jobs=max(1, args.jobs), review_threshold=args.review_threshold,
    )
    for folder in folders_inside(args.out, args.inputs):
        print(f"Note: the results folder {args.out} lies inside {folder}; its files are not "
              "graded as uploads.", file=sys.stderr)
    summary = grade_batch(request, progress=progress_printer(quiet=args.quiet))
    print_summary(summary, args.out)
    return 0 if summary.graded or not summary.pages else 1


def print_summary(summary: GradeSummary, out: Path) -> None:
    rate = summary.pages / summary.seconds if summary.seconds else 0.0
    print(f"Graded {summary.graded} of {summary.pages} pages in {summary.seconds:.1f} s "
          f"({rate:.2f} pages/s); {summary.students} students.")
    if summary.duplicates or summary.replaced:
        print(f"  {summary.duplicates} duplicate page(s) not counted twice; "
              f"{summary.replaced} earlier photo(s) replaced by a newer one (history kept).")
    if summary.errors:
        print(f"  {sum(summary.errors.values())} page(s) need attention:")
        for code, number in summary.errors.most_common():
            print(f"    {number} x {code}")
        for _source, message in summary.error_pages[:20]:
            print(f"    - {message}")
    if summary.fields_in_review or summary.identity_reviews:
        print(f"  {summary.fields_in_review} field(s) and {summary.identity_reviews} student "
              f"identification(s) wait for review: papergrade review {out}")
    if summary.fields_credited:
        print(f"  {summary.fields_credited} field(s) the reader was unsure of were credited as "
              "the expected answer (credit_expected_answers); fields.csv names them")
    if summary.crediting_unavailable:
        print("  This worksheet asks to credit doubted readings of the expected answer "
              "(credit_expected_answers), but the reader model has no calibrated key-match "
              "threshold, so they wait in review instead; bench/key_match.py --write "
              "calibrates one (see grader/models/MODEL_CARD.md)")
    print("Results:")
    for name in ("results.json", "gradebook.csv", "fields.csv", "report.html"):
        if name in summary.outputs:
            print(f"  {name:<14} {summary.outputs[name].resolve()}")
    pdfs = [p for n, p in summary.outputs.items() if n.startswith("students/")]
    if pdfs:
        print(f"  {'students/':<14} {len(pdfs)} annotated PDF(s) in {pdfs[0].parent.resolve()}")
