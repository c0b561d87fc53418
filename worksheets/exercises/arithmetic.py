"""Signed-integer arithmetic drills: the warm-up before any matrix work.

Each problem is one answer box whose printed label is the expression, e.g. ``7 − (-3) =``;
negative operands on the right are parenthesised the way they are written in class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field

from worksheets.exercises.base import AnswerGrid, FamilyParams, FieldSpec, nonzero_ints, pick
from worksheets.exercises.common import MAX_ANSWER_COLS, DrawnFamily, Row, names

Operation = Literal["add", "sub", "mul"]
SIGNS: dict[str, str] = {"add": "+", "sub": "−", "mul": "×"}
LETTERS = "abcdefghijkl"


def apply(op: str, a: float, b: float) -> float:
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    return a * b


def expression(op: str, a: int, b: int) -> str:
    right = f"({b})" if b < 0 else str(b)
    return f"{a} {SIGNS[op]} {right} ="


class ArithmeticParams(FamilyParams):
    operations: tuple[Operation, ...] = Field(
        ("add", "sub", "mul"),
        min_length=1,
        max_length=3,
        description="operations to practise, any of add, sub, mul (used in turn)",
    )
    count: int = Field(8, ge=1, le=12, description="number of problems")
    max_abs: int = Field(12, ge=2, le=99, description="largest absolute value of an operand")
    negatives: bool = Field(True, description="use negative operands (and results)")


class Arithmetic(DrawnFamily):
    name = "arithmetic"
    title = "Arithmetic with signed numbers"
    summary = "addition, subtraction and multiplication drills with negative numbers"
    Params = ArithmeticParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, ArithmeticParams)
        n, m = params.count, params.max_abs
        # Every chosen operation appears about equally often, in a shuffled order.
        ops = [params.operations[i % len(params.operations)] for i in range(n)]
        ops = [ops[int(i)] for i in rng.permutation(n)]
        low = -m if params.negatives else 1
        a, b = nonzero_ints(rng, low, m, n), nonzero_ints(rng, low, m, n)
        if not params.negatives:
            # Keep differences non-negative too: the bigger number goes first.
            for i, op in enumerate(ops):
                if op == "sub" and a[i] < b[i]:
                    a[i], b[i] = b[i], a[i]
        return {"a": a, "b": b, "ops": ops}

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        triples = zip(givens["ops"], givens["a"], givens["b"], strict=True)
        return tuple(
            FieldSpec(r, expression(op, a, b))
            for r, (op, a, b) in zip(names("r", len(givens["a"])), triples, strict=True)
        )

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        grids = [
            AnswerGrid(f"({LETTERS[i]})", ((r,),))
            for i, r in enumerate(names("r", len(givens["a"])))
        ]
        return tuple(
            tuple(grids[i : i + MAX_ANSWER_COLS]) for i in range(0, len(grids), MAX_ANSWER_COLS)
        )

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return "Work out each expression; mind the signs."

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        triples = zip(givens["ops"], givens["a"], givens["b"], strict=True)
        return {
            f"r{i + 1}": pick(overrides, f"r{i + 1}", apply(op, a, b))
            for i, (op, a, b) in enumerate(triples)
        }
