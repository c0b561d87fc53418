"""Rows to results and back: the store keeps exactly what grader.results describes."""

from __future__ import annotations

from typing import Any, cast

from grader.results import FieldResult, PageResult, StudentRef, Verdict
from worker.store.models import FieldReading, Page


def page_row(page: PageResult) -> Page:
    """A new pages row (ids, upload and history links are set by the caller)."""
    student = page.student
    row = Page(
        source=page.source,
        sha256=page.sha256,
        status=page.status,
        message=page.message,
        variant=page.variant,
        page_number=page.page_number,
        pdf_page=page.pdf_page,
        student_id=student.student_id if student else None,
        student_name=student.name if student else None,
        identity_source=page.identity_source,
        identity_review=page.identity_review,
        student_number_read=page.student_number_read,
        image_path=page.image_path,
        px_per_mm=page.px_per_mm,
        blur_mm=page.blur_mm,
        review_threshold=page.review_threshold,
    )
    row.fields = [field_row(f, ordinal) for ordinal, f in enumerate(page.fields)]
    return row


def field_row(result: FieldResult, ordinal: int) -> FieldReading:
    row = FieldReading(ordinal=ordinal, field_id=result.field_id)
    update_field_row(row, result)
    return row


def update_field_row(row: FieldReading, result: FieldResult) -> None:
    """Copy everything but the field id (which names the row) from ``result``."""
    row.exercise_id = result.exercise_id
    row.label = result.label
    row.read = result.read
    row.confidence = float(result.confidence)
    row.alternatives = [[text, float(p)] for text, p in result.alternatives]
    row.expected = result.expected
    row.expected_used = result.expected_used
    row.verdict = result.verdict
    row.points = float(result.points)
    row.max_points = float(result.max_points)
    row.carried_forward = result.carried_forward
    row.mistake = result.mistake
    row.reason = result.reason
    row.reading_status = result.reading_status
    row.bbox_mm = [float(v) for v in result.bbox_mm]
    row.crop_path = result.crop_path
    row.overridden = result.overridden
    row.reader_unsure = result.reader_unsure


def field_result(row: FieldReading) -> FieldResult:
    x, y, w, h = (float(v) for v in row.bbox_mm)
    return FieldResult(
        field_id=row.field_id,
        exercise_id=row.exercise_id,
        label=row.label,
        read=row.read,
        confidence=row.confidence,
        alternatives=[(str(text), float(p)) for text, p in row.alternatives],
        expected=row.expected,
        expected_used=row.expected_used,
        verdict=cast(Verdict, row.verdict),
        points=row.points,
        max_points=row.max_points,
        carried_forward=row.carried_forward,
        mistake=row.mistake,
        reason=row.reason,
        reading_status=row.reading_status,
        bbox_mm=(x, y, w, h),
        crop_path=row.crop_path,
        overridden=row.overridden,
        reader_unsure=row.reader_unsure,
    )


def page_result(
    row: Page, duplicate_source: str | None = None, replacing_source: str | None = None
) -> PageResult:
    """The PageResult of a row; ``duplicate_of`` names the earlier page's source, if any, and
    ``replaced_by`` the later photo's that took its place."""
    student = None
    if row.student_id is not None:
        student = StudentRef(student_id=row.student_id, name=row.student_name or "")
    return PageResult(
        source=row.source,
        status=row.status,
        message=row.message,
        sha256=row.sha256,
        pdf_page=row.pdf_page,
        variant=row.variant,
        page_number=row.page_number,
        student=student,
        identity_source=cast(Any, row.identity_source),
        identity_review=row.identity_review,
        student_number_read=row.student_number_read,
        fields=[field_result(f) for f in row.fields],
        image_path=row.image_path,
        duplicate_of=duplicate_source,
        replaced_by=replacing_source,
        px_per_mm=row.px_per_mm,
        blur_mm=row.blur_mm,
        review_threshold=row.review_threshold,
    )


def field_state(row: FieldReading) -> dict[str, Any]:
    """What a review records of a field, before and after a decision."""
    return {
        "field_id": row.field_id,
        "read": row.read,
        "confidence": row.confidence,
        "verdict": row.verdict,
        "points": row.points,
        "expected_used": row.expected_used,
        "carried_forward": row.carried_forward,
        "overridden": row.overridden,
    }
