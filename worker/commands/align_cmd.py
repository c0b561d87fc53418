"""``papergrade align``: locate, identify and align page photos, and cut one crop per field.

Prints one line per page (its worksheet page and residual, or the error that says what to
do), optionally writes the crops and debug overlays, and ends with a summary.  Exits 1 only
if no page at all could be aligned.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import cv2

from grader.debug import safe_name, write_debug
from grader.errors import PageError
from grader.grade import crops_by_name, unplaced_by_name
from grader.io import DEFAULT_PDF_DPI, InputFailure, iter_pages
from grader.keyindex import KeyIndex
from grader.pipeline import AlignedPage, AlignOptions, AlignTrace, align_page


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "align",
        help="find and align worksheet pages in photos or scans, and crop the answer boxes",
        description="Read photos or scans of printed worksheets (JPEG, PNG, TIFF, HEIC, PDF, "
        "zip or folders), tell which worksheet page each one is, align it and cut out every "
        "answer box.  Pages that cannot be used are reported with the reason and what to do.",
    )
    parser.add_argument("inputs", type=Path, nargs="+", help="photos, scans, PDFs, zips, folders")
    parser.add_argument("--key", type=Path, required=True, help="key.json written by print")
    parser.add_argument("--out", type=Path, help="write each page's crops (PNG) under this folder")
    parser.add_argument("--debug", type=Path, help="write overlays and crop sheets to this folder")
    parser.add_argument("--dpi", type=int, default=DEFAULT_PDF_DPI,
                        help=f"resolution for PDF pages (default {DEFAULT_PDF_DPI})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    key_index = KeyIndex.load(args.key)
    outcomes: Counter[str] = Counter()
    for number, item in enumerate(iter_pages(args.inputs, pdf_dpi=args.dpi), start=1):
        if isinstance(item, InputFailure):
            _report_error(item.source, item.error, outcomes)
            continue
        trace = AlignTrace()
        name = f"{number:03d}_{safe_name(item.source)}"
        try:
            result = align_page(item.image, key_index, AlignOptions(source=item.source), trace)
        except PageError as err:
            _report_error(item.source, err, outcomes)
            if args.debug:
                write_debug(args.debug, name, item.image, trace, error=err,
                            qr_rect=key_index.geometry.qr_rect,
                            size_mm=key_index.geometry.size_mm)
            continue
        outcomes["aligned"] += 1
        outcomes["boxes unplaced"] += len(result.unplaced)
        print(f"{item.source} -> {describe(result)}")
        if args.out:
            write_crops(args.out / name, result)
        if args.debug:
            write_debug(args.debug, name, item.image, trace, result,
                        qr_rect=result.key_page.qr_rect, size_mm=result.key_page.size_mm)
    print(summary(outcomes))
    return 0 if outcomes["aligned"] else 1


def describe(result: AlignedPage) -> str:
    ident = result.identity
    text = (f"worksheet {ident.worksheet_id} variant {ident.variant} page {ident.page_number}, "
            f"{len(result.crops)} fields, residual {result.residual_mm:.2f} mm")
    for box_id, why in result.unplaced.items():
        text += (f"; box {box_id} could not be placed safely ({why}): its crop is a wider "
                 "view for checking by eye, it will not be read")
    return text


def write_crops(folder: Path, result: AlignedPage) -> None:
    """One PNG per field (``<field id>.png``) and per student-number digit; a box that could
    not be placed safely gets its wider view as ``<id>.unplaced.png`` instead."""
    folder.mkdir(parents=True, exist_ok=True)
    lost = unplaced_by_name(result)
    for name, crop in crops_by_name(result).items():
        suffix = ".unplaced.png" if name in lost else ".png"
        cv2.imwrite(str(folder / f"{safe_name(name)}{suffix}"), crop)


def _report_error(source: str, error: PageError, outcomes: Counter[str]) -> None:
    outcomes[error.code] += 1
    print(f"{source} -> ERROR [{error.code}]: {error.message}")


def summary(outcomes: Counter[str]) -> str:
    total = sum(outcomes.values())
    total -= outcomes["boxes unplaced"]
    errors = {code: n for code, n in sorted(outcomes.items())
              if code not in ("aligned", "boxes unplaced")}
    text = f"Aligned {outcomes['aligned']} of {total} page(s)"
    if outcomes["boxes unplaced"]:
        text += f" ({outcomes['boxes unplaced']} box(es) left unplaced, to check by eye)"
    if errors:
        text += "; errors: " + ", ".join(f"{code} {n}" for code, n in errors.items())
    return text
