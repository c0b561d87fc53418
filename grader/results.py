"""The graded outcome of a batch, as plain data: what scoring produces and every output reads.

results.json, gradebook.csv, fields.csv, annotated PDFs and report.html are all views of a
:class:`ClassResults`.  The store saves and reloads these objects; nothing here touches files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["correct", "incorrect", "blank", "review"]
RESULTS_SCHEMA = "papergrade.results/1"


@dataclass
class FieldResult:
    """One answer box of one graded page.

    ``expected`` is the key's answer; ``expected_used`` is what the reading was compared with,
    which differs when error carried forward recomputed it from the student's earlier answers.
    ``read`` is None for a blank box.  ``reader_unsure``: the reader itself was below its
    confidence threshold (kept so re-grading knows it without the reader).  ``points`` counts
    only for auto-decided or reviewed verdicts; a field in ``review`` scores 0 until someone
    decides.
    """

    field_id: str
    exercise_id: str
    label: str
    read: str | None
    confidence: float
    alternatives: list[tuple[str, float]]
    expected: str
    expected_used: str
    verdict: Verdict
    points: float
    max_points: float
    carried_forward: bool = False
    mistake: str | None = None
    reason: str = ""
    reading_status: str = "number"
    bbox_mm: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    crop_path: str | None = None
    overridden: bool = False
    reader_unsure: bool = False


@dataclass
class StudentRef:
    student_id: str
    name: str


@dataclass
class PageResult:
    """One input page: graded (``status == "graded"``) or an error code with a message.

    A graded page also records its photo's resolution at the boxes (``px_per_mm``), its blur
    (``blur_mm``, the 10-90 % rise of the markers' edges) and the confidence its readings
    needed to be graded unseen (``review_threshold``; None from a stand-in reader).
    """

    source: str
    status: str
    message: str = ""
    sha256: str = ""
    pdf_page: int | None = None
    variant: int | None = None
    page_number: int | None = None
    student: StudentRef | None = None
    identity_source: Literal["qr", "student_number", "unknown"] = "unknown"
    identity_review: bool = False
    student_number_read: str | None = None
    fields: list[FieldResult] = field(default_factory=list)
    image_path: str | None = None
    duplicate_of: str | None = None
    # The source of the later photo of the same page that took this one's place.
    replaced_by: str | None = None
    # What the photo was measured as, and the reader threshold that followed from it.
    px_per_mm: float | None = None
    blur_mm: float | None = None
    review_threshold: float | None = None

    @property
    def graded(self) -> bool:
        return self.status == "graded"

    @property
    def counts(self) -> bool:
        """Whether the page counts now: not the same content as an earlier upload, and not
        replaced by a later photo of the same page (both stay listed, with the page they
        defer to)."""
        return self.duplicate_of is None and self.replaced_by is None


@dataclass
class ExerciseInfo:
    exercise_id: str
    title: str
    points: float


@dataclass
class ClassResults:
    """Everything graded for one worksheet (one key.json)."""

    worksheet_id: str
    title: str
    exercises: list[ExerciseInfo]
    pages: list[PageResult]
    roster: list[StudentRef] = field(default_factory=list)

    def graded_pages(self) -> list[PageResult]:
        return [p for p in self.pages if p.graded and p.counts]

    def by_student(self) -> dict[str, list[PageResult]]:
        """Graded pages per student id (pages with no identified student are left out)."""
        grouped: dict[str, list[PageResult]] = {}
        for page in self.graded_pages():
            if page.student is not None:
                grouped.setdefault(page.student.student_id, []).append(page)
        return grouped

    def review_queue(self) -> list[tuple[PageResult, FieldResult]]:
        return [(p, f) for p in self.graded_pages() for f in p.fields if f.verdict == "review"]
