"""gradebook.csv: one row per student, in our own layout or one a school's LMS imports.

Formats (``GRADEBOOK_FORMATS``):

``default``
    student_id, name, one column per exercise, total, max, percent, provisional,
    fields_in_review, notes.  Written with a UTF-8 BOM because Excel, where most teachers open
    it, otherwise reads UTF-8 as the local code page and garbles accented names.
``google-classroom``
    Last Name, First Name, Email Address, Student ID, "<title>", Provisional.  We know no
    e-mail addresses: a student id that is one (contains "@") is used, otherwise the column is
    left empty for the teacher to fill or to match on names.  Names are split at the last space
    ("Amina N. Diallo" -> first "Amina N.", last "Diallo"), or at a comma ("Diallo, Amina").
``canvas``
    Student ("Last, First"), ID (the Canvas user id: unknown, empty), SIS User ID (student_id),
    SIS Login ID, Section, "<title> (<worksheet_id>)", then the "Points Possible" row Canvas
    puts first in its own exports.  Canvas finds students by SIS User ID when ID is empty.
``moodle``
    First name, Last name, ID number (student_id), Email address, "<title> (<worksheet_id>)",
    Provisional.  On import, map "ID number" to the user's ID number and the grade column to
    the grade item.

The three LMS formats are written without a BOM: Google Sheets, Canvas and Moodle read UTF-8
directly, and a BOM would become part of the first header name in some importers.

A total that can still change (fields in review, identity to check) is never passed off as
final: every format has a provisional column (LMS importers let the teacher skip it).  Roster
students without pages get a row with empty grades.  Unidentified pages appear only in the
default format: an LMS has no student to put them on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grader.outputs.common import atomic_write_text, csv_text, fmt_percent, fmt_points
from grader.outputs.sheets import StudentSheet, build_sheets, max_points, percent
from grader.results import ClassResults

Rows = list[list[str]]
Table = tuple[list[str], Rows, bool]  # header, rows, write a BOM


def split_name(name: str) -> tuple[str, str]:
    """(first, last) from one name string; see the module docstring for the rule."""
    name = " ".join(name.split())
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip(), last.strip()
    first, _, last = name.rpartition(" ")
    if not first:
        return last, ""
    return first, last


def _flag(sheet: StudentSheet) -> str:
    return "yes" if sheet.provisional else ""


def _grade(sheet: StudentSheet) -> str:
    return fmt_points(sheet.total)


def _assignment(results: ClassResults) -> str:
    return f"{results.title} ({results.worksheet_id})"


def _identified(sheets: list[StudentSheet]) -> list[StudentSheet]:
    return [s for s in sheets if s.identified]


def default_table(results: ClassResults, sheets: list[StudentSheet]) -> Table:
    exercise_ids = [e.exercise_id for e in results.exercises]
    maximum = max_points(results)
    header = ["student_id", "name", *exercise_ids, "total", "max", "percent", "provisional",
              "fields_in_review", "notes"]
    rows: Rows = []
    for sheet in sheets:
        rows.append([
            sheet.student_id,
            sheet.name,
            *(fmt_points(sheet.exercise_points(e)) for e in exercise_ids),
            _grade(sheet),
            fmt_points(maximum),
            fmt_percent(percent(sheet.total, maximum)),
            _flag(sheet),
            str(sheet.review_count) if sheet.pages else "",
            "; ".join(sheet.notes(exercise_ids)),
        ])
    return header, rows, True


def google_classroom_table(results: ClassResults, sheets: list[StudentSheet]) -> Table:
    header = ["Last Name", "First Name", "Email Address", "Student ID", results.title,
              "Provisional"]
    rows: Rows = []
    for sheet in _identified(sheets):
        first, last = split_name(sheet.name)
        email = sheet.student_id if "@" in sheet.student_id else ""
        rows.append([last, first, email, sheet.student_id, _grade(sheet), _flag(sheet)])
    return header, rows, False


# Canvas writes this label indented by four spaces in its exports and recognises it on import.
CANVAS_POINTS_ROW = "    Points Possible"


def canvas_table(results: ClassResults, sheets: list[StudentSheet]) -> Table:
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", _assignment(results),
              "Provisional"]
    rows: Rows = [[CANVAS_POINTS_ROW, "", "", "", "", fmt_points(max_points(results)), ""]]
    for sheet in _identified(sheets):
        first, last = split_name(sheet.name)
        display = f"{last}, {first}" if last else first
        rows.append([display, "", sheet.student_id, "", "", _grade(sheet), _flag(sheet)])
    return header, rows, False


def moodle_table(results: ClassResults, sheets: list[StudentSheet]) -> Table:
    header = ["First name", "Last name", "ID number", "Email address", _assignment(results),
              "Provisional"]
    rows: Rows = []
    for sheet in _identified(sheets):
        first, last = split_name(sheet.name)
        email = sheet.student_id if "@" in sheet.student_id else ""
        rows.append([first, last, sheet.student_id, email, _grade(sheet), _flag(sheet)])
    return header, rows, False


GRADEBOOK_FORMATS: dict[str, Callable[[ClassResults, list[StudentSheet]], Table]] = {
    "default": default_table,
    "google-classroom": google_classroom_table,
    "canvas": canvas_table,
    "moodle": moodle_table,
}


def gradebook_table(results: ClassResults, gradebook_format: str = "default") -> Table:
    try:
        make = GRADEBOOK_FORMATS[gradebook_format]
    except KeyError:
        known = ", ".join(GRADEBOOK_FORMATS)
        raise ValueError(
            f"unknown gradebook format {gradebook_format!r}; choose one of: {known}"
        ) from None
    return make(results, build_sheets(results))


def write_gradebook(results: ClassResults, path: Path, gradebook_format: str = "default") -> Path:
    header, rows, bom = gradebook_table(results, gradebook_format)
    return atomic_write_text(path, csv_text(header, rows), bom=bom)
