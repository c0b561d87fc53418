"""What an exercise family is: a generator of hand-computable numbers plus a reference solver.

A family turns ``(params, rng)`` into an :class:`ExerciseInstance`: the *givens* printed on the
sheet, the *fields* the student fills in, and a *presentation* (rows of grids and symbols) that
the layout engine places on the page.  The family's :meth:`ExerciseFamily.solve` recomputes
every field from the givens and is the single source of truth for answers.  It accepts
``overrides``: values to use for some fields instead of computing them, which is how grading
carries a student's own earlier (possibly wrong) answers forward into later fields.

Field names inside an exercise are local (``z1``, ``h2``); the worksheet prefixes them with the
exercise id (``q1.z1``) when it assembles pages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

ToleranceKind = Literal["exact", "absolute", "relative"]

# The handwriting reader reads at most this many characters per box (minus sign and decimal
# point included), so every expected answer must print within it.
MAX_ANSWER_CHARS = 6


@dataclass(frozen=True)
class Tolerance:
    """How close a student's number must be to count as correct.

    ``exact``: equal after rounding both to ``decimals``.  ``absolute``: ``|a - e| <= value``.
    ``relative``: ``|a - e| <= value * max(|e|, 1e-12)``.
    """

    kind: ToleranceKind = "exact"
    value: float = 0.0

    def accepts(self, answer: float, expected: float, decimals: int) -> bool:
        if self.kind == "exact":
            return round(answer, decimals) == round(expected, decimals)
        if self.kind == "absolute":
            return abs(answer - expected) <= self.value + 1e-9
        return abs(answer - expected) <= self.value * max(abs(expected), 1e-12) + 1e-9

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


@dataclass(frozen=True)
class FieldSpec:
    """One answer box: its local name, what it depends on and how it is compared.

    ``decimals`` is how many decimals the printed answer has (0 for integers); the
    expected string is the solver's value rounded to that many decimals.
    """

    name: str
    label: str
    decimals: int = 0
    depends_on: tuple[str, ...] = ()
    tolerance: Tolerance = field(default_factory=Tolerance)
    points: float = 1.0


@dataclass(frozen=True)
class GivenGrid:
    """A matrix, vector or table printed on the sheet (values already formatted as text).

    ``row_labels``/``col_labels`` are optional headers, e.g. an e^x lookup table.
    """

    label: str
    values: tuple[tuple[str, ...], ...]
    row_labels: tuple[str, ...] = ()
    col_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnswerGrid:
    """A grid of answer boxes; each cell holds a local field name, or ``""`` for no box."""

    label: str
    cells: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Symbol:
    """An operator or punctuation between grids, e.g. ``×``, ``+``, ``=``."""

    text: str


PresentationItem = GivenGrid | AnswerGrid | Symbol


@dataclass(frozen=True)
class ExerciseInstance:
    """One concrete exercise as printed for one variant.

    ``givens`` holds plain JSON-able numbers (nested lists of int/float) that ``solve`` needs;
    ``rows`` is the presentation, top to bottom; each row is laid out left to right.
    """

    family: str
    prompt: str
    givens: dict[str, Any]
    fields: tuple[FieldSpec, ...]
    rows: tuple[tuple[PresentationItem, ...], ...]
    notes: tuple[str, ...] = ()

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


def format_number(value: float, decimals: int) -> str:
    """Format the way a student is asked to write it: fixed decimals, no ``-0``."""
    rounded = round(float(value), decimals)
    if rounded == 0:
        rounded = 0.0
    text = f"{rounded:.{decimals}f}"
    return text


def fits_reader(value: float, decimals: int) -> bool:
    """Whether ``value`` written with ``decimals`` decimals is short enough for the reader."""
    return len(format_number(value, decimals)) <= MAX_ANSWER_CHARS


def round_half_away(value: float, decimals: int) -> float:
    """Round half away from zero, as taught in school (Python's round() is banker's)."""
    scale = 10**decimals
    scaled = abs(value) * scale
    # A tiny epsilon keeps 2.675 (stored as 2.67499999...) rounding up, as a person would.
    rounded = math.floor(scaled + 0.5 + 1e-9) / scale
    return math.copysign(rounded, value) if rounded != 0 else 0.0


class FamilyParams(BaseModel):
    """Base for each family's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ExerciseFamily:
    """Base class of exercise families; subclasses are registered in ``registry.FAMILIES``."""

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[FamilyParams]]

    def generate(self, params: FamilyParams, rng: np.random.Generator) -> ExerciseInstance:
        raise NotImplementedError

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        """Every field's value from the givens, using ``overrides`` for fields given there.

        An overridden field keeps the override; fields that depend on it are computed from it.
        """
        raise NotImplementedError

    def parse_params(self, raw: Mapping[str, Any] | None) -> FamilyParams:
        return self.Params.model_validate(dict(raw or {}))


def pick(overrides: Mapping[str, float] | None, name: str, computed: float) -> float:
    """The override for ``name`` if there is one, else the computed value."""
    if overrides is not None and name in overrides:
        return float(overrides[name])
    return float(computed)


def nonzero_ints(rng: np.random.Generator, low: int, high: int, size: int) -> list[int]:
    """``size`` random integers in [low, high] without zeros (zeros make dull exercises)."""
    values: list[int] = []
    while len(values) < size:
        v = int(rng.integers(low, high + 1))
        if v != 0:
            values.append(v)
    return values
