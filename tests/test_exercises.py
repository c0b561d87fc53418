"""Structural checks every exercise family must pass: determinism, the reader's 6-character
limit, a well-formed dependency graph, a printable presentation and JSON-safe givens."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from worksheets.errors import ExerciseError
from worksheets.exercises.base import (
    MAX_ANSWER_CHARS,
    AnswerGrid,
    ExerciseFamily,
    ExerciseInstance,
    GivenGrid,
    format_number,
)
from worksheets.exercises.common import redraw
from worksheets.exercises.registry import FAMILIES, get_family

# Defaults first, then the largest and the smallest settings each family allows: the large
# ones stress the 6-character limit, the small ones the "interesting draw" filters.
PARAM_SETS: dict[str, list[dict[str, Any]]] = {
    "arithmetic": [
        {},
        {"operations": ["mul"], "count": 12, "max_abs": 99},
        {"operations": ["sub"], "count": 1, "max_abs": 2, "negatives": False},
        {"operations": ["add", "sub"], "count": 5, "negatives": False},
    ],
    "dot_product": [
        {},
        {"length": 6, "max_abs": 9},
        {"length": 2, "max_abs": 1, "show_products": False},
    ],
    "matrix_vector": [
        {},
        {"rows": 4, "cols": 4, "max_abs": 9},
        {"rows": 2, "cols": 2, "max_abs": 1},
    ],
    "matrix_multiply": [
        {},
        {"rows": 4, "inner": 4, "cols": 4, "max_abs": 9},
        {"rows": 2, "inner": 3, "cols": 4, "max_abs": 1},
    ],
    "linear_layer": [
        {},
        {"inputs": 4, "outputs": 4, "max_abs": 9, "show_wx": True},
        {"inputs": 2, "outputs": 2, "max_abs": 1, "show_wx": True},
    ],
    "relu": [{}, {"length": 6, "max_abs": 9, "show_derivative": True}, {"length": 2, "max_abs": 1}],
    "linear_relu": [
        {},
        {"inputs": 4, "outputs": 4, "max_abs": 9},
        {"inputs": 2, "outputs": 2, "max_abs": 1},
    ],
    "skip_connection": [{}, {"size": 4, "max_abs": 9}, {"size": 2, "max_abs": 1}],
    "conv2d": [
        {},
        {"height": 5, "width": 5, "max_abs_image": 9, "max_abs_kernel": 5},
        {"height": 3, "width": 5, "max_abs_image": 1, "max_abs_kernel": 1},
    ],
    "softmax": [{}, {"length": 4, "max_abs": 3}, {"length": 2, "max_abs": 1}],
    "attention_scores": [
        {},
        {"keys": 3, "dim": 4, "max_abs": 3},
        {"keys": 2, "dim": 2, "max_abs": 1},
    ],
    "mse_loss": [
        {},
        {"length": 4, "max_abs": 9, "show_errors": False},
        {"length": 2, "max_abs": 1},
    ],
    "gradient_descent_step": [
        {},
        {"max_abs": 5, "learning_rate": 0.05, "show_loss": True},
        {"max_abs": 1, "learning_rate": 1},
        {"learning_rate": 0.01},
    ],
    "backprop_chain": [
        {},
        {"max_abs": 5, "show_loss": True},
        {"max_abs": 1, "allow_dead_relu": False},
    ],
}

# Out-of-range or ill-formed params, one or more per family (unknown keys are tested for all).
BAD_PARAMS: dict[str, list[dict[str, Any]]] = {
    "arithmetic": [{"operations": []}, {"operations": ["div"]}, {"count": 13}, {"max_abs": 1}],
    "dot_product": [{"length": 7}, {"max_abs": 0}, {"length": "three"}],
    "matrix_vector": [{"rows": 5}, {"cols": 1}],
    "matrix_multiply": [{"inner": 5}, {"max_abs": 10}],
    "linear_layer": [{"inputs": 5}, {"outputs": 1}],
    "relu": [{"length": 1}, {"max_abs": 10}],
    "linear_relu": [{"inputs": 1}, {"max_abs": 0}],
    "skip_connection": [{"size": 5}],
    "conv2d": [{"height": 6}, {"width": 2}, {"max_abs_kernel": 6}],
    "softmax": [{"length": 5}, {"max_abs": 4}],
    "attention_scores": [{"keys": 4}, {"dim": 5}, {"max_abs": 4}],
    "mse_loss": [{"length": 5}, {"max_abs": 10}],
    "gradient_descent_step": [{"learning_rate": 0}, {"learning_rate": 2}, {"learning_rate": 0.123}],
    "backprop_chain": [{"max_abs": 6}],
}

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SEEDS = range(200)
MAX_ANSWER_GRID_COLS = 4
MAX_GIVEN_COLS = 6
MAX_ROWS = 4


def cases() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sets in PARAM_SETS.items():
        for params in sets:
            yield name, params


CASES = list(cases())
CASE_IDS = [f"{name}-{i}" for name, sets in PARAM_SETS.items() for i in range(len(sets))]


def make(name: str, params: dict[str, Any], seed: int) -> tuple[ExerciseFamily, ExerciseInstance]:
    family = FAMILIES[name]
    return family, family.generate(family.parse_params(params), np.random.default_rng(seed))


def answer_grids(instance: ExerciseInstance) -> list[AnswerGrid]:
    return [item for row in instance.rows for item in row if isinstance(item, AnswerGrid)]


def test_every_family_has_test_params() -> None:
    assert set(PARAM_SETS) == set(FAMILIES)
    assert set(BAD_PARAMS) == set(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_metadata(name: str) -> None:
    family = get_family(name)
    assert family.name == name
    assert family.title and family.summary and "\n" not in family.summary
    for field_name, info in family.Params.model_fields.items():
        assert info.description, f"{name}.{field_name} needs a description for the CLI"
        assert not info.is_required(), f"{name}.{field_name} needs a default"


def test_unknown_family_is_a_clear_error() -> None:
    with pytest.raises(ExerciseError, match="unknown exercise family"):
        get_family("calculus")


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_same_seed_same_instance(name: str, params: dict[str, Any]) -> None:
    _, first = make(name, params, 1234)
    _, again = make(name, params, 1234)
    assert first == again


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_different_seeds_differ(name: str) -> None:
    givens = [json.dumps(make(name, {}, seed)[1].givens, sort_keys=True) for seed in range(20)]
    assert len(set(givens)) >= 15


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_answers_fit_the_reader(name: str, params: dict[str, Any]) -> None:
    for seed in SEEDS:
        family, instance = make(name, params, seed)
        values = family.solve(instance.givens)
        assert list(values) == instance.field_names()
        for spec in instance.fields:
            assert 0 <= spec.decimals <= 2
            text = format_number(values[spec.name], spec.decimals)
            assert len(text) <= MAX_ANSWER_CHARS, f"seed {seed}: {spec.name} = {text}"


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_dependencies_are_well_formed(name: str, params: dict[str, Any]) -> None:
    for seed in range(20):
        _, instance = make(name, params, seed)
        names = instance.field_names()
        assert len(set(names)) == len(names)
        seen: set[str] = set()
        for spec in instance.fields:
            assert IDENTIFIER.match(spec.name), spec.name
            assert spec.label
            for dep in spec.depends_on:
                assert dep in names, f"{spec.name} depends on unknown {dep}"
                # Listing every field after its dependencies is a topological order, which
                # exists only when the graph has no cycle.
                assert dep in seen, f"{spec.name} is listed before its dependency {dep}"
            seen.add(spec.name)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_presentation_is_printable(name: str, params: dict[str, Any]) -> None:
    for seed in range(20):
        _, instance = make(name, params, seed)
        assert 1 <= len(instance.rows) <= MAX_ROWS
        assert 0 < len(instance.prompt) <= 240
        cells = [c for grid in answer_grids(instance) for row in grid.cells for c in row if c]
        assert sorted(cells) == sorted(instance.field_names()), "each field exactly once"
        for grid in answer_grids(instance):
            assert all(len(row) <= MAX_ANSWER_GRID_COLS for row in grid.cells)
        for row in instance.rows:
            for item in row:
                if isinstance(item, GivenGrid):
                    widths = {len(r) for r in item.values}
                    assert len(widths) == 1 and widths.pop() <= MAX_GIVEN_COLS
                    assert not item.row_labels or len(item.row_labels) == len(item.values)
                    assert not item.col_labels or len(item.col_labels) == len(item.values[0])


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_givens_round_trip_through_json(name: str, params: dict[str, Any]) -> None:
    for seed in range(50):
        family, instance = make(name, params, seed)
        restored = json.loads(json.dumps(instance.givens, allow_nan=False))
        assert restored == instance.givens
        assert family.solve(restored) == family.solve(instance.givens)


def downstream(instance: ExerciseInstance, start: str) -> set[str]:
    """Fields computed, directly or not, from ``start`` according to depends_on."""
    reached = {start}
    for spec in instance.fields:  # fields are in dependency order, so one pass suffices
        if reached.intersection(spec.depends_on):
            reached.add(spec.name)
    return reached


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_overrides_only_move_declared_dependents(name: str, params: dict[str, Any]) -> None:
    """depends_on must be complete: overriding a field changes nothing outside its
    downstream set, and the override itself is kept."""
    for seed in range(10):
        family, instance = make(name, params, seed)
        base = family.solve(instance.givens)
        for spec in instance.fields:
            wrong = base[spec.name] + 3
            moved = family.solve(instance.givens, {spec.name: wrong})
            assert moved[spec.name] == wrong
            allowed = downstream(instance, spec.name)
            changed = {k for k in base if moved[k] != base[k]}
            assert changed <= allowed, f"{spec.name} moved undeclared {changed - allowed}"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_bad_params_raise_validation_error(name: str) -> None:
    family = FAMILIES[name]
    for raw in [{"no_such_param": 1}, *BAD_PARAMS[name]]:
        with pytest.raises(ValidationError):
            family.parse_params(raw)


def test_wrong_params_model_is_refused() -> None:
    params = FAMILIES["softmax"].parse_params({})
    with pytest.raises(ExerciseError):
        FAMILIES["dot_product"].generate(params, np.random.default_rng(0))


def test_redraw_gives_up_with_a_clear_error() -> None:
    with pytest.raises(ExerciseError, match="6 characters"):
        redraw(lambda: 0, lambda _: False, "impossible")


def test_learning_rate_sets_update_decimals() -> None:
    family = FAMILIES["gradient_descent_step"]
    for rate, decimals in [(0.1, 1), (0.05, 2), (1, 0)]:
        _, instance = make("gradient_descent_step", {"learning_rate": rate}, 0)
        by_name = {f.name: f for f in instance.fields}
        assert by_name["w_new"].decimals == decimals
        assert family.solve(instance.givens)["w_new"] == pytest.approx(
            instance.givens["w"] - rate * family.solve(instance.givens)["dL_dw"]
        )


def test_softmax_prompt_states_the_table_convention() -> None:
    _, instance = make("softmax", {}, 0)
    assert "table" in instance.prompt and "2 decimals" in instance.prompt
    table = next(item for row in instance.rows for item in row if isinstance(item, GivenGrid))
    assert table.row_labels == ("x", "e^x")
    assert all(re.fullmatch(r"\d+\.\d\d", v) for v in table.values[1])
