"""The grading benchmark's bookkeeping of identities (bench/grade.py), without a class."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.grade import check_identity
from grader.simulate_class import PageTruth


def numbered_page(student_id: str | None, review: bool) -> dict[str, Any]:
    student = {"student_id": student_id, "name": "x"} if student_id else None
    return {"variant": 3, "page_number": 1, "identity_source": "student_number",
            "identity_review": review, "student": student, "student_number_read": "240777"}


def test_identities_are_tallied_against_the_truth() -> None:
    truth = PageTruth("IMG_1006.jpg", 3, 1, "240777", {"student_number.1": "2", "q1": "5"})
    tally: Counter[str] = Counter()
    wrong: list[str] = []
    check_identity(numbered_page("240777", False), truth, tally, wrong)
    check_identity(numbered_page("240101", False), truth, tally, wrong)  # matched wrongly
    check_identity(numbered_page("240101", True), truth, tally, wrong)  # a person decides
    # A later page of the copy holds no number: it takes page 1's student, not counted again.
    later = PageTruth("IMG_1007.jpg", 3, 2, "240777", {"q2": "7"})
    check_identity(numbered_page("240101", False), later, tally, wrong)
    assert (tally["numbered_pages"], tally["identity_review"], tally["identity_wrong"]) == (
        3, 1, 1)
    assert len(wrong) == 1 and "matched '240101'" in wrong[0] and "'240777'" in wrong[0]
