"""Neural-network layer families: linear layer, ReLU, linear + ReLU, residual (skip) block.

Every layer prints as ``W × x + b = z`` with column vectors, and each later step (ReLU, the
skip addition) gets its own row, so a student's wrong ``z`` carries forward into ``h``.
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
    names,
    relu,
    row_vector,
    wrap_names,
)


def as_column(cells: list[str]) -> tuple[tuple[str, ...], ...]:
    return tuple((c,) for c in cells)


def affine_row(givens: Mapping[str, Any], z_names: list[str], z_label: str) -> Row:
    """``W × x + b = [z]``: the givens of a layer and its pre-activation answer column."""
    return (
        GivenGrid("W", int_grid(givens["W"])), Symbol("×"),
        GivenGrid("x", column(givens["x"])), Symbol("+"),
        GivenGrid("b", column(givens["b"])), Symbol("="),
        AnswerGrid(z_label, as_column(z_names)),
    )


def affine(givens: Mapping[str, Any]) -> list[int]:
    """W x + b from the givens, one entry per row of W."""
    return [
        sum(w * v for w, v in zip(row, givens["x"], strict=True)) + bias
        for row, bias in zip(givens["W"], givens["b"], strict=True)
    ]


def draw_layer(
    rng: np.random.Generator, outputs: int, inputs: int, max_abs: int
) -> dict[str, Any]:
    return {
        "W": int_matrix(rng, max_abs, outputs, inputs),
        "x": nonzero_ints(rng, -max_abs, max_abs, inputs),
        "b": [int(v) for v in rng.integers(-max_abs, max_abs + 1, size=outputs)],
    }


def mixed_signs(values: Mapping[str, float], prefix: str, count: int) -> bool:
    """At least one positive and one non-positive entry, so ReLU visibly does something."""
    entries = [values[f"{prefix}{i + 1}"] for i in range(count)]
    return any(v > 0 for v in entries) and any(v <= 0 for v in entries)


class LayerParams(FamilyParams):
    inputs: int = Field(3, ge=2, le=4, description="entries of x (columns of W)")
    outputs: int = Field(2, ge=2, le=4, description="entries of z (rows of W and of b)")
    max_abs: int = Field(3, ge=1, le=9, description="largest absolute value of an entry")


class LinearLayerParams(LayerParams):
    show_wx: bool = Field(False, description="ask for Wx first, then Wx + b (step by step)")


class LinearLayer(DrawnFamily):
    name = "linear_layer"
    title = "Linear layer"
    summary = "z = W x + b for a small integer weight matrix, input and bias"
    Params = LinearLayerParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, LinearLayerParams)
        layer = draw_layer(rng, params.outputs, params.inputs, params.max_abs)
        return {**layer, "show_wx": params.show_wx}

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        n = len(givens["W"])
        if not givens["show_wx"]:
            return tuple(FieldSpec(z, z) for z in names("z", n))
        steps = [FieldSpec(u, f"(Wx){u[1:]}") for u in names("u", n)]
        return (*steps, *(FieldSpec(f"z{i + 1}", f"z{i + 1}", depends_on=(f"u{i + 1}",))
                          for i in range(n)))

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        zs = names("z", len(givens["W"]))
        if not givens["show_wx"]:
            return (affine_row(givens, zs, "z = Wx + b"),)
        us = names("u", len(givens["W"]))
        return (
            (GivenGrid("W", int_grid(givens["W"])), Symbol("×"),
             GivenGrid("x", column(givens["x"])), Symbol("="), AnswerGrid("Wx", as_column(us))),
            (Symbol("+"), GivenGrid("b", column(givens["b"])), Symbol("="),
             AnswerGrid("z = Wx + b", as_column(zs))),
        )

    def prompt(self, givens: Mapping[str, Any]) -> str:
        if givens["show_wx"]:
            return "Compute the layer's output in two steps: first Wx, then add the bias b."
        return "Compute the linear layer's output z = Wx + b."

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        if not givens["show_wx"]:
            for i, z in enumerate(affine(givens)):
                out[f"z{i + 1}"] = pick(overrides, f"z{i + 1}", z)
            return out
        for i, row in enumerate(givens["W"]):
            wx = sum(w * v for w, v in zip(row, givens["x"], strict=True))
            out[f"u{i + 1}"] = pick(overrides, f"u{i + 1}", wx)
        for i, bias in enumerate(givens["b"]):
            out[f"z{i + 1}"] = pick(overrides, f"z{i + 1}", out[f"u{i + 1}"] + bias)
        return out


class ReluParams(FamilyParams):
    length: int = Field(4, ge=2, le=6, description="entries of z")
    max_abs: int = Field(5, ge=1, le=9, description="largest absolute value of an entry")
    show_derivative: bool = Field(
        False, description="also ask for ReLU'(z_i), which is 1 for z_i > 0 and 0 for z_i < 0"
    )


class Relu(DrawnFamily):
    name = "relu"
    title = "ReLU"
    summary = "ReLU(z) = max(0, z) entry by entry, optionally with its derivative"
    Params = ReluParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, ReluParams)
        # No zeros: the derivative at 0 is a convention, not something to test here.
        z = nonzero_ints(rng, -params.max_abs, params.max_abs, params.length)
        return {"z": z, "show_derivative": params.show_derivative}

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        n = len(givens["z"])
        out = [FieldSpec(h, f"ReLU(z{h[1:]})") for h in names("h", n)]
        if givens["show_derivative"]:
            out.extend(FieldSpec(g, f"ReLU'(z{g[1:]})") for g in names("g", n))
        return tuple(out)

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        n = len(givens["z"])
        rows: list[Row] = [
            (GivenGrid("z", row_vector(givens["z"])),),
            (AnswerGrid("ReLU(z)", wrap_names(names("h", n))),),
        ]
        if givens["show_derivative"]:
            rows.append((AnswerGrid("ReLU'(z)", wrap_names(names("g", n))),))
        return tuple(rows)

    def prompt(self, givens: Mapping[str, Any]) -> str:
        if givens["show_derivative"]:
            return "Apply ReLU(z) = max(0, z) to each entry, then write its derivative at z_i."
        return "Apply ReLU(z) = max(0, z) to each entry of z."

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        z = givens["z"]
        out = {f"h{i + 1}": pick(overrides, f"h{i + 1}", relu(v)) for i, v in enumerate(z)}
        if givens["show_derivative"]:
            for i, v in enumerate(z):
                out[f"g{i + 1}"] = pick(overrides, f"g{i + 1}", 1.0 if v > 0 else 0.0)
        return out

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        z = givens["z"]
        return any(v > 0 for v in z) and any(v < 0 for v in z)


class LinearRelu(DrawnFamily):
    name = "linear_relu"
    title = "Linear layer with ReLU"
    summary = "z = W x + b, then h = ReLU(z)"
    Params = LayerParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, LayerParams)
        return draw_layer(rng, params.outputs, params.inputs, params.max_abs)

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        n = len(givens["W"])
        zs = [FieldSpec(z, z) for z in names("z", n)]
        hs = [FieldSpec(f"h{i + 1}", f"h{i + 1}", depends_on=(f"z{i + 1}",)) for i in range(n)]
        return (*zs, *hs)

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        n = len(givens["W"])
        return (
            affine_row(givens, names("z", n), "z = Wx + b"),
            (AnswerGrid("h = ReLU(z)", as_column(names("h", n))),),
        )

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return "Compute z = Wx + b, then apply ReLU(z) = max(0, z) to each entry."

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, z in enumerate(affine(givens)):
            out[f"z{i + 1}"] = pick(overrides, f"z{i + 1}", z)
        for i in range(len(givens["W"])):
            out[f"h{i + 1}"] = pick(overrides, f"h{i + 1}", relu(out[f"z{i + 1}"]))
        return out

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        return mixed_signs(values, "z", len(givens["W"]))


class SkipParams(FamilyParams):
    size: int = Field(2, ge=2, le=4, description="entries of x and z (W is size × size)")
    max_abs: int = Field(3, ge=1, le=9, description="largest absolute value of an entry")


class SkipConnection(DrawnFamily):
    name = "skip_connection"
    title = "Residual block"
    summary = "h = ReLU(W x + b) + x, the skip connection of a residual network"
    Params = SkipParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, SkipParams)
        return draw_layer(rng, params.size, params.size, params.max_abs)

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        n = len(givens["W"])
        zs = [FieldSpec(z, z) for z in names("z", n)]
        rs = [FieldSpec(f"r{i + 1}", f"ReLU(z{i + 1})", depends_on=(f"z{i + 1}",))
              for i in range(n)]
        hs = [FieldSpec(f"h{i + 1}", f"h{i + 1}", depends_on=(f"r{i + 1}",)) for i in range(n)]
        return (*zs, *rs, *hs)

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        n = len(givens["W"])
        return (
            affine_row(givens, names("z", n), "z = Wx + b"),
            (AnswerGrid("ReLU(z)", as_column(names("r", n))), Symbol("+"),
             GivenGrid("x", column(givens["x"])), Symbol("="),
             AnswerGrid("h", as_column(names("h", n)))),
        )

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return "Compute z = Wx + b, then ReLU(z), then add the input back: h = ReLU(z) + x."

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, z in enumerate(affine(givens)):
            out[f"z{i + 1}"] = pick(overrides, f"z{i + 1}", z)
        for i in range(len(givens["W"])):
            out[f"r{i + 1}"] = pick(overrides, f"r{i + 1}", relu(out[f"z{i + 1}"]))
        for i, x in enumerate(givens["x"]):
            out[f"h{i + 1}"] = pick(overrides, f"h{i + 1}", out[f"r{i + 1}"] + x)
        return out

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        return mixed_signs(values, "z", len(givens["W"]))
