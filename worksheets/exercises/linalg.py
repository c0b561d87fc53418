"""Linear-algebra families: dot product, matrix times vector, matrix product, 2-D convolution.

The dot product is the worked example: each family draws small integers, names its answer
fields, says which fields each one is computed from (``depends_on``), and solves them in that
order so that an overridden field carries forward into everything after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from worksheets.exercises.base import (
    AnswerGrid,
    FamilyParams,
    FieldSpec,
    GivenGrid,
    Symbol,
    nonzero_ints,
    pick,
)
from worksheets.exercises.common import (
    DrawnFamily,
    Row,
    column,
    int_grid,
    int_matrix,
    matrix_names,
    names,
    row_vector,
    wrap_names,
)


class DotProductParams(FamilyParams):
    length: int = Field(3, ge=2, le=6, description="number of entries in each vector")
    max_abs: int = Field(5, ge=1, le=9, description="largest absolute value of an entry")
    show_products: bool = Field(
        True, description="ask for each product a_i*b_i as well as the sum (step by step)"
    )


class DotProduct(DrawnFamily):
    name = "dot_product"
    title = "Dot product"
    summary = "a · b for two small integer vectors, optionally with each product as a step"
    Params = DotProductParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, DotProductParams)
        n, m = params.length, params.max_abs
        # Zeros make a product step pointless, so entries are drawn without them.
        a = nonzero_ints(rng, -m, m, n)
        b = nonzero_ints(rng, -m, m, n)
        return {"a": a, "b": b, "show_products": params.show_products}

    def _products(self, givens: Mapping[str, Any]) -> list[str]:
        return names("p", len(givens["a"])) if givens["show_products"] else []

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        products = self._products(givens)
        steps = [FieldSpec(p, f"a{i + 1}·b{i + 1}") for i, p in enumerate(products)]
        return (*steps, FieldSpec("s", "a · b", depends_on=tuple(products)))

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        rows: list[Row] = [
            (GivenGrid("a", row_vector(givens["a"])), Symbol("·"),
             GivenGrid("b", row_vector(givens["b"]))),
        ]
        products = self._products(givens)
        if products:
            rows.append((AnswerGrid("products a_i·b_i", wrap_names(products)),))
        rows.append((AnswerGrid("a · b", (("s",),)),))
        return tuple(rows)

    def prompt(self, givens: Mapping[str, Any]) -> str:
        if givens["show_products"]:
            return "Multiply the vectors entry by entry, then add the products."
        return "Compute the dot product a · b."

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


class MatrixVectorParams(FamilyParams):
    rows: int = Field(2, ge=2, le=4, description="rows of W (entries of the result)")
    cols: int = Field(3, ge=2, le=4, description="columns of W (entries of x)")
    max_abs: int = Field(4, ge=1, le=9, description="largest absolute value of an entry")


class MatrixVector(DrawnFamily):
    name = "matrix_vector"
    title = "Matrix times vector"
    summary = "y = W x for a small integer matrix and vector"
    Params = MatrixVectorParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, MatrixVectorParams)
        m = params.max_abs
        return {
            "W": int_matrix(rng, m, params.rows, params.cols),
            "x": nonzero_ints(rng, -m, m, params.cols),
        }

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        return tuple(FieldSpec(y, y) for y in names("y", len(givens["W"])))

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        ys = names("y", len(givens["W"]))
        return ((GivenGrid("W", int_grid(givens["W"])), Symbol("×"),
                 GivenGrid("x", column(givens["x"])), Symbol("="),
                 AnswerGrid("y = Wx", tuple((y,) for y in ys))),)

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return "Multiply the matrix by the vector: each y_i is row i of W dotted with x."

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        x = givens["x"]
        out: dict[str, float] = {}
        for i, row in enumerate(givens["W"]):
            out[f"y{i + 1}"] = pick(overrides, f"y{i + 1}",
                                    sum(w * v for w, v in zip(row, x, strict=True)))
        return out

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        # A zero row would make one answer trivially 0.
        return all(any(row) for row in givens["W"])


class MatrixMultiplyParams(FamilyParams):
    rows: int = Field(2, ge=2, le=4, description="rows of A (and of C)")
    inner: int = Field(2, ge=2, le=4, description="columns of A = rows of B")
    cols: int = Field(2, ge=2, le=4, description="columns of B (and of C)")
    max_abs: int = Field(3, ge=1, le=9, description="largest absolute value of an entry")


class MatrixMultiply(DrawnFamily):
    name = "matrix_multiply"
    title = "Matrix product"
    summary = "C = A B for two small integer matrices"
    Params = MatrixMultiplyParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, MatrixMultiplyParams)
        m = params.max_abs
        return {
            "A": int_matrix(rng, m, params.rows, params.inner),
            "B": int_matrix(rng, m, params.inner, params.cols),
        }

    def _cells(self, givens: Mapping[str, Any]) -> list[list[str]]:
        return matrix_names("c", len(givens["A"]), len(givens["B"][0]))

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        return tuple(FieldSpec(c, c) for row in self._cells(givens) for c in row)

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        cells = tuple(tuple(row) for row in self._cells(givens))
        return (
            (GivenGrid("A", int_grid(givens["A"])), Symbol("×"),
             GivenGrid("B", int_grid(givens["B"]))),
            (AnswerGrid("C = AB", cells),),
        )

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return "Compute C = AB: entry c_ij is row i of A dotted with column j of B."

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        a, b = givens["A"], givens["B"]
        out: dict[str, float] = {}
        for i, a_row in enumerate(a):
            for j in range(len(b[0])):
                value = sum(a_row[k] * b[k][j] for k in range(len(b)))
                out[f"c{i + 1}{j + 1}"] = pick(overrides, f"c{i + 1}{j + 1}", value)
        return out

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        # Zero rows of A or zero columns of B give whole rows/columns of trivial zeros.
        b_cols = zip(*givens["B"], strict=True)
        return all(any(row) for row in givens["A"]) and all(any(col) for col in b_cols)


class Conv2dParams(FamilyParams):
    height: int = Field(3, ge=3, le=5, description="image rows (output has one fewer)")
    width: int = Field(3, ge=3, le=5, description="image columns (output has one fewer)")
    max_abs_image: int = Field(3, ge=1, le=9, description="largest absolute pixel value")
    max_abs_kernel: int = Field(2, ge=1, le=5, description="largest absolute kernel weight")


KERNEL = 2  # kernel side; 2x2 keeps each output a four-term sum


class Conv2d(DrawnFamily):
    name = "conv2d"
    title = "2-D convolution"
    summary = "valid, stride-1 cross-correlation of a small integer image with a 2×2 kernel"
    Params = Conv2dParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, Conv2dParams)
        k = params.max_abs_kernel
        return {
            "image": int_matrix(rng, params.max_abs_image, params.height, params.width),
            "kernel": [nonzero_ints(rng, -k, k, KERNEL) for _ in range(KERNEL)],
        }

    def _cells(self, givens: Mapping[str, Any]) -> list[list[str]]:
        image = givens["image"]
        return matrix_names("o", len(image) - KERNEL + 1, len(image[0]) - KERNEL + 1)

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        return tuple(FieldSpec(o, o) for row in self._cells(givens) for o in row)

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        cells = tuple(tuple(row) for row in self._cells(givens))
        return (
            (GivenGrid("image", int_grid(givens["image"])), Symbol("*"),
             GivenGrid("kernel", int_grid(givens["kernel"]))),
            (AnswerGrid("output", cells),),
        )

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return (
            "Slide the kernel over the image (no padding, stride 1, kernel not flipped): "
            "each output is the sum of the four products of overlapping entries."
        )

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        image, kernel = givens["image"], givens["kernel"]
        out: dict[str, float] = {}
        for i in range(len(image) - KERNEL + 1):
            for j in range(len(image[0]) - KERNEL + 1):
                value = sum(
                    image[i + u][j + v] * kernel[u][v]
                    for u in range(KERNEL)
                    for v in range(KERNEL)
                )
                out[f"o{i + 1}{j + 1}"] = pick(overrides, f"o{i + 1}{j + 1}", value)
        return out
