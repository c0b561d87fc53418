"""The explicit registry of exercise families (no package walking)."""

from __future__ import annotations

from worksheets.errors import ExerciseError
from worksheets.exercises.base import ExerciseFamily
from worksheets.exercises.linalg import DotProduct

FAMILIES: dict[str, ExerciseFamily] = {
    family.name: family
    for family in (
        DotProduct(),
    )
}


def get_family(name: str) -> ExerciseFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise ExerciseError(
            f"unknown exercise family {name!r}; run 'papergrade exercises' to list them ({known})"
        ) from None
