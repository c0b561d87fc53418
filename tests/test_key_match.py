"""The key-match calibration's bookkeeping (bench/key_match.py), without simulating a class."""

from __future__ import annotations

from typing import Any

from bench.key_match import Tally, stored_readings, within_target


def stored_field(field_id: str, confidence: float, unsure: bool = False,
                 reason: str = "") -> dict[str, Any]:
    return {"id": field_id, "read": "7", "reading_status": "number", "confidence": confidence,
            "alternatives": [{"read": "", "confidence": 0.01}], "reader_unsure": unsure,
            "reason": reason}


def test_readings_keep_the_readers_doubts_and_page_doubts_keep_their_reason() -> None:
    # Grading doubted "b" at its page's threshold; "e", as sure, was on a sharper page.
    page = {"fields": [
        stored_field("a", 0.99), stored_field("b", 0.97, True, "reader unsure (0.97)"),
        stored_field("c", 0.999, True, "photo too blurred to read safely"),
        stored_field("d", 0.999, True, "reader unsure (0.99)"),
        stored_field("e", 0.97),
    ]}
    readings = stored_readings(page)
    assert not readings["a"].needs_review and readings["b"].needs_review
    assert not readings["e"].needs_review
    assert readings["c"].needs_review and readings["c"].review_reason.startswith("photo")
    assert readings["d"].needs_review and readings["d"].review_reason == ""
    assert readings["a"].alternatives == [(None, 0.01)]


def test_credited_verdicts_must_be_wrong_at_most_one_time_in_500() -> None:
    assert within_target(Tally(fields=2000, credited=1000, credited_wrong=2))
    assert not within_target(Tally(fields=2000, credited=1000, credited_wrong=3))
    assert within_target(Tally(fields=2000))
    total = Tally(fields=10, review=2)
    total.add(Tally(fields=5, review=1, credited=3, credited_wrong=1, incorrect=2,
                    incorrect_wrong=1))
    assert (total.fields, total.review, total.credited, total.credited_wrong) == (15, 3, 3, 1)
    assert (total.incorrect, total.incorrect_wrong) == (2, 1)
