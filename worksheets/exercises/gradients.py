"""Loss and gradient families: mean squared error, one gradient-descent step, backprop chain.

The loss is always L = ½(ŷ − y)² per example (MSE averages squares), whose derivative with
respect to the prediction is simply ŷ − y, so every gradient stays a small integer.  Labels
spell ŷ as ``y_hat`` because the printing font has no ŷ glyph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from worksheets.exercises.base import (
    AnswerGrid,
    FamilyParams,
    FieldSpec,
    GivenGrid,
    Tolerance,
    nonzero_ints,
    pick,
    round_half_away,
)
from worksheets.exercises.common import (
    DrawnFamily,
    Row,
    clean,
    ints,
    names,
    number_text,
    relu,
    row_vector,
)

# A mean over 3 values needs rounding; one unit in the last place covers rounding the sum
# of squares or the quotient differently.
MEAN_TOLERANCE = Tolerance("absolute", 0.01)
# ½ times a squared integer is exact with one decimal.
LOSS_FIELD = FieldSpec("L", "L", decimals=1, depends_on=("y_hat",))


def given_table(labels: tuple[str, ...], values: list[float], decimals: int = 0) -> GivenGrid:
    """One row of named scalars with their names as column headers."""
    return GivenGrid("given", row_vector(values, decimals), col_labels=labels)


class MseParams(FamilyParams):
    length: int = Field(3, ge=2, le=4, description="number of predictions and targets")
    max_abs: int = Field(5, ge=1, le=9, description="largest absolute value of an entry")
    show_errors: bool = Field(True, description="ask for each error y_hat_i - y_i first")


class MseLoss(DrawnFamily):
    name = "mse_loss"
    title = "Mean squared error"
    summary = "L = mean of (y_hat_i - y_i)² with errors and squares as steps"
    Params = MseParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, MseParams)
        m, n = params.max_abs, params.length
        return {"y_hat": ints(rng, -m, m, n), "y": ints(rng, -m, m, n),
                "show_errors": params.show_errors}

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        n = len(givens["y"])
        errors = names("e", n) if givens["show_errors"] else []
        squares = [
            FieldSpec(f"q{i + 1}", f"e{i + 1}²", depends_on=(f"e{i + 1}",) if errors else ())
            for i in range(n)
        ]
        return (
            *(FieldSpec(e, f"y_hat{e[1:]} − y{e[1:]}") for e in errors),
            *squares,
            FieldSpec("L", "L", decimals=2, depends_on=tuple(names("q", n)),
                      tolerance=MEAN_TOLERANCE),
        )

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        n = len(givens["y"])
        rows: list[Row] = [(GivenGrid("predictions y_hat", row_vector(givens["y_hat"])),
                             GivenGrid("targets y", row_vector(givens["y"])))]
        if givens["show_errors"]:
            rows.append((AnswerGrid("errors e_i = y_hat_i − y_i", (tuple(names("e", n)),)),))
        rows.append((AnswerGrid("squared errors", (tuple(names("q", n)),)),))
        rows.append((AnswerGrid("L = mean of the squares", (("L",),)),))
        return tuple(rows)

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return (
            "Compute the mean squared error L: square each error y_hat_i − y_i, add the "
            "squares and divide by their number; round L to 2 decimals."
        )

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        pairs = list(zip(givens["y_hat"], givens["y"], strict=True))
        out: dict[str, float] = {}
        errors: list[float] = []
        for i, (p, t) in enumerate(pairs):
            e = float(p - t)
            if givens["show_errors"]:
                e = out[f"e{i + 1}"] = pick(overrides, f"e{i + 1}", e)
            errors.append(e)
        for i, e in enumerate(errors):
            out[f"q{i + 1}"] = pick(overrides, f"q{i + 1}", e * e)
        mean = sum(out[f"q{i + 1}"] for i in range(len(pairs))) / len(pairs)
        out["L"] = pick(overrides, "L", round_half_away(mean, 2))
        return out

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        # At least two non-zero errors, so the mean is more than one square copied out.
        nonzero = sum(1 for p, t in zip(givens["y_hat"], givens["y"], strict=True) if p != t)
        return nonzero >= 2


def decimals_of(value: float) -> int:
    """Decimals needed to write ``value`` exactly (0, 1 or 2), e.g. 0.05 -> 2."""
    for d in range(3):
        scaled = value * 10**d
        if abs(scaled - round(scaled)) < 1e-9:
            return d
    raise ValueError(f"{value} has more than 2 decimals")


class GradientStepParams(FamilyParams):
    max_abs: int = Field(3, ge=1, le=5, description="largest absolute value of x, y, w and b")
    learning_rate: float = Field(
        0.1, gt=0, le=1, description="learning rate lr, at most 2 decimals (e.g. 0.1, 0.05)"
    )
    show_loss: bool = Field(False, description="also ask for the loss L = ½(y_hat − y)²")

    @field_validator("learning_rate")
    @classmethod
    def at_most_two_decimals(cls, value: float) -> float:
        decimals_of(value)  # raises ValueError, which pydantic reports against the field
        return value


class GradientDescentStep(DrawnFamily):
    name = "gradient_descent_step"
    title = "One gradient-descent step"
    summary = "one neuron y_hat = w·x + b, loss ½(y_hat − y)²: gradients and updated w, b"
    Params = GradientStepParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, GradientStepParams)
        x, y, w, b = nonzero_ints(rng, -params.max_abs, params.max_abs, 4)
        return {"x": x, "y": y, "w": w, "b": b, "lr": params.learning_rate,
                "show_loss": params.show_loss}

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        d = decimals_of(givens["lr"])
        loss = [LOSS_FIELD] if givens["show_loss"] else []
        return (
            FieldSpec("y_hat", "y_hat"),
            *loss,
            FieldSpec("dL_dyhat", "∂L/∂y_hat", depends_on=("y_hat",)),
            FieldSpec("dL_dw", "∂L/∂w", depends_on=("dL_dyhat",)),
            FieldSpec("dL_db", "∂L/∂b", depends_on=("dL_dyhat",)),
            # The update is exact at lr's decimals (integer gradient times lr).
            FieldSpec("w_new", "w − lr·∂L/∂w", decimals=d, depends_on=("dL_dw",)),
            FieldSpec("b_new", "b − lr·∂L/∂b", decimals=d, depends_on=("dL_db",)),
        )

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        d = decimals_of(givens["lr"])
        values = [givens[k] for k in ("x", "y", "w", "b")]
        labels = ("x", "y", "w", "b", "lr")
        given = GivenGrid("given", ((*row_vector(values)[0], number_text(givens["lr"], d)),),
                          col_labels=labels)
        forward = ("y_hat", "L") if givens["show_loss"] else ("y_hat",)
        return (
            (given,),
            (AnswerGrid("forward", (forward,)),),
            (AnswerGrid("gradients", (("dL_dyhat", "dL_dw", "dL_db"),)),),
            (AnswerGrid("updated parameters", (("w_new", "b_new"),)),),
        )

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return (
            "One neuron y_hat = w·x + b with loss L = ½(y_hat − y)². Compute the prediction, "
            "the gradients, and one gradient-descent step w − lr·∂L/∂w and b − lr·∂L/∂b."
        )

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        x, y, w, b, lr = (givens[k] for k in ("x", "y", "w", "b", "lr"))
        d = decimals_of(lr)
        out: dict[str, float] = {"y_hat": pick(overrides, "y_hat", w * x + b)}
        if givens["show_loss"]:
            out["L"] = pick(overrides, "L", 0.5 * (out["y_hat"] - y) ** 2)
        out["dL_dyhat"] = pick(overrides, "dL_dyhat", out["y_hat"] - y)
        out["dL_dw"] = pick(overrides, "dL_dw", out["dL_dyhat"] * x)
        out["dL_db"] = pick(overrides, "dL_db", out["dL_dyhat"])
        out["w_new"] = pick(overrides, "w_new", clean(w - lr * out["dL_dw"], d))
        out["b_new"] = pick(overrides, "b_new", clean(b - lr * out["dL_db"], d))
        return out

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        return values["dL_dyhat"] != 0  # a perfect prediction makes every gradient 0


class BackpropParams(FamilyParams):
    max_abs: int = Field(3, ge=1, le=5, description="largest absolute value of x, w1, w2, y")
    allow_dead_relu: bool = Field(
        True, description="sometimes draw z < 0, so ReLU blocks the gradient to w1"
    )
    show_loss: bool = Field(False, description="also ask for the loss L = ½(y_hat − y)²")


class BackpropChain(DrawnFamily):
    name = "backprop_chain"
    title = "Backpropagation through two layers"
    summary = "z = w1·x, h = ReLU(z), y_hat = w2·h, L = ½(y_hat − y)²: chain rule by hand"
    Params = BackpropParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, BackpropParams)
        x, w1, w2, y = nonzero_ints(rng, -params.max_abs, params.max_abs, 4)
        if not params.allow_dead_relu and w1 * x < 0:
            w1 = -w1  # same size, sign flipped so z = w1·x > 0
        return {"x": x, "w1": w1, "w2": w2, "y": y, "show_loss": params.show_loss}

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        loss = [LOSS_FIELD] if givens["show_loss"] else []
        return (
            FieldSpec("z", "z = w1·x"),
            FieldSpec("h", "h = ReLU(z)", depends_on=("z",)),
            FieldSpec("y_hat", "y_hat = w2·h", depends_on=("h",)),
            *loss,
            FieldSpec("dL_dyhat", "∂L/∂y_hat", depends_on=("y_hat",)),
            FieldSpec("dL_dw2", "∂L/∂w2", depends_on=("dL_dyhat", "h")),
            FieldSpec("dL_dh", "∂L/∂h", depends_on=("dL_dyhat",)),
            FieldSpec("dL_dz", "∂L/∂z", depends_on=("dL_dh", "z")),
            FieldSpec("dL_dw1", "∂L/∂w1", depends_on=("dL_dz",)),
        )

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        labels = ("x", "w1", "w2", "y")
        forward = ("z", "h", "y_hat", "L") if givens["show_loss"] else ("z", "h", "y_hat")
        return (
            (given_table(labels, [givens[k] for k in labels]),),
            (AnswerGrid("forward", (forward,)),),
            (AnswerGrid("backward", (("dL_dyhat", "dL_dw2", "dL_dh"),)),),
            (AnswerGrid("backward (through ReLU)", (("dL_dz", "dL_dw1"),)),),
        )

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return (
            "Network z = w1·x, h = ReLU(z), y_hat = w2·h, loss L = ½(y_hat − y)². "
            "Do the forward pass, then backpropagate with the chain rule (ReLU'(z) = 0 for z ≤ 0)."
        )

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        x, w1, w2, y = (givens[k] for k in ("x", "w1", "w2", "y"))
        out: dict[str, float] = {"z": pick(overrides, "z", w1 * x)}
        out["h"] = pick(overrides, "h", relu(out["z"]))
        out["y_hat"] = pick(overrides, "y_hat", w2 * out["h"])
        if givens["show_loss"]:
            out["L"] = pick(overrides, "L", 0.5 * (out["y_hat"] - y) ** 2)
        out["dL_dyhat"] = pick(overrides, "dL_dyhat", out["y_hat"] - y)
        out["dL_dw2"] = pick(overrides, "dL_dw2", out["dL_dyhat"] * out["h"])
        out["dL_dh"] = pick(overrides, "dL_dh", out["dL_dyhat"] * w2)
        gate = 1.0 if out["z"] > 0 else 0.0
        out["dL_dz"] = pick(overrides, "dL_dz", out["dL_dh"] * gate)
        out["dL_dw1"] = pick(overrides, "dL_dw1", out["dL_dz"] * x)
        return out

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        return values["dL_dyhat"] != 0
