"""Verdicts: each reading against the key, with error carried forward and honest doubt.

Rules, in order, for one field:

1. The reader is unsure (``needs_review``) or wrote something that is not a number: ``review``.
   Only where the worksheet opts in (``credit_expected_answers``, off by default): a reading
   at a confidence of at least the reader's ``key_match_threshold`` that is exactly what
   rules 3-4 credit is ``correct`` instead (see :func:`may_confirm`).
2. Nothing written (blank, smudge, crossed out): ``blank``, no points.
3. The number matches the key's answer within the family's tolerance: ``correct``.
4. With carry-forward on, the expected value is recomputed by the family's reference solver from
   the student's own earlier answers; a match there is ``correct`` with follow-through credit.
5. It would be ``incorrect``, but an answer rules 3-4 would credit (the key's or the
   follow-through one) is among the reader's alternatives with probability >= 1/500, or
   differs from the reading only by the decimal point (the mark the reader most often
   misses): ``review`` (a misread must never become a silent wrong grade).
6. Otherwise ``incorrect``, with a mistake tag when the error has a recognisable shape.

A field whose carried-forward expectation rests on an earlier reading still in review is itself
sent to review when that doubt could change its verdict.  And rule 5 holds for the fields an
answer follows from: an accepted earlier reading goes to review when another reading of it, at
least 1/500 likely, would make a later ``incorrect`` answer exactly its follow-through value
(see :func:`misread_upstream`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from grader.read import unusual_spelling
from grader.results import FieldResult, Verdict
from worksheets.exercises.base import Tolerance, format_number
from worksheets.exercises.registry import get_family

# An "incorrect" verdict is wrong exactly when the student wrote an acceptable answer that was
# misread, which the reader puts at the probability of that alternative.  Auto-decided verdicts
# may be wrong at most 1 time in 500 (the reader's calibration target), so any acceptable
# alternative at least that likely sends the field to review instead.
PLAUSIBLE_ALTERNATIVE = 0.002
# How a field's reason begins when the reader's own doubt sent it to review.
READER_UNSURE = "reader unsure"
_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")


class ReadingLike(Protocol):
    """What scoring needs of a reading (grader.read.Reading satisfies it)."""

    @property
    def text(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def alternatives(self) -> Sequence[tuple[str | None, float]]: ...
    @property
    def needs_review(self) -> bool: ...


@dataclass(frozen=True)
class TeacherReading:
    """A value typed by a teacher (an override): certain by definition."""

    text: str | None
    status: str = "number"
    confidence: float = 1.0
    alternatives: Sequence[tuple[str | None, float]] = ()
    needs_review: bool = False


def parse_number(text: str | None) -> Decimal | None:
    """The number a student's string means: ``.5``, ``0.50``, ``-0`` and ``+3`` are fine."""
    if text is None:
        return None
    cleaned = text.strip().replace(",", ".").replace(" ", "")
    if not _NUMBER_RE.match(cleaned):
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return value + 0 if value else Decimal(0)  # normalises -0 to 0


def accepts(field: Mapping[str, Any], answer: Decimal, expected: float) -> bool:
    tolerance = Tolerance(field["tolerance"]["kind"], float(field["tolerance"]["value"]))
    return tolerance.accepts(float(answer), expected, int(field["decimals"]))


def follows(field: Mapping[str, Any], answer: Decimal, carried: float, exactly: bool) -> bool:
    """Whether ``answer`` is follow-through for the ``carried`` expectation: within the
    field's tolerance, or (``exactly``) the carried value itself at the field's decimals."""
    if exactly:
        return parse_number(format_number(carried, int(field["decimals"]))) == answer
    return accepts(field, answer, carried)


def _adjacent_swaps(digits: str) -> set[str]:
    return {digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:]
            for i in range(len(digits) - 1) if digits[i] != digits[i + 1]}


def only_the_point_differs(read: str, expected: str) -> bool:
    """Whether two spellings hold the same sign and digits, the point missing or moved.

    The decimal point is the smallest mark a student writes and the one the reader most
    often misses or imagines ("174" for "1.74"), so such an answer is never marked wrong
    without a look.
    """
    def digits(text: str) -> tuple[bool, str]:
        body = text.lstrip("+")
        return body.startswith("-"), body.lstrip("-").replace(".", "").lstrip("0")

    return read != expected and digits(read) == digits(expected) and digits(read)[1] != ""


def mistake_tag(answer: Decimal, expected: float, decimals: int) -> str | None:
    """A name for the shape of a wrong answer, for item analysis; None if none fits."""
    exp = Decimal(format_number(expected, decimals))
    if exp != 0 and answer == -exp:
        return "sign"
    unit = Decimal(1).scaleb(-decimals)
    if abs(answer - exp) <= unit and decimals > 0:
        return "rounding"
    a_digits, e_digits = str(abs(answer)).replace(".", ""), str(abs(exp)).replace(".", "")
    if (answer < 0) == (exp < 0) and a_digits in _adjacent_swaps(e_digits):
        return "digit_swap"
    if exp != 0 and answer != 0 and any(answer == exp * Decimal(10) ** k for k in (-2, -1, 1, 2)):
        return "place_value"
    if decimals == 0 and abs(answer - exp) == 1:
        return "off_by_one"
    return None


@dataclass
class PageContext:
    """The key's view of one page: its fields and its variant's exercises."""

    fields: list[dict[str, Any]]
    exercises: dict[str, dict[str, Any]]
    carry_forward: bool
    key_match_threshold: float | None = None

    @classmethod
    def from_key(cls, key: Mapping[str, Any], page: Mapping[str, Any],
                 key_match_threshold: float | None = None) -> PageContext:
        """The page's context; ``key_match_threshold`` (the reader's) applies only where the
        worksheet asks to credit expected answers (``credit_expected_answers``)."""
        variant = key["variants"][page["variant"]]
        exercises = {e["id"]: e for e in variant["exercises"]}
        credit = bool(key.get("credit_expected_answers", False))
        return cls(list(page["fields"]), exercises, bool(key.get("carry_forward", True)),
                   key_match_threshold if credit else None)


def ancestors(field_id: str, by_id: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every field this one is computed from, directly or through others."""
    seen: list[str] = []
    stack = list(by_id[field_id]["depends_on"]) if field_id in by_id else []
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.append(current)
            stack.extend(by_id[current]["depends_on"] if current in by_id else [])
    return seen


def carried_expectation(
    field: Mapping[str, Any],
    exercise: Mapping[str, Any],
    upstream: Sequence[str],
    student_values: Mapping[str, Decimal],
) -> float | None:
    """The field's answer recomputed from the student's answers to the ``upstream`` fields
    (its ancestors), or None if none of them differs from the key (nothing to carry)."""
    by_id = {f["id"]: f for f in exercise["fields"]}
    answered = [u_id for u_id in upstream if u_id in student_values]
    if all(accepts(by_id[u_id], student_values[u_id], by_id[u_id]["value"])
           for u_id in answered):
        return None
    overrides = {by_id[u_id]["name"]: float(student_values[u_id]) for u_id in answered}
    try:
        values = get_family(exercise["family"]).solve(exercise["givens"], overrides)
    except (ArithmeticError, ValueError):
        return None  # the student's numbers make the step undefined; grade against the key
    return values.get(field["name"])


def score_field(
    field: Mapping[str, Any],
    reading: ReadingLike | None,
    carried: float | None,
    doubtful_upstream: bool,
    key_match_threshold: float | None = None,
) -> FieldResult:
    result = FieldResult(
        field_id=field["id"], exercise_id=field.get("exercise", field["id"].split(".")[0]),
        label=field.get("label", field["id"]), read=None, confidence=0.0, alternatives=[],
        expected=field["expected"], expected_used=field["expected"], verdict="review",
        points=0.0, max_points=float(field["points"]),
        bbox_mm=tuple(field.get("bbox_mm", (0.0, 0.0, 0.0, 0.0))),
    )
    if reading is None:
        result.reason = "no crop was read for this box"
        return result
    result.read = reading.text
    result.reader_unsure = reading.needs_review
    result.confidence = float(reading.confidence)
    result.reading_status = reading.status
    result.alternatives = [(t or "", float(p)) for t, p in reading.alternatives]
    verdict, reason = decide(field, reading, carried, doubtful_upstream, result,
                             key_match_threshold)
    result.verdict, result.reason = verdict, reason
    if verdict == "correct":
        result.points = result.max_points
    return result


def decide(
    field: Mapping[str, Any],
    reading: ReadingLike,
    carried: float | None,
    doubtful_upstream: bool,
    result: FieldResult,
    key_match_threshold: float | None = None,
) -> tuple[Verdict, str]:
    if not reading.needs_review:
        return judge(field, reading, carried, doubtful_upstream, result)
    # Readings doubted for the whole page (a blurred photo) carry their own reason.
    reason = getattr(reading, "review_reason", "")
    unsure = reason or f"{READER_UNSURE} ({reading.confidence:.2f})"
    if reason or not may_confirm(reading, key_match_threshold):
        return "review", unsure
    verdict, why = judge(field, reading, carried, doubtful_upstream, result)
    # Exactly the expected answer: a tolerance allows for a student's rounding, but a doubted
    # reading that is merely close ("0.5" for "0.49") may have lost a character.
    if verdict == "correct" and parse_number(reading.text) == parse_number(result.expected_used):
        credited = f"credited as the expected answer (reader {reading.confidence:.2f})"
        return "correct", f"{why}; {credited}" if why else credited
    result.expected_used, result.carried_forward, result.mistake = field["expected"], False, None
    return "review", unsure


def may_confirm(reading: ReadingLike, key_match_threshold: float | None) -> bool:
    """Whether a reading the reader doubts may still be graded ``correct`` when it is exactly
    the answer expected of this student (the key's, or follow-through from answers that are
    not themselves in doubt).

    Such a verdict is wrong only if the student wrote a different number that the reader
    took for exactly that answer, which is far rarer than a misread in general: the reader's
    doubt is spread over every number the ink could be, and any of those other readings
    would be judged ``incorrect`` or sent to review, never silently credited.  The threshold
    is calibrated on simulated classes (``bench/key_match.py``); what it costs is measured
    there and in docs/benchmarks.md.  It is a worksheet's choice, off by default, because it
    grades readings the reader itself is unsure of.  Readings spelled as no student writes
    stay in review.
    """
    return (key_match_threshold is not None and reading.text is not None
            and reading.confidence >= key_match_threshold
            and not unusual_spelling(reading.text))


def judge(
    field: Mapping[str, Any],
    reading: ReadingLike,
    carried: float | None,
    doubtful_upstream: bool,
    result: FieldResult,
) -> tuple[Verdict, str]:
    """Rules 2-6 for a reading taken as written."""
    if reading.text is None:
        return "blank", reading.status if reading.status != "number" else "blank"
    answer = parse_number(reading.text)
    if answer is None:
        return "review", f"'{reading.text}' is not a number"
    expected = float(field["value"])
    if accepts(field, answer, expected):
        return "correct", ""
    if carried is not None:
        result.expected_used = format_number(carried, int(field["decimals"]))
        if accepts(field, answer, carried):
            result.carried_forward = True
            if doubtful_upstream:
                return "review", "follow-through rests on an earlier reading in review"
            return "correct", f"follow-through: {result.expected_used} from your earlier answers"
    # Also where nothing is carried but another reading of the doubted earlier field would
    # make this follow-through (see Upstream.could_carry_to).
    if doubtful_upstream:
        return "review", "depends on an earlier reading in review"
    # Rules 3-4 credit the key's answer and the follow-through one alike, so a misread of
    # either must not become a silent "incorrect".
    credited = [expected] if carried is None else [expected, carried]
    doubt = misread_of_credited(field, reading, credited)
    if doubt:
        return "review", doubt
    target = carried if carried is not None else expected
    result.mistake = mistake_tag(answer, target, int(field["decimals"]))
    return "incorrect", ""


def misread_of_credited(
    field: Mapping[str, Any], reading: ReadingLike, credited: Sequence[float]
) -> str:
    """Why ``reading`` could be a misread of an answer that would be ``credited`` (rule 5), or
    "" when it could not."""
    acceptable = [(text, p) for text, p in reading.alternatives
                  if (value := parse_number(text)) is not None
                  and any(accepts(field, value, target) for target in credited)]
    # Several spellings of the right answer ('.26', '0.26') are one way of being misread.
    if acceptable and sum(p for _, p in acceptable) >= PLAUSIBLE_ALTERNATIVE:
        text, probability = max(acceptable, key=lambda pair: pair[1])
        return f"could also be read as '{text}' ({probability:.3f})"
    for target in credited:
        spelled = format_number(target, int(field["decimals"]))
        if reading.text is not None and only_the_point_differs(reading.text, spelled):
            return f"only the decimal point differs from '{spelled}'"
    return ""


@dataclass(frozen=True)
class Upstream:
    """A field's earlier fields as read (``values``), with the readings of some of them
    (``readings``) whose alternatives could stand for what the student wrote."""

    exercise: Mapping[str, Any]
    ids: Sequence[str]
    values: Mapping[str, Decimal]
    readings: Mapping[str, ReadingLike | None]

    def reading_carrying_to(
        self, field: Mapping[str, Any], reading: ReadingLike | None, least: float = 0.0,
        exactly: bool = False,
    ) -> tuple[str, str, float] | None:
        """``(field id, text, probability)`` of the first alternative of those readings, at
        least ``least`` likely, that would make ``reading`` follow-through credit had the
        student written it there (``exactly``: its value spelled to the field's decimals,
        not only within tolerance); None if none would."""
        answer = parse_number(reading.text) if reading is not None else None
        if answer is None:
            return None
        for field_id, earlier in self.readings.items():
            for text, probability in earlier.alternatives if earlier is not None else ():
                value = parse_number(text)
                if value is None or probability < least:
                    continue
                carried = carried_expectation(field, self.exercise, self.ids,
                                              {**self.values, field_id: value})
                if carried is not None and follows(field, answer, carried, exactly):
                    return field_id, text or "", float(probability)
        return None

    def could_carry_to(self, field: Mapping[str, Any], reading: ReadingLike | None) -> bool:
        """Whether another reading the reader listed for a doubted earlier field would make
        ``reading`` follow-through.  Its best reading carried nothing (it matches the key, or
        is no answer), so the field would be graded against the key alone; if what the
        student really wrote there could make this answer right, the field waits for that
        review instead."""
        return self.reading_carrying_to(field, reading) is not None


def score_page(
    context: PageContext,
    readings: Mapping[str, ReadingLike | None],
) -> list[FieldResult]:
    """Verdicts for every field of a page, in key order (upstream fields come first).

    An accepted earlier reading whose other plausible readings would make a later
    ``incorrect`` answer follow-through is sent to review, and the page scored again (see
    :func:`misread_upstream`).
    """
    results = _score_in_order(context, readings)
    doubted = misread_upstream(context, readings, results) if context.carry_forward else {}
    return _score_in_order(context, {**readings, **doubted}) if doubted else results


def misread_upstream(
    context: PageContext,
    readings: Mapping[str, ReadingLike | None],
    results: Sequence[FieldResult],
) -> dict[str, ReadingLike]:
    """Accepted earlier readings to send to review, by field id, each with why.

    Rule 5 for the fields an answer follows from: when a wrong answer upstream is misread
    ("-20" read "-10"), the follow-through expected downstream changes, and the student's
    consistent answer there would be marked wrong on the strength of that misread.  So when
    another reading of an accepted earlier field, at least PLAUSIBLE_ALTERNATIVE likely, would
    make an ``incorrect`` answer follow-through, that earlier reading waits for a look; its
    dependants then wait with it, and a teacher's correction there settles both.  Only an
    answer that is exactly the recomputed value counts: within a tolerance, small rounded
    answers ("0.01") match what some far-fetched reading upstream ("346" for "3.46") gives,
    and sent fields to review that a misread had not touched.
    """
    values = {r.field_id: v for r in results if (v := parse_number(r.read)) is not None}
    in_review = {r.field_id for r in results if r.verdict == "review"}
    by_id = {f["id"]: f for f in context.fields}
    doubted: dict[str, ReadingLike] = {}
    for result in results:
        field = by_id.get(result.field_id)
        if result.verdict != "incorrect" or field is None:
            continue
        exercise = context.exercises[field["exercise"]]
        upstream = ancestors(field["id"], {f["id"]: f for f in exercise["fields"]})
        accepted = {u: readings.get(u) for u in upstream if u not in in_review}
        found = Upstream(exercise, upstream, values, accepted).reading_carrying_to(
            field, readings.get(field["id"]), PLAUSIBLE_ALTERNATIVE, exactly=True)
        earlier = readings.get(found[0]) if found is not None else None
        if found is not None and earlier is not None:
            why = f"another reading, '{found[1]}' ({found[2]:.3f}), would make {field['id']}"
            doubted[found[0]] = KeptReading(earlier.text, earlier.status, earlier.confidence,
                                            list(earlier.alternatives), True,
                                            f"{why} follow-through")
    return doubted


def _score_in_order(
    context: PageContext,
    readings: Mapping[str, ReadingLike | None],
) -> list[FieldResult]:
    student_values: dict[str, Decimal] = {}
    doubtful: set[str] = set()
    results: list[FieldResult] = []
    for field in context.fields:
        reading = readings.get(field["id"])
        exercise = context.exercises[field["exercise"]]
        upstream = ancestors(field["id"], {f["id"]: f for f in exercise["fields"]})
        carried = (carried_expectation(field, exercise, upstream, student_values)
                   if context.carry_forward else None)
        # Without follow-through credit an earlier field's reading changes nothing here.
        doubtful_upstream = context.carry_forward and any(a in doubtful for a in upstream)
        if doubtful_upstream and carried is None:
            doubted = Upstream(exercise, upstream, student_values,
                               {u: readings.get(u) for u in upstream if u in doubtful})
            doubtful_upstream = doubted.could_carry_to(field, reading)
        result = score_field(field, reading, carried, doubtful_upstream,
                             context.key_match_threshold)
        results.append(result)
        value = parse_number(result.read)
        if value is not None:
            student_values[field["id"]] = value
        if result.verdict == "review":
            doubtful.add(field["id"])
    return results


def regrade_page(
    context: PageContext,
    previous: Sequence[FieldResult],
    corrections: Mapping[str, str | None],
    readings: Mapping[str, ReadingLike | None] | None = None,
) -> list[FieldResult]:
    """Re-score a page after a teacher typed ``corrections`` (field id -> value, None = blank).

    Fields without a correction keep their original reading (from ``readings`` if given, else
    rebuilt from ``previous``), so dependants of a corrected field are re-graded through the
    solver with the corrected value.
    """
    base: dict[str, ReadingLike | None] = dict(readings or {})
    for old in previous:
        if old.field_id not in base:
            base[old.field_id] = _reading_from_result(old)
    for field_id, text in corrections.items():
        base[field_id] = TeacherReading(text, "number" if text is not None else "blank")
    results = score_page(context, base)
    # The saved crops belong to the boxes, not to the verdicts: review still shows them.
    crops = {old.field_id: old.crop_path for old in previous}
    for result in results:
        result.overridden = result.field_id in corrections
        result.crop_path = crops.get(result.field_id)
    return results


@dataclass(frozen=True)
class KeptReading:
    """A reading held apart from the reader: stored with a result, or doubted for its page.

    ``review_reason``, when set, is why it is in review, in place of "reader unsure".
    """

    text: str | None
    status: str
    confidence: float
    alternatives: Sequence[tuple[str | None, float]]
    needs_review: bool
    review_reason: str = ""


def _reading_from_result(result: FieldResult) -> ReadingLike:
    """Reconstruct a reading from a stored result (what the reader said, not the verdict)."""
    return KeptReading(result.read, result.reading_status, result.confidence,
                       [(t or None, p) for t, p in result.alternatives], result.reader_unsure,
                       _kept_review_reason(result))


def _kept_review_reason(result: FieldResult) -> str:
    """A reason that doubted the reading itself (a blurred page), to keep on re-grading."""
    doubted = result.reader_unsure and result.verdict == "review"
    return result.reason if doubted and not result.reason.startswith(READER_UNSURE) else ""
