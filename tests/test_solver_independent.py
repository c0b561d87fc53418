"""Every family's solver against a second, independent implementation.

The references below are vectorised numpy float64 formulas written from the maths (W @ x + b,
np.maximum, sliding windows, ...), not from the families' code.  Gradients are also checked
by central finite differences of the loss, and carried-forward answers (overrides) are checked
against the same formulas fed with the overridden value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from tests.test_exercises import CASE_IDS, CASES
from worksheets.exercises.base import ExerciseFamily, ExerciseInstance
from worksheets.exercises.registry import FAMILIES

SEEDS = range(200)
FD_STEP = 1e-3  # the losses are quadratic in each variable, so central differences are exact

Values = dict[str, float]
# A reference returns the expected values and the names of those the family must round to
# the field's decimals (the reference keeps them unrounded).
Reference = tuple[Values, set[str]]


def arr(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def vec(prefix: str, values: np.ndarray) -> Values:
    return {f"{prefix}{i + 1}": float(v) for i, v in enumerate(values)}


def mat(prefix: str, values: np.ndarray) -> Values:
    return {f"{prefix}{i + 1}{j + 1}": float(v) for (i, j), v in np.ndenumerate(values)}


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def checked_table(xs: Any, table: Any) -> dict[float, float]:
    """The printed e^x table as a lookup, after checking it really is e^x to 2 decimals."""
    x, e = arr(xs), arr(table)
    np.testing.assert_allclose(e, np.exp(x), atol=0.005 + 1e-12)
    np.testing.assert_allclose(e * 100, np.round(e * 100), atol=1e-6)
    return dict(zip(x.tolist(), e.tolist(), strict=True))


# --- references -----------------------------------------------------------------------------


def ref_arithmetic(g: Mapping[str, Any]) -> Reference:
    ops = {"add": np.add, "sub": np.subtract, "mul": np.multiply}
    a, b = arr(g["a"]), arr(g["b"])
    r = np.array([ops[op](x, y) for op, x, y in zip(g["ops"], a, b, strict=True)])
    return vec("r", r), set()


def ref_dot(g: Mapping[str, Any]) -> Reference:
    a, b = arr(g["a"]), arr(g["b"])
    out = vec("p", a * b) if g["show_products"] else {}
    out["s"] = float(np.dot(a, b))
    return out, set()


def ref_matvec(g: Mapping[str, Any]) -> Reference:
    return vec("y", arr(g["W"]) @ arr(g["x"])), set()


def ref_matmul(g: Mapping[str, Any]) -> Reference:
    return mat("c", arr(g["A"]) @ arr(g["B"])), set()


def ref_conv(g: Mapping[str, Any]) -> Reference:
    kernel = arr(g["kernel"])
    windows = sliding_window_view(arr(g["image"]), kernel.shape)
    return mat("o", np.einsum("ijkl,kl->ij", windows, kernel)), set()


def ref_linear(g: Mapping[str, Any]) -> Reference:
    wx = arr(g["W"]) @ arr(g["x"])
    out = vec("u", wx) if g["show_wx"] else {}
    out.update(vec("z", wx + arr(g["b"])))
    return out, set()


def ref_relu(g: Mapping[str, Any]) -> Reference:
    z = arr(g["z"])
    out = vec("h", relu(z))
    if g["show_derivative"]:
        out.update(vec("g", np.heaviside(z, 0.0)))
    return out, set()


def ref_linear_relu(g: Mapping[str, Any]) -> Reference:
    z = arr(g["W"]) @ arr(g["x"]) + arr(g["b"])
    return {**vec("z", z), **vec("h", relu(z))}, set()


def ref_skip(g: Mapping[str, Any]) -> Reference:
    x = arr(g["x"])
    z = arr(g["W"]) @ x + arr(g["b"])
    return {**vec("z", z), **vec("r", relu(z)), **vec("h", relu(z) + x)}, set()


def softmax_from(exps: np.ndarray, total: float | None = None) -> tuple[float, np.ndarray]:
    s = float(exps.sum()) if total is None else total
    return s, exps / s


def ref_softmax(g: Mapping[str, Any]) -> Reference:
    table = checked_table(g["x"], g["ex"])
    s, p = softmax_from(np.array([table[v] for v in arr(g["x"]).tolist()]))
    out = {"s": s, **vec("p", p)}
    return out, {k for k in out if k.startswith("p")}


def attention_exps(g: Mapping[str, Any], scores: np.ndarray) -> np.ndarray:
    """e^s from the printed table, or e^s rounded to 2 decimals for a score off the table."""
    table = checked_table(g["table_x"], g["table_e"])
    return np.array([table.get(s, np.round(np.exp(s), 2)) for s in scores.tolist()])


def ref_attention(g: Mapping[str, Any], scores: np.ndarray | None = None) -> Reference:
    s = arr(g["K"]) @ arr(g["q"]) if scores is None else scores
    t, a = softmax_from(attention_exps(g, s))
    out = {**vec("s", s), "t": t, **vec("a", a)}
    return out, {k for k in out if k.startswith("a")}


def ref_mse(g: Mapping[str, Any]) -> Reference:
    e = arr(g["y_hat"]) - arr(g["y"])
    out = vec("e", e) if g["show_errors"] else {}
    out.update(vec("q", e**2))
    out["L"] = float(np.mean(e**2))
    return out, {"L"}


def ref_gradient_step(g: Mapping[str, Any], y_hat: float | None = None) -> Reference:
    x, y, w, b, lr = (float(g[k]) for k in ("x", "y", "w", "b", "lr"))
    pred = w * x + b if y_hat is None else y_hat
    grad = pred - y
    out = {"y_hat": pred, "dL_dyhat": grad, "dL_dw": grad * x, "dL_db": grad,
           "w_new": w - lr * grad * x, "b_new": b - lr * grad}
    if g["show_loss"]:
        out["L"] = 0.5 * grad**2
    return out, set()


def ref_backprop(g: Mapping[str, Any], z: float | None = None) -> Reference:
    x, w1, w2, y = (float(g[k]) for k in ("x", "w1", "w2", "y"))
    pre = w1 * x if z is None else z
    h = max(pre, 0.0)
    y_hat = w2 * h
    d_yhat = y_hat - y
    d_h = d_yhat * w2
    d_z = d_h * float(np.heaviside(pre, 0.0))
    out = {"z": pre, "h": h, "y_hat": y_hat, "dL_dyhat": d_yhat, "dL_dw2": d_yhat * h,
           "dL_dh": d_h, "dL_dz": d_z, "dL_dw1": d_z * x}
    if g["show_loss"]:
        out["L"] = 0.5 * d_yhat**2
    return out, set()


REFERENCES: dict[str, Callable[[Mapping[str, Any]], Reference]] = {
    "arithmetic": ref_arithmetic,
    "dot_product": ref_dot,
    "matrix_vector": ref_matvec,
    "matrix_multiply": ref_matmul,
    "conv2d": ref_conv,
    "linear_layer": ref_linear,
    "relu": ref_relu,
    "linear_relu": ref_linear_relu,
    "skip_connection": ref_skip,
    "softmax": ref_softmax,
    "attention_scores": ref_attention,
    "mse_loss": ref_mse,
    "gradient_descent_step": ref_gradient_step,
    "backprop_chain": ref_backprop,
}


# --- comparison -----------------------------------------------------------------------------


def assert_matches(
    instance: ExerciseInstance, got: Mapping[str, float], want: Values, rounded: set[str]
) -> None:
    decimals = {f.name: f.decimals for f in instance.fields}
    for name, value in want.items():
        if name in rounded:
            # Rounded to the field's decimals: within half a unit, and on that grid.
            unit = 10.0 ** -decimals[name]
            assert abs(got[name] - value) <= unit / 2 + 1e-9, (name, got[name], value)
            steps = got[name] / unit
            assert abs(steps - round(steps)) < 1e-6, (name, got[name])
        else:
            assert got[name] == pytest.approx(value, abs=1e-9), (name, got[name], value)


def generate(
    name: str, params: dict[str, Any], seed: int
) -> tuple[ExerciseFamily, ExerciseInstance]:
    family = FAMILIES[name]
    return family, family.generate(family.parse_params(params), np.random.default_rng(seed))


def test_every_family_has_a_reference() -> None:
    assert set(REFERENCES) == set(FAMILIES)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_solver_matches_reference(name: str, params: dict[str, Any]) -> None:
    for seed in SEEDS:
        family, instance = generate(name, params, seed)
        got = family.solve(instance.givens)
        want, rounded = REFERENCES[name](instance.givens)
        assert set(got) == set(want), f"seed {seed}"
        assert_matches(instance, got, want, rounded)


# --- gradients by finite differences ----------------------------------------------------------


def central(f: Callable[[float], float], at: float) -> float:
    return (f(at + FD_STEP) - f(at - FD_STEP)) / (2 * FD_STEP)


def assert_gradient(got: float, f: Callable[[float], float], at: float) -> None:
    assert got == pytest.approx(central(f, at), rel=1e-7, abs=1e-6)


def check_gradient_step(givens: Mapping[str, Any], got: Values) -> None:
    x, y, w, b, lr = (float(givens[k]) for k in ("x", "y", "w", "b", "lr"))

    def loss(w_: float, b_: float) -> float:
        return 0.5 * (w_ * x + b_ - y) ** 2

    assert_gradient(got["dL_dyhat"], lambda p: 0.5 * (p - y) ** 2, w * x + b)
    assert_gradient(got["dL_dw"], lambda v: loss(v, b), w)
    assert_gradient(got["dL_db"], lambda v: loss(w, v), b)
    assert got["w_new"] == pytest.approx(w - lr * central(lambda v: loss(v, b), w), abs=1e-6)
    assert got["b_new"] == pytest.approx(b - lr * central(lambda v: loss(w, v), b), abs=1e-6)
    # The loss along the step is ½g²(1 - lr(x² + 1))², so a step with lr(x² + 1) <= 2
    # must not increase it.
    if lr * (x * x + 1) <= 2:
        assert loss(got["w_new"], got["b_new"]) <= loss(w, b) + 1e-9


def check_backprop(givens: Mapping[str, Any], got: Values) -> None:
    x, w1, w2, y = (float(givens[k]) for k in ("x", "w1", "w2", "y"))

    def loss(w1_: float, w2_: float) -> float:
        return 0.5 * (w2_ * max(w1_ * x, 0.0) - y) ** 2

    z = w1 * x  # never 0: x and w1 are drawn non-zero, so ReLU is differentiable here
    assert_gradient(got["dL_dw1"], lambda v: loss(v, w2), w1)
    assert_gradient(got["dL_dw2"], lambda v: loss(w1, v), w2)
    assert_gradient(got["dL_dz"], lambda v: 0.5 * (w2 * max(v, 0.0) - y) ** 2, z)
    assert_gradient(got["dL_dh"], lambda v: 0.5 * (w2 * v - y) ** 2, max(z, 0.0))
    assert_gradient(got["dL_dyhat"], lambda v: 0.5 * (v - y) ** 2, w2 * max(z, 0.0))


@pytest.mark.parametrize("params", [{}, {"max_abs": 5, "learning_rate": 0.05}])
def test_gradient_step_gradients_by_finite_differences(params: dict[str, Any]) -> None:
    for seed in SEEDS:
        family, instance = generate("gradient_descent_step", params, seed)
        check_gradient_step(instance.givens, family.solve(instance.givens))


@pytest.mark.parametrize("params", [{}, {"max_abs": 5}])
def test_backprop_gradients_by_finite_differences(params: dict[str, Any]) -> None:
    for seed in SEEDS:
        family, instance = generate("backprop_chain", params, seed)
        check_backprop(instance.givens, family.solve(instance.givens))


def test_relu_derivative_by_finite_differences() -> None:
    for seed in SEEDS:
        family, instance = generate("relu", {"length": 6, "show_derivative": True}, seed)
        got = family.solve(instance.givens)
        for i, z in enumerate(instance.givens["z"]):
            assert_gradient(got[f"g{i + 1}"], lambda v: max(v, 0.0), float(z))


# --- carried-forward answers ------------------------------------------------------------------

# Each case takes the givens and the correct values and returns overrides plus what the
# independent formulas say the downstream fields must then be.
OverrideCase = Callable[[Mapping[str, Any], Values], tuple[Values, Values, set[str]]]


def flip(value: float) -> float:
    """A wrong value on the other side of 0, so a following ReLU changes its mind."""
    return -value if value > 0 else 2.0 - value


def ecf_dot(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    products = arr(g["a"]) * arr(g["b"])
    return {"p1": base["p1"] + 5}, {"s": float(products.sum() + 5)}, set()


def ecf_linear(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    b = arr(g["b"])
    return {"u1": base["u1"] - 4}, {"z1": base["u1"] - 4 + b[0], "z2": base["z2"]}, set()


def ecf_linear_relu(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    z1 = flip(base["z1"])
    return {"z1": z1}, {"h1": float(relu(arr(z1))), "h2": base["h2"]}, set()


def ecf_skip(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    x = arr(g["x"])
    z1, r2 = flip(base["z1"]), base["r2"] + 7
    want = {"r1": float(relu(arr(z1))), "h1": float(relu(arr(z1)) + x[0]), "h2": r2 + x[1]}
    return {"z1": z1, "r2": r2}, want, set()


def ecf_softmax(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    s = base["s"] + 1.23
    _, p = softmax_from(arr(g["ex"]), s)
    return {"s": s}, vec("p", p), set(vec("p", p))


def ecf_attention(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    scores = arr([base[f"s{j + 1}"] for j in range(len(g["K"]))])
    scores[0] += 1  # may leave the printed table; then e^s is computed and rounded
    want, rounded = ref_attention(g, scores)
    want.pop("s1")
    return {"s1": float(scores[0])}, want, rounded


def ecf_mse(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    e = arr(g["y_hat"]) - arr(g["y"])
    if g["show_errors"]:
        e[0] += 2
        return {"e1": float(e[0])}, {"q1": float(e[0] ** 2), "L": float(np.mean(e**2))}, {"L"}
    squares = e**2
    squares[0] += 3
    return {"q1": float(squares[0])}, {"L": float(np.mean(squares))}, {"L"}


def ecf_gradient_step(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    want, _ = ref_gradient_step(g, y_hat=base["y_hat"] + 2)
    return {"y_hat": want.pop("y_hat")}, want, set()


def ecf_gradient_update(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    grad = base["dL_dw"] + 10
    want = {"w_new": float(g["w"]) - float(g["lr"]) * grad, "b_new": base["b_new"]}
    return {"dL_dw": grad}, want, set()


def ecf_backprop(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    want, _ = ref_backprop(g, z=flip(base["z"]))
    return {"z": want.pop("z")}, want, set()


def ecf_backprop_inner(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
    d_h = base["dL_dh"] + 5
    d_z = d_h * float(np.heaviside(base["z"], 0.0))
    want = {"dL_dz": d_z, "dL_dw1": d_z * float(g["x"]), "dL_dw2": base["dL_dw2"]}
    return {"dL_dh": d_h}, want, set()


def ecf_leaf(first: str) -> OverrideCase:
    """Families without dependencies: the override stays, everything else is unchanged."""

    def case(g: Mapping[str, Any], base: Values) -> tuple[Values, Values, set[str]]:
        want = {k: v for k, v in base.items() if k != first}
        return {first: base[first] - 11}, want, set()

    return case


OVERRIDE_CASES: dict[str, list[tuple[dict[str, Any], OverrideCase]]] = {
    "arithmetic": [({}, ecf_leaf("r1"))],
    "dot_product": [({}, ecf_dot), ({"length": 6, "max_abs": 9}, ecf_dot)],
    "matrix_vector": [({}, ecf_leaf("y1"))],
    "matrix_multiply": [({}, ecf_leaf("c11"))],
    "conv2d": [({}, ecf_leaf("o11"))],
    "linear_layer": [({"show_wx": True}, ecf_linear)],
    "relu": [({"show_derivative": True}, ecf_leaf("h1"))],
    "linear_relu": [({}, ecf_linear_relu)],
    "skip_connection": [({}, ecf_skip)],
    "softmax": [({}, ecf_softmax), ({"length": 4, "max_abs": 3}, ecf_softmax)],
    "attention_scores": [({}, ecf_attention)],
    "mse_loss": [({}, ecf_mse), ({"show_errors": False}, ecf_mse)],
    "gradient_descent_step": [
        ({"show_loss": True}, ecf_gradient_step),
        ({"learning_rate": 0.05}, ecf_gradient_update),
    ],
    "backprop_chain": [({"show_loss": True}, ecf_backprop), ({}, ecf_backprop_inner)],
}

OVERRIDE_PARAMS = [
    (name, params, case) for name, cases in OVERRIDE_CASES.items() for params, case in cases
]
OVERRIDE_IDS = [f"{name}-{case.__name__}-{i}" for i, (name, _, case) in enumerate(OVERRIDE_PARAMS)]


def test_every_family_has_an_override_case() -> None:
    assert set(OVERRIDE_CASES) == set(FAMILIES)


@pytest.mark.parametrize(("name", "params", "case"), OVERRIDE_PARAMS, ids=OVERRIDE_IDS)
def test_overrides_carry_forward(name: str, params: dict[str, Any], case: OverrideCase) -> None:
    for seed in SEEDS:
        family, instance = generate(name, params, seed)
        base = family.solve(instance.givens)
        overrides, want, rounded = case(instance.givens, base)
        got = family.solve(instance.givens, overrides)
        for key, value in overrides.items():
            assert got[key] == value
        assert_matches(instance, got, want, rounded)


def test_softmax_sum_of_zero_falls_back_to_the_true_sum() -> None:
    family, instance = generate("softmax", {}, 0)
    base = family.solve(instance.givens)
    assert family.solve(instance.givens, {"s": 0.0}) == {**base, "s": 0.0}
