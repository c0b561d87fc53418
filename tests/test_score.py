"""Scoring: spellings, tolerances, carry-forward through the solver, and the review rules."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from grader.score import (
    KeptReading,
    PageContext,
    TeacherReading,
    follows,
    mistake_tag,
    only_the_point_differs,
    parse_number,
    regrade_page,
    score_page,
)
from worksheets.publish import publish
from worksheets.spec import parse_spec


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    spec = parse_spec({
        "title": "Scoring",
        "seed": 3,
        "exercises": [
            {"family": "linear_relu", "params": {"inputs": 2, "outputs": 2}},
            {"family": "softmax", "params": {"length": 3}},
        ],
    })
    out = tmp_path_factory.mktemp("key")
    printed = publish(spec, out, copies=1)
    return json.loads(printed.key_json.read_text())


def reading(text: str | None, confidence: float = 0.99, alternatives=(), review=False,
            status: str | None = None) -> TeacherReading:
    return TeacherReading(text, status or ("number" if text is not None else "blank"),
                          confidence, tuple(alternatives), review)


def page_and_context(key: dict[str, Any]) -> tuple[dict[str, Any], PageContext]:
    page = key["pages"][0]
    return page, PageContext.from_key(key, page)


def wrong_positive_z1(page: dict[str, Any]) -> int:
    """A wrong z1 whose ReLU also differs from the right h1 (so carrying it matters)."""
    z1 = next(f for f in page["fields"] if f["id"] == "q1.z1")
    return abs(int(z1["expected"])) + 5


def all_correct(page: dict[str, Any]) -> dict[str, TeacherReading]:
    return {f["id"]: reading(f["expected"]) for f in page["fields"]}


@pytest.mark.parametrize(("text", "value"), [
    ("3", "3"), ("+3", "3"), ("-0", "0"), (".5", "0.5"), ("0.50", "0.5"), ("-12", "-12"),
    (" 7 ", "7"), ("3.", "3"), ("1,5", "1.5"),
])
def test_equivalent_spellings(text: str, value: str) -> None:
    parsed = parse_number(text)
    assert parsed is not None and parsed == Decimal(value)


@pytest.mark.parametrize("text", ["", "-", ".", "1-2", "--3", "1.2.3", "abc", None])
def test_non_numbers(text: str | None) -> None:
    assert parse_number(text) is None


def test_every_right_answer_is_correct_and_gets_full_points(key) -> None:
    page, context = page_and_context(key)
    results = score_page(context, all_correct(page))
    assert all(r.verdict == "correct" for r in results)
    assert sum(r.points for r in results) == pytest.approx(sum(f["points"] for f in page["fields"]))


def test_error_is_carried_forward_through_the_solver(key) -> None:
    page, context = page_and_context(key)
    readings = all_correct(page)
    h1 = next(f for f in page["fields"] if f["id"] == "q1.h1")
    wrong_z1 = wrong_positive_z1(page)
    readings["q1.z1"] = reading(str(wrong_z1))
    readings["q1.h1"] = reading(str(max(0, wrong_z1)))  # ReLU of the student's own z1
    results = {r.field_id: r for r in score_page(context, readings)}
    assert results["q1.z1"].verdict == "incorrect"
    assert results["q1.h1"].verdict == "correct" and results["q1.h1"].carried_forward
    assert results["q1.h1"].expected_used == str(max(0, wrong_z1))
    assert results["q1.h1"].expected == h1["expected"]
    assert "follow-through" in results["q1.h1"].reason


def test_carry_forward_can_be_switched_off(key) -> None:
    page, context = page_and_context(key)
    context.carry_forward = False
    readings = all_correct(page)
    wrong = wrong_positive_z1(page)
    readings["q1.z1"] = reading(str(wrong))
    readings["q1.h1"] = reading(str(max(0, wrong)))
    results = {r.field_id: r for r in score_page(context, readings)}
    assert results["q1.h1"].verdict == "incorrect"


def test_unsure_reading_goes_to_review_never_to_a_grade(key) -> None:
    page, context = page_and_context(key)
    readings = all_correct(page)
    readings["q1.z1"] = reading("8", confidence=0.4, review=True)
    results = {r.field_id: r for r in score_page(context, readings)}
    assert results["q1.z1"].verdict == "review" and results["q1.z1"].points == 0


def test_wrong_reading_with_the_answer_among_alternatives_goes_to_review(key) -> None:
    page, context = page_and_context(key)
    readings = all_correct(page)
    field = page["fields"][0]
    wrong = str(int(field["expected"]) + 3)
    readings[field["id"]] = reading(wrong, 0.97, [(field["expected"], 0.03)])
    result = score_page(context, readings)[0]
    assert result.verdict == "review" and "could also be read" in result.reason
    readings[field["id"]] = reading(wrong, 0.999, [(field["expected"], 0.0005)])
    assert score_page(context, readings)[0].verdict == "incorrect"


def test_a_misread_of_the_key_answer_goes_to_review_where_follow_through_expects_another(
        key) -> None:
    # The student's z1 is wrong, so h1 has a follow-through value, but h1 is the key's answer:
    # right either way.  It was misread, and the key's answer is among the alternatives.
    page, context = page_and_context(key)
    h1 = next(f for f in page["fields"] if f["id"] == "q1.h1")
    wrong = wrong_positive_z1(page)
    misread = str(int(h1["expected"]) + 40)
    readings = {**all_correct(page), "q1.z1": reading(str(wrong)),
                "q1.h1": reading(misread, 0.98, [(h1["expected"], 0.01)])}
    result = {r.field_id: r for r in score_page(context, readings)}["q1.h1"]
    assert result.verdict == "review"
    assert result.reason == f"could also be read as '{h1['expected']}' (0.010)"


def test_a_reading_that_misses_only_the_point_goes_to_review(key) -> None:
    page, context = page_and_context(key)
    readings = all_correct(page)
    field = next(f for f in page["fields"] if "." in f["expected"].lstrip("-0."))
    without_point = field["expected"].replace(".", "")
    readings[field["id"]] = reading(without_point, 0.999)
    result = next(r for r in score_page(context, readings) if r.field_id == field["id"])
    assert result.verdict == "review" and "decimal point" in result.reason


@pytest.mark.parametrize(
    ("read", "expected", "differs"),
    [("174", "1.74", True), ("17.4", "1.74", True), ("26", "0.26", True), ("-15", "-1.5", True),
     ("1.74", "1.74", False), ("15", "-1.5", False), ("175", "1.74", False), ("0", "0.0", False)],
)
def test_only_the_point_differs(read: str, expected: str, differs: bool) -> None:
    assert only_the_point_differs(read, expected) is differs


def test_blank_and_crossed_out_score_zero(key) -> None:
    page, context = page_and_context(key)
    readings = all_correct(page)
    readings[page["fields"][0]["id"]] = reading(None)
    readings[page["fields"][1]["id"]] = reading(None, status="crossed_out")
    results = score_page(context, readings)
    assert [r.verdict for r in results[:2]] == ["blank", "blank"]
    assert results[1].reason == "crossed_out"


def test_softmax_tolerance_accepts_rounding_drift(key) -> None:
    page = next(p for p in key["pages"] if any(f["id"] == "q2.p1" for f in p["fields"]))
    context = PageContext.from_key(key, page)
    readings = all_correct(page)
    p1 = next(f for f in page["fields"] if f["id"] == "q2.p1")
    readings["q2.p1"] = reading(f"{float(p1['expected']) + 0.01:.2f}")
    results = {r.field_id: r for r in score_page(context, readings)}
    assert results["q2.p1"].verdict == "correct"
    readings["q2.p1"] = reading(f"{float(p1['expected']) + 0.05:.2f}")
    results = {r.field_id: r for r in score_page(context, readings)}
    assert results["q2.p1"].verdict == "incorrect"


def test_teacher_override_regrades_dependants(key) -> None:
    page, context = page_and_context(key)
    readings = all_correct(page)
    wrong = wrong_positive_z1(page)
    readings["q1.z1"] = reading(str(wrong), confidence=0.3, review=True)
    readings["q1.h1"] = reading(str(max(0, wrong)))
    first = {r.field_id: r for r in score_page(context, readings)}
    assert first["q1.z1"].verdict == "review"
    assert first["q1.h1"].verdict == "review"  # its follow-through rests on the doubtful z1
    again = regrade_page(context, list(first.values()), {"q1.z1": str(wrong)}, readings)
    regraded = {r.field_id: r for r in again}
    assert regraded["q1.z1"].verdict == "incorrect" and regraded["q1.z1"].overridden
    assert regraded["q1.h1"].verdict == "correct" and regraded["q1.h1"].carried_forward


def test_a_wrong_looking_answer_after_a_doubted_key_value_goes_to_review(key) -> None:
    # The reader doubts z1 but its best reading is the key's value (or nothing), so nothing
    # is carried; another reading it lists would make h1 follow-through.
    page, context = page_and_context(key)
    z1 = next(f for f in page["fields"] if f["id"] == "q1.z1")
    wrong = wrong_positive_z1(page)
    could_be_wrong = [(str(wrong), 0.2), ("7.5", 0.1)]
    for doubted in (reading(z1["expected"], 0.6, could_be_wrong, review=True),
                    reading(None, 0.5, could_be_wrong, review=True)):
        readings = {**all_correct(page), "q1.z1": doubted, "q1.h1": reading(str(wrong))}
        results = {r.field_id: r for r in score_page(context, readings)}
        assert results["q1.h1"].verdict == "review"
        assert results["q1.h1"].reason == "depends on an earlier reading in review"
        context.carry_forward = False  # then z1 cannot change h1's verdict
        results = {r.field_id: r for r in score_page(context, readings)}
        assert results["q1.h1"].verdict == "incorrect"
        context.carry_forward = True
    # No reading the reader lists for z1 makes this h1 right: it is graded.
    unrelated = reading(z1["expected"], 0.6, [("7.5", 0.1)], review=True)
    readings = {**all_correct(page), "q1.z1": unrelated, "q1.h1": reading(str(wrong))}
    results = {r.field_id: r for r in score_page(context, readings)}
    assert results["q1.h1"].verdict == "incorrect"


def test_an_accepted_reading_whose_other_reading_the_next_answer_follows_goes_to_review(
        key) -> None:
    # The student wrote a wrong z1 and its ReLU as h1; z1 was misread, but the reader listed
    # what was written.  Marking h1 wrong would rest on that misread.
    page, context = page_and_context(key)
    wrong = wrong_positive_z1(page)
    misread = str(wrong + 2)
    readings = {**all_correct(page), "q1.h1": reading(str(wrong)),
                "q1.z1": reading(misread, 0.97, [(str(wrong), 0.02), ("7.5", 0.01)])}
    results = {r.field_id: r for r in score_page(context, readings)}
    assert results["q1.z1"].verdict == "review"
    why = f"another reading, '{wrong}' (0.020), would make q1.h1 follow-through"
    assert results["q1.z1"].reason == why
    assert results["q1.h1"].verdict == "review"
    assert results["q1.h1"].reason == "depends on an earlier reading in review"
    # The teacher confirms what z1 reads: h1 is then wrong, and graded so.
    again = {r.field_id: r for r in regrade_page(context, list(results.values()),
                                                 {"q1.z1": misread}, readings)}
    assert again["q1.z1"].verdict == "incorrect" and again["q1.h1"].verdict == "incorrect"
    # Or corrects it: h1 is follow-through.
    again = {r.field_id: r for r in regrade_page(context, list(results.values()),
                                                 {"q1.z1": str(wrong)}, readings)}
    assert again["q1.h1"].verdict == "correct" and again["q1.h1"].carried_forward
    # Another reading under 1 in 500, or none that h1 follows from: graded as read.
    for alternatives in ([(str(wrong), 0.001)], [("7.5", 0.02)]):
        readings["q1.z1"] = reading(misread, 0.99, alternatives)
        results = {r.field_id: r for r in score_page(context, readings)}
        assert results["q1.z1"].verdict == "incorrect" and results["q1.h1"].verdict == "incorrect"
    context.carry_forward = False  # without follow-through z1's reading cannot change h1
    readings["q1.z1"] = reading(misread, 0.97, [(str(wrong), 0.02)])
    results = {r.field_id: r for r in score_page(context, readings)}
    assert results["q1.z1"].verdict == "incorrect"
    context.carry_forward = True


def test_an_answer_follows_a_carried_value_exactly_only_when_it_is_that_value() -> None:
    field = {"tolerance": {"kind": "absolute", "value": 0.01}, "decimals": 2}
    assert follows(field, Decimal("0.01"), 0.0008, exactly=False)  # within the tolerance
    assert not follows(field, Decimal("0.01"), 0.0008, exactly=True)  # spelled "0.00"
    assert follows(field, Decimal("0.25"), 0.2549, exactly=True)


@pytest.mark.parametrize(("answer", "expected", "decimals", "tag"), [
    ("-7", 7.0, 0, "sign"), ("0.34", 0.33, 2, "rounding"), ("21", 12.0, 0, "digit_swap"),
    ("120", 12.0, 0, "place_value"), ("13", 12.0, 0, "off_by_one"), ("40", 12.0, 0, None),
])
def test_mistake_tags(answer: str, expected: float, decimals: int, tag: str | None) -> None:
    value = parse_number(answer)
    assert value is not None
    assert mistake_tag(value, expected, decimals) == tag


def test_example_spec_key_is_scorable(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "linear-layer.yaml"
    from worksheets.spec import load_spec

    printed = publish(load_spec(example), tmp_path, copies=2)
    key = json.loads(printed.key_json.read_text())
    for page in key["pages"]:
        context = PageContext.from_key(key, page)
        assert all(r.verdict == "correct" for r in score_page(context, all_correct(page)))


def test_acceptable_alternatives_add_up(key) -> None:
    page, context = page_and_context(key)
    readings = all_correct(page)
    field = page["fields"][0]
    wrong = str(int(field["expected"]) + 3)
    spelled = [(field["expected"], 0.0012), (field["expected"] + ".0", 0.0012)]
    readings[field["id"]] = reading(wrong, 0.99, spelled)
    assert score_page(context, readings)[0].verdict == "review"


def test_regrading_keeps_unsure_readings_in_review_with_their_crops(key) -> None:
    page, context = page_and_context(key)
    readings = all_correct(page)
    first, second = page["fields"][0]["id"], page["fields"][1]["id"]
    readings[first] = reading("8", confidence=0.4, review=True)
    stored = score_page(context, readings)
    for result in stored:
        result.crop_path = f"/crops/{result.field_id}.png"
    again = {r.field_id: r for r in regrade_page(context, stored, {second: "1"})}
    assert again[first].verdict == "review"
    # A decision on one field re-grades the page; the others still wait with their crops.
    assert all(again[r.field_id].crop_path == r.crop_path for r in stored)


def test_a_page_wide_doubt_keeps_its_reason_through_regrading(key) -> None:
    page, context = page_and_context(key)
    readings: dict[str, Any] = all_correct(page)
    first, second = page["fields"][0]["id"], page["fields"][1]["id"]
    why = "photo too blurred to read safely"
    readings[first] = KeptReading(page["fields"][0]["expected"], "number", 0.999, (), True, why)
    stored = score_page(context, readings)
    assert stored[0].verdict == "review" and stored[0].reason == why
    again = {r.field_id: r for r in regrade_page(context, stored, {second: "1"})}
    assert again[first].verdict == "review" and again[first].reason == why


def credited_context(key: dict[str, Any], threshold: float | None = 0.5,
                     ) -> tuple[dict[str, Any], PageContext]:
    page = key["pages"][0]
    crediting = {**key, "credit_expected_answers": True}
    return page, PageContext.from_key(crediting, page, key_match_threshold=threshold)


def test_a_doubted_reading_of_the_key_answer_is_credited_from_the_key_match_threshold(
        key) -> None:
    page, context = credited_context(key)
    field = page["fields"][0]
    readings = all_correct(page)
    readings[field["id"]] = reading(field["expected"], confidence=0.6, review=True)
    credited = score_page(context, readings)[0]
    assert credited.verdict == "correct" and credited.points == credited.max_points
    assert credited.reader_unsure and "credited as the expected answer" in credited.reason
    readings[field["id"]] = reading(field["expected"], confidence=0.4, review=True)
    assert score_page(context, readings)[0].verdict == "review"
    readings[field["id"]] = reading(field["expected"], confidence=0.6, review=True)
    _, uncalibrated = credited_context(key, None)
    assert score_page(uncalibrated, readings)[0].verdict == "review"
    not_opted_in = PageContext.from_key(key, page, key_match_threshold=0.5)
    assert not key.get("credit_expected_answers")
    assert score_page(not_opted_in, readings)[0].verdict == "review"


def test_a_doubted_wrong_answer_still_goes_to_review(key) -> None:
    page, context = credited_context(key)
    field = page["fields"][0]
    readings = all_correct(page)
    readings[field["id"]] = reading(str(int(field["expected"]) + 3), confidence=0.9, review=True)
    result = score_page(context, readings)[0]
    assert result.verdict == "review" and result.reason.startswith("reader unsure")
    assert result.expected_used == field["expected"] and result.mistake is None


def test_doubted_follow_through_is_credited_only_from_answers_not_in_doubt(key) -> None:
    page, context = credited_context(key)
    readings = all_correct(page)
    wrong_z1 = wrong_positive_z1(page)
    readings["q1.z1"] = reading(str(wrong_z1))
    readings["q1.h1"] = reading(str(max(0, wrong_z1)), confidence=0.8, review=True)
    results = {r.field_id: r for r in score_page(context, readings)}
    assert results["q1.h1"].verdict == "correct" and results["q1.h1"].carried_forward
    assert results["q1.h1"].reason.startswith("follow-through")
    assert "credited as the expected answer" in results["q1.h1"].reason
    readings["q1.z1"] = reading(str(wrong_z1), confidence=0.8, review=True)
    results = {r.field_id: r for r in score_page(context, readings)}
    assert results["q1.z1"].verdict == "review"
    assert results["q1.h1"].verdict == "review"


def test_a_page_wide_doubt_or_an_unusual_spelling_is_never_credited(key) -> None:
    page, context = credited_context(key)
    field = page["fields"][0]
    expected = field["expected"]
    readings: dict[str, Any] = all_correct(page)
    why = "photo too blurred to read safely"
    readings[field["id"]] = KeptReading(expected, "number", 0.999, (), True, why)
    assert score_page(context, readings)[0].verdict == "review"
    padded = "-0" + expected[1:] if expected.startswith("-") else "0" + expected
    readings[field["id"]] = reading(padded, confidence=0.99, review=True)
    assert score_page(context, readings)[0].verdict == "review"


def test_regrading_keeps_a_credited_reading_credited(key) -> None:
    page, context = credited_context(key)
    readings = all_correct(page)
    first, second = page["fields"][0], page["fields"][1]["id"]
    readings[first["id"]] = reading(first["expected"], confidence=0.7, review=True)
    stored = score_page(context, readings)
    again = {r.field_id: r for r in regrade_page(context, stored, {second: "1"})}
    assert again[first["id"]].verdict == "correct" and again[first["id"]].reader_unsure
