"""From a validated spec to a class set: variants, their exercises, page layouts and the key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from worksheets.exercises.base import ExerciseInstance, format_number
from worksheets.exercises.registry import get_family
from worksheets.layout import ExerciseBlock, PageHeader, PageLayout, layout_variant
from worksheets.spec import Student, WorksheetSpec


@dataclass(frozen=True)
class PlannedExercise:
    """One exercise of one variant: its instance and its share of the points."""

    exercise_id: str
    title: str
    points: float
    params: dict[str, Any]
    instance: ExerciseInstance


@dataclass
class Variant:
    """One student's (or one numbered copy's) worksheet."""

    index: int
    student: Student | None
    exercises: list[PlannedExercise]
    pages: list[PageLayout]


@dataclass
class ClassSet:
    spec: WorksheetSpec
    worksheet_id: str
    variants: list[Variant]

    @property
    def page_count(self) -> int:
        return sum(len(v.pages) for v in self.variants)


def worksheet_id_for(spec: WorksheetSpec, students: list[Student] | None, copies: int) -> str:
    """A short id that changes whenever anything printed would change."""
    # A grading policy that prints nothing must not change the id: a key made again after
    # the sheets were printed has to match their QR codes.
    material = {
        "spec": spec.model_dump(mode="json", exclude={"credit_expected_answers"}),
        "students": [s.model_dump() for s in students or []],
        "copies": copies,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return digest[:8].upper()


def variant_rng(seed: int, variant: int, exercise: int, different: bool) -> np.random.Generator:
    # Seeding from (seed, variant, exercise) keeps each exercise's numbers stable when the
    # teacher adds or removes other exercises or students.
    return np.random.default_rng([seed, variant if different else 0, exercise])


def plan_exercises(spec: WorksheetSpec, variant: int) -> list[PlannedExercise]:
    planned: list[PlannedExercise] = []
    for number, exercise in enumerate(spec.exercises, start=1):
        family = get_family(exercise.family)
        params = family.parse_params(exercise.params)
        rng = variant_rng(spec.seed, variant, number, spec.variants.different_numbers)
        instance = family.generate(params, rng)
        planned.append(PlannedExercise(
            exercise_id=f"q{number}",
            title=exercise.title or family.title,
            points=exercise.points,
            params=params.model_dump(mode="json"),
            instance=instance,
        ))
    return planned


def exercise_block(number: int, planned: PlannedExercise) -> ExerciseBlock:
    points = f"{planned.points:g} point" + ("" if planned.points == 1 else "s")
    return ExerciseBlock(
        exercise_id=planned.exercise_id,
        heading=f"{number}. {planned.title} ({points})",
        prompt=planned.instance.prompt,
        notes=planned.instance.notes,
        rows=planned.instance.rows,
        labels={f.name: f.label for f in planned.instance.fields},
    )


def build_class_set(
    spec: WorksheetSpec, students: list[Student] | None = None, copies: int | None = None
) -> ClassSet:
    """Plan and lay out every variant.  ``students`` wins over ``copies``; default 1 copy."""
    count = len(students) if students else (copies or spec.variants.copies or 1)
    worksheet_id = worksheet_id_for(spec, students, count)
    variants: list[Variant] = []
    for index in range(count):
        student = students[index] if students else None
        exercises = plan_exercises(spec, index)
        header = PageHeader(
            title=spec.title,
            class_name=spec.class_name,
            instructions=spec.instructions,
            student_line=f"Name: {student.name}   (ID {student.student_id})" if student else None,
        )
        blocks = [exercise_block(n, p) for n, p in enumerate(exercises, start=1)]
        pages = layout_variant(blocks, header, spec.paper_mm, worksheet_id, index)
        variants.append(Variant(index, student, exercises, pages))
    return ClassSet(spec, worksheet_id, variants)


def expected_answers(planned: PlannedExercise) -> dict[str, tuple[float, str]]:
    """Each local field's solver value and the string a student should write."""
    values = get_family(planned.instance.family).solve(planned.instance.givens)
    decimals = {f.name: f.decimals for f in planned.instance.fields}
    return {name: (value, format_number(value, decimals[name])) for name, value in values.items()}
