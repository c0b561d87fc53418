"""fields.csv: one row per student and answer field, for teachers who sort and filter.

Written with a UTF-8 BOM: it is meant to be opened in Excel, which needs the BOM to read
UTF-8 (labels and names with accents) instead of the local code page.
"""

from __future__ import annotations

from pathlib import Path

from grader.outputs.common import atomic_write_text, csv_text, fmt_points
from grader.outputs.sheets import build_sheets
from grader.results import ClassResults

HEADER = [
    "student_id", "name", "page", "field_id", "exercise_id", "label", "read", "expected",
    "expected_used", "verdict", "points", "max_points", "confidence", "carried_forward",
    "mistake", "reason", "source",
]


def fields_rows(results: ClassResults) -> list[list[str]]:
    rows: list[list[str]] = []
    for sheet in build_sheets(results):
        for page in sheet.pages:
            page_number = "" if page.page_number is None else str(page.page_number)
            for f in page.fields:
                rows.append([
                    sheet.student_id, sheet.name, page_number, f.field_id, f.exercise_id,
                    f.label, f.read if f.read is not None else "", f.expected, f.expected_used,
                    f.verdict, fmt_points(f.points), fmt_points(f.max_points),
                    f"{f.confidence:.3f}", "yes" if f.carried_forward else "",
                    f.mistake or "", f.reason, page.source,
                ])
    return rows


def write_fields_csv(results: ClassResults, path: Path) -> Path:
    return atomic_write_text(path, csv_text(HEADER, fields_rows(results)), bom=True)
