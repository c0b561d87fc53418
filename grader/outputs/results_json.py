"""results.json: the machine-readable record of a batch (contract in ARCHITECTURE.md).

Keys named in the contract (``source``, ``status``, ``pdf_page``, the student, and per field
``id``, ``read``, ``confidence``, ``verdict``) are never renamed or dropped without a new
``schema`` string; everything else here may grow.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.outputs.common import atomic_write_text
from grader.outputs.sheets import StudentSheet, build_sheets, max_points, percent
from grader.results import RESULTS_SCHEMA, ClassResults, FieldResult, PageResult

DUPLICATE = "duplicate"
REPLACED = "replaced"


def page_status(page: PageResult) -> str:
    """The status as results.json reports it: pages that no longer count get their own."""
    if page.duplicate_of is not None:
        return DUPLICATE
    return REPLACED if page.replaced_by is not None else page.status


def page_note(page: PageResult) -> str:
    """What a teacher is told about a page that is not graded or no longer counts."""
    if page.duplicate_of is not None:
        return f"same as {page.duplicate_of}; counted once"
    if page.replaced_by is not None:
        return f"replaced by a later photo of the same page, {page.replaced_by}"
    return page.message


def field_record(f: FieldResult) -> dict[str, Any]:
    return {
        "id": f.field_id,
        "exercise": f.exercise_id,
        "label": f.label,
        "read": f.read,
        "confidence": round(min(max(f.confidence, 0.0), 1.0), 4),
        "verdict": f.verdict,
        "expected": f.expected,
        "expected_used": f.expected_used,
        "points": f.points,
        "max_points": f.max_points,
        "carried_forward": f.carried_forward,
        "mistake": f.mistake,
        "reason": f.reason,
        "reading_status": f.reading_status,
        "alternatives": [{"read": r, "confidence": round(c, 4)} for r, c in f.alternatives],
        "bbox_mm": list(f.bbox_mm),
        "overridden": f.overridden,
        "reader_unsure": f.reader_unsure,
        "crop_path": f.crop_path,
    }


def page_record(page: PageResult) -> dict[str, Any]:
    record: dict[str, Any] = {
        "source": page.source,
        "status": page_status(page),
        "message": page.message,
        "sha256": page.sha256,
    }
    if page.duplicate_of is not None:
        record["duplicate_of"] = page.duplicate_of
        return record
    if page.replaced_by is not None:
        record["replaced_by"] = page.replaced_by
        return record
    if not page.graded:
        return record
    student = page.student
    record.update(
        {
            "pdf_page": page.pdf_page,
            "variant": page.variant,
            "page_number": page.page_number,
            "student": {"student_id": student.student_id, "name": student.name}
            if student
            else None,
            "identity_source": page.identity_source,
            "identity_review": page.identity_review,
            "student_number_read": page.student_number_read,
            "image_path": page.image_path,
            "capture": {
                "px_per_mm": page.px_per_mm,
                "blur_mm": page.blur_mm,
                "review_threshold": page.review_threshold,
            },
            "fields": [field_record(f) for f in page.fields],
        }
    )
    return record


def summary(results: ClassResults, sheets: list[StudentSheet]) -> dict[str, Any]:
    errors = Counter(p.status for p in results.pages if not p.graded and p.counts)
    graded = results.graded_pages()
    return {
        "students": sum(1 for s in sheets if s.identified and s.pages),
        "roster": len(results.roster),
        "roster_without_pages": sum(1 for s in sheets if s.in_roster and not s.pages),
        "unidentified": sum(1 for s in sheets if not s.identified),
        "pages": len(results.pages),
        "graded": len(graded),
        "duplicates": sum(1 for p in results.pages if p.duplicate_of is not None),
        "replaced": sum(1 for p in results.pages if p.replaced_by is not None),
        "errors": dict(sorted(errors.items())),
        "fields": sum(len(p.fields) for p in graded),
        "review": len(results.review_queue()),
        "max_points": max_points(results),
    }


def student_record(sheet: StudentSheet, maximum: float, exercise_ids: list[str]) -> dict[str, Any]:
    return {
        "key": sheet.key,
        "student_id": sheet.student_id or None,
        "name": sheet.name if sheet.identified else None,
        "in_roster": sheet.in_roster,
        "pages": [p.source for p in sheet.pages],
        "exercises": {e: sheet.exercise_points(e) for e in exercise_ids},
        "total": sheet.total,
        "max": maximum,
        "percent": percent(sheet.total, maximum),
        "provisional": sheet.provisional,
        "fields_in_review": sheet.review_count,
        "notes": sheet.notes(exercise_ids),
    }


def results_document(results: ClassResults, generated: datetime) -> dict[str, Any]:
    sheets = build_sheets(results)
    maximum = max_points(results)
    exercise_ids = [e.exercise_id for e in results.exercises]
    return {
        "schema": RESULTS_SCHEMA,
        "worksheet_id": results.worksheet_id,
        "title": results.title,
        "generated": generated.isoformat(timespec="seconds"),
        "summary": summary(results, sheets),
        "exercises": [
            {"id": e.exercise_id, "title": e.title, "points": e.points} for e in results.exercises
        ],
        "students": [student_record(s, maximum, exercise_ids) for s in sheets],
        "pages": [page_record(p) for p in results.pages],
    }


def write_results_json(results: ClassResults, path: Path, generated: datetime) -> Path:
    document = results_document(results, generated)
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    return atomic_write_text(path, text)
