"""One student's graded work gathered from a :class:`ClassResults`, shared by every output.

A *sheet* is what one student handed in: all their graded pages, their points per exercise and
their total.  Pages whose student could not be identified are grouped into sheets of their own
(``unidentified-<n>``), one per printed variant, because the pages of one printed copy belong to
one student even when nobody knows who that is yet.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from grader.results import ClassResults, FieldResult, PageResult, StudentRef


@dataclass
class StudentSheet:
    key: str
    student: StudentRef | None
    in_roster: bool
    pages: list[PageResult] = field(default_factory=list)
    # Second graded copies of a page this student already has; not counted, only reported.
    extra_pages: list[PageResult] = field(default_factory=list)

    @property
    def identified(self) -> bool:
        return self.student is not None

    @property
    def student_id(self) -> str:
        return self.student.student_id if self.student else ""

    @property
    def name(self) -> str:
        return self.student.name if self.student else self.key

    @property
    def fields(self) -> list[FieldResult]:
        return [f for page in self.pages for f in page.fields]

    @property
    def review_count(self) -> int:
        return sum(1 for f in self.fields if f.verdict == "review")

    @property
    def identity_review(self) -> bool:
        return any(page.identity_review for page in self.pages)

    @property
    def provisional(self) -> bool:
        """True while a person still has to decide something that can change the total."""
        return self.review_count > 0 or self.identity_review

    @property
    def total(self) -> float | None:
        if not self.pages:
            return None
        return round(sum(f.points for f in self.fields), 4)

    def exercise_points(self, exercise_id: str) -> float | None:
        """Points on one exercise; None when none of its fields were on a graded page."""
        points = [f.points for f in self.fields if f.exercise_id == exercise_id]
        return round(sum(points), 4) if points else None

    def notes(self, exercise_ids: list[str]) -> list[str]:
        notes: list[str] = []
        if not self.pages:
            return ["no pages"]
        if self.review_count:
            plural = "s" if self.review_count != 1 else ""
            notes.append(f"{self.review_count} field{plural} in review")
        if self.identity_review:
            notes.append("student identity needs checking")
        missing = [e for e in exercise_ids if self.exercise_points(e) is None]
        if missing:
            notes.append("not found: " + ", ".join(missing))
        notes.extend(f"page {p.page_number} handed in twice: {p.source} not counted"
                     for p in self.extra_pages)
        return notes


def max_points(results: ClassResults) -> float:
    """What the worksheet is worth, from the key's exercises (fields as a fallback)."""
    if results.exercises:
        return round(sum(e.points for e in results.exercises), 4)
    widest = max((sheet_fields_max(p) for p in results.graded_pages()), default=0.0)
    return widest


def sheet_fields_max(page: PageResult) -> float:
    return round(sum(f.max_points for f in page.fields), 4)


def percent(total: float | None, maximum: float) -> float | None:
    if total is None or maximum <= 0:
        return None
    return round(100.0 * total / maximum, 1)


def build_sheets(results: ClassResults) -> list[StudentSheet]:
    """Sheets in a stable order: the roster's order, other students by id, then unidentified."""
    roster_ids = [s.student_id for s in results.roster]
    sheets: dict[str, StudentSheet] = {
        s.student_id: StudentSheet(s.student_id, s, True) for s in results.roster
    }
    unidentified: dict[str, StudentSheet] = {}
    for page in results.graded_pages():
        if page.student is not None:
            sheet = sheets.setdefault(
                page.student.student_id, StudentSheet(page.student.student_id, page.student, False)
            )
        else:
            group = f"v{page.variant}" if page.variant is not None else f"s{page.source}"
            if group not in unidentified:
                key = f"unidentified-{len(unidentified) + 1}"
                unidentified[group] = StudentSheet(key, None, False)
            sheet = unidentified[group]
        _add_page(sheet, page)
    others = sorted(k for k in sheets if k not in set(roster_ids))
    ordered = [sheets[k] for k in roster_ids] + [sheets[k] for k in others]
    for sheet in ordered + list(unidentified.values()):
        sheet.pages.sort(key=_page_order)
    return ordered + list(unidentified.values())


def _add_page(sheet: StudentSheet, page: PageResult) -> None:
    if page.pdf_page is not None and any(p.pdf_page == page.pdf_page for p in sheet.pages):
        sheet.extra_pages.append(page)
    else:
        sheet.pages.append(page)


def _page_order(page: PageResult) -> tuple[int, str]:
    number = page.page_number if page.page_number is not None else 10**6
    return number, page.source


@dataclass
class ScoreStats:
    count: int
    mean: float | None
    median: float | None
    minimum: float | None
    maximum: float | None


def score_stats(values: list[float]) -> ScoreStats:
    if not values:
        return ScoreStats(0, None, None, None, None)
    return ScoreStats(
        count=len(values),
        mean=round(statistics.fmean(values), 2),
        median=round(statistics.median(values), 2),
        minimum=min(values),
        maximum=max(values),
    )
