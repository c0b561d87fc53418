"""Linear-algebra families: dot product (the example every other family follows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from worksheets.exercises.base import (
    AnswerGrid,
    ExerciseFamily,
    ExerciseInstance,
    FamilyParams,
    FieldSpec,
    GivenGrid,
    Symbol,
    pick,
)


def int_grid(values: list[list[int]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(str(v) for v in row) for row in values)


def column(values: list[int]) -> tuple[tuple[str, ...], ...]:
    return tuple((str(v),) for v in values)


class DotProductParams(FamilyParams):
    length: int = Field(3, ge=2, le=6, description="number of entries in each vector")
    max_abs: int = Field(5, ge=1, le=9, description="largest absolute value of an entry")
    show_products: bool = Field(
        True, description="ask for each product a_i*b_i as well as the sum (step by step)"
    )


class DotProduct(ExerciseFamily):
    name = "dot_product"
    title = "Dot product"
    summary = "a · b for two small integer vectors, optionally with each product as a step"
    Params = DotProductParams

    def generate(self, params: FamilyParams, rng: np.random.Generator) -> ExerciseInstance:
        assert isinstance(params, DotProductParams)
        n, m = params.length, params.max_abs
        a = [int(v) for v in rng.integers(-m, m + 1, size=n)]
        b = [int(v) for v in rng.integers(-m, m + 1, size=n)]
        products = [f"p{i + 1}" for i in range(n)] if params.show_products else []
        fields = [FieldSpec(name, f"a{i + 1}·b{i + 1}") for i, name in enumerate(products)]
        fields.append(FieldSpec("s", "a · b", depends_on=tuple(products)))
        rows: list[tuple[Any, ...]] = [
            (GivenGrid("a", (tuple(str(v) for v in a),)), Symbol("·"),
             GivenGrid("b", (tuple(str(v) for v in b),))),
        ]
        if products:
            rows.append((AnswerGrid("products", (tuple(products),)),))
        rows.append((AnswerGrid("a · b", (("s",),)),))
        return ExerciseInstance(
            family=self.name,
            prompt="Multiply the vectors entry by entry, then add the products.",
            givens={"a": a, "b": b, "show_products": params.show_products},
            fields=tuple(fields),
            rows=tuple(rows),
        )

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        a, b = givens["a"], givens["b"]
        out: dict[str, float] = {}
        if givens["show_products"]:
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                out[f"p{i + 1}"] = pick(overrides, f"p{i + 1}", x * y)
            total = sum(out.values())
        else:
            total = sum(x * y for x, y in zip(a, b, strict=True))
        out["s"] = pick(overrides, "s", total)
        return out
