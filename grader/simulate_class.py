"""A whole class filling in and photographing its worksheets, with the truth recorded.

Used by ``papergrade demo``, ``bench/grade.py`` and end-to-end tests.  Students answer the way
real ones do: mostly right, sometimes wrong, sometimes blank, and after a wrong step they carry
their own value forward correctly (so follow-through credit is exercised).  The truth file says
what each box really holds, who the student is and what each verdict should be.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.io import PageInput, iter_pages
from grader.results import StudentRef
from grader.score import PageContext, TeacherReading, score_page
from grader.simulate import save_jpeg, simulate_page
from worksheets.exercises.base import MAX_ANSWER_CHARS, format_number
from worksheets.exercises.registry import get_family

RENDER_DPI = 200


@dataclass(frozen=True)
class AnswerHabits:
    """How often a simulated student gets a step wrong or leaves it blank."""

    wrong: float = 0.08
    blank: float = 0.04


@dataclass
class PageTruth:
    photo: str
    variant: int
    page_number: int
    student_id: str | None
    written: dict[str, str]  # box id -> what was written ("" = blank)
    verdicts: dict[str, str] = field(default_factory=dict)


def wrong_value(value: float, decimals: int, rng: np.random.Generator) -> float:
    """A plausible slip: a sign error, an off-by-something, or a wrong last digit."""
    unit = 10.0 ** -decimals
    choice = rng.integers(3)
    if choice == 0 and value != 0:
        return -value
    if choice == 1:
        return value + unit * float(rng.choice([-3, -2, -1, 1, 2, 3]))
    return value + float(rng.choice([-10, -5, 5, 10])) * unit


def fits(text: str) -> bool:
    return len(text) <= MAX_ANSWER_CHARS


def answer_exercise(
    exercise: Mapping[str, Any], habits: AnswerHabits, rng: np.random.Generator
) -> dict[str, str]:
    """What one student writes for one exercise (field id -> text, "" for blank)."""
    family = get_family(exercise["family"])
    own: dict[str, float] = {}
    written: dict[str, str] = {}
    for spec in exercise["fields"]:
        correct_given_own = family.solve(exercise["givens"], own)[spec["name"]]
        roll = rng.random()
        value = correct_given_own
        if roll < habits.wrong:
            value = wrong_value(correct_given_own, spec["decimals"], rng)
        text = format_number(value, spec["decimals"])
        if roll < habits.wrong and (not fits(text) or text == format_number(
                correct_given_own, spec["decimals"])):
            value, text = correct_given_own, format_number(correct_given_own, spec["decimals"])
        if habits.wrong <= roll < habits.wrong + habits.blank:
            written[spec["id"]] = ""
            continue
        own[spec["name"]] = float(text)
        written[spec["id"]] = text
    return written


def plan_class(
    key: Mapping[str, Any], habits: AnswerHabits, rng: np.random.Generator
) -> dict[int, dict[str, str]]:
    """Variant index -> everything its student writes (field ids and student-number boxes)."""
    plans: dict[int, dict[str, str]] = {}
    for variant in key["variants"]:
        written: dict[str, str] = {}
        for exercise in variant["exercises"]:
            written.update(answer_exercise(exercise, habits, rng))
        plans[variant["index"]] = written
    return plans


def student_number_answers(page: Mapping[str, Any], student_id: str) -> dict[str, str]:
    boxes = page["student_number_boxes"]
    return {box["id"]: (student_id[i] if i < len(student_id) else "")
            for i, box in enumerate(boxes)}


def true_verdicts(key: Mapping[str, Any], page: Mapping[str, Any],
                  written: Mapping[str, str]) -> dict[str, str]:
    """The verdicts a perfect reader would get: the written truth scored by the same rules."""
    readings = {f["id"]: TeacherReading(written.get(f["id"]) or None,
                                        "number" if written.get(f["id"]) else "blank")
                for f in page["fields"]}
    results = score_page(PageContext.from_key(key, page), readings)
    return {r.field_id: r.verdict for r in results}


def truth_path(photo_dir: Path) -> Path:
    return photo_dir.with_name(photo_dir.name + "-truth.json")


def rendered_pages(pdf: Path) -> Iterator[PageInput]:
    for item in iter_pages([pdf], pdf_dpi=RENDER_DPI):
        if not isinstance(item, PageInput):
            raise RuntimeError(f"cannot render {pdf}: {item.error.message}")
        yield item


def simulate_class(
    key: Mapping[str, Any],
    worksheets_pdf: Path,
    out_dir: Path,
    tier: str = "phone",
    seed: int = 0,
    *,
    roster: list[StudentRef] | None = None,
    habits: AnswerHabits | None = None,
    glyph_source: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[PageTruth]:
    """Photograph every page of the class set into ``out_dir``.

    The truth goes to ``<out_dir>-truth.json`` beside the folder, so the folder holds only
    what a teacher would upload.

    ``roster`` names who fills in each numbered copy (its student number is written on page
    1); roster-printed sheets already name their student.
    """
    rng = np.random.default_rng(seed)
    plans = plan_class(key, habits or AnswerHabits(), rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    ppm = RENDER_DPI / 25.4
    truths: list[PageTruth] = []
    for rendered, page in zip(rendered_pages(worksheets_pdf), key["pages"], strict=True):
        variant = key["variants"][page["variant"]]
        student = variant.get("student")
        student_id = student["student_id"] if student else (
            roster[page["variant"]].student_id if roster and page["variant"] < len(roster)
            else None)
        written = {f["id"]: plans[page["variant"]][f["id"]] for f in page["fields"]}
        if student_id and page["student_number_boxes"]:
            written.update(student_number_answers(page, student_id))
        boxes = {f["id"]: f["bbox_mm"] for f in page["fields"]}
        boxes.update({b["id"]: b["bbox_mm"] for b in page["student_number_boxes"]})
        capture = simulate_page(rendered.image, ppm, boxes, written, tier, rng,
                                glyph_source=glyph_source)
        photo = out_dir / f"IMG_{1000 + page['pdf_page']:04d}.jpg"
        save_jpeg(capture.image, photo, quality=int(rng.integers(75, 93)))
        truths.append(PageTruth(photo.name, page["variant"], page["page_number"], student_id,
                                written, true_verdicts(key, page, written)))
        if progress:
            progress(len(truths), len(key["pages"]))
    truth_path(out_dir).write_text(json.dumps([asdict(t) for t in truths], indent=1))
    return truths
