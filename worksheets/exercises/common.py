"""Helpers shared by the exercise families: drawing until the answers fit, and grid text.

Most families follow one pattern: draw candidate givens from the rng, solve them, and keep
them only when every answer is short enough for the handwriting reader (and, where a family
asks, interesting enough).  :class:`DrawnFamily` implements that loop once, so a family only
says how to draw, which fields it asks for, and how the exercise looks on paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from worksheets.errors import ExerciseError
from worksheets.exercises.base import (
    MAX_ANSWER_CHARS,
    ExerciseFamily,
    ExerciseInstance,
    FamilyParams,
    FieldSpec,
    PresentationItem,
    fits_reader,
    round_half_away,
)

T = TypeVar("T")

# Enough tries that a family whose acceptance rate is a few percent still succeeds with
# overwhelming probability, few enough that a hopeless parameter set fails fast.
MAX_DRAWS = 2000
# Widest answer grid we build: four 32 mm boxes fill the printable width.
MAX_ANSWER_COLS = 4

Grid = tuple[tuple[str, ...], ...]
Row = tuple[PresentationItem, ...]


def redraw(draw: Callable[[], T], accept: Callable[[T], bool], what: str) -> T:
    """Call ``draw`` until ``accept`` holds, at most :data:`MAX_DRAWS` times."""
    for _ in range(MAX_DRAWS):
        candidate = draw()
        if accept(candidate):
            return candidate
    raise ExerciseError(
        f"could not draw a {what} exercise whose answers fit in {MAX_ANSWER_CHARS} characters; "
        "choose smaller numbers or sizes"
    )


def answers_fit(values: Mapping[str, float], fields: Sequence[FieldSpec]) -> bool:
    return all(fits_reader(values[f.name], f.decimals) for f in fields)


def int_grid(values: Sequence[Sequence[int]]) -> Grid:
    return tuple(tuple(str(v) for v in row) for row in values)


def row_vector(values: Sequence[float], decimals: int = 0) -> Grid:
    return (tuple(number_text(v, decimals) for v in values),)


def column(values: Sequence[float], decimals: int = 0) -> Grid:
    return tuple((number_text(v, decimals),) for v in values)


def number_text(value: float, decimals: int = 0) -> str:
    if decimals == 0:
        return str(int(value))
    return f"{value:.{decimals}f}"


def wrap_names(names: Sequence[str], width: int = MAX_ANSWER_COLS) -> Grid:
    """Answer cells in balanced rows of at most ``width`` boxes, padded with "" (no box)."""
    if not names:
        return ((),)
    rows = math.ceil(len(names) / width)
    per_row = math.ceil(len(names) / rows)
    cells = [list(names[i : i + per_row]) for i in range(0, len(names), per_row)]
    cells[-1].extend([""] * (per_row - len(cells[-1])))
    return tuple(tuple(r) for r in cells)


def names(prefix: str, count: int) -> list[str]:
    """``prefix1 .. prefixN``, the local field names of a vector."""
    return [f"{prefix}{i + 1}" for i in range(count)]


def matrix_names(prefix: str, rows: int, cols: int) -> list[list[str]]:
    """``prefix11 .. prefixRC`` (sizes stay below 10, so the two digits never clash)."""
    return [[f"{prefix}{r + 1}{c + 1}" for c in range(cols)] for r in range(rows)]


def ints(rng: np.random.Generator, low: int, high: int, size: int) -> list[int]:
    return [int(v) for v in rng.integers(low, high + 1, size=size)]


def int_matrix(rng: np.random.Generator, max_abs: int, rows: int, cols: int) -> list[list[int]]:
    return [ints(rng, -max_abs, max_abs, cols) for _ in range(rows)]


def exp_table_value(x: float) -> float:
    """e^x as printed in a lookup table: rounded half away from zero to 2 decimals."""
    return round_half_away(math.exp(x), 2)


def relu(value: float) -> float:
    return value if value > 0 else 0.0


def clean(value: float, decimals: int) -> float:
    """Drop float noise (0.1 * 3 = 0.30000000000000004) from a value exact at ``decimals``.

    Rounding to a few more digits than printed keeps a carried-forward value with extra
    decimals intact while removing binary representation error.
    """
    return round(value, decimals + 6)


class DrawnFamily(ExerciseFamily):
    """A family built from four parts: draw, fields, rows, prompt (plus an optional filter).

    ``generate`` redraws until every answer fits the reader and :meth:`accept` holds, so a
    subclass never has to think about the 6-character limit.
    """

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        raise NotImplementedError

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        raise NotImplementedError

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        raise NotImplementedError

    def prompt(self, givens: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        """Extra conditions on a draw (for example "not every entry equal"); default: none."""
        return True

    def generate(self, params: FamilyParams, rng: np.random.Generator) -> ExerciseInstance:
        if not isinstance(params, self.Params):
            raise ExerciseError(f"{self.name} expects {self.Params.__name__}")

        def good(givens: dict[str, Any]) -> bool:
            values = self.solve(givens)
            return answers_fit(values, self.fields(givens)) and self.accept(givens, values)

        givens = redraw(lambda: self.draw(params, rng), good, self.name)
        return ExerciseInstance(
            family=self.name,
            prompt=self.prompt(givens),
            givens=givens,
            fields=self.fields(givens),
            rows=self.rows(givens),
        )
