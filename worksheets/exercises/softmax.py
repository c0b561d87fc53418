"""Softmax families made hand-computable with a printed table of e^x.

Convention (stated in each prompt): the sheet prints e^x rounded to 2 decimals; students add
the table values and divide, rounding each probability to 2 decimals.  Expected answers are
computed from the rounded table values, never from exact exponentials, so a student who
follows the sheet gets exactly the key.
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
    Tolerance,
    nonzero_ints,
    pick,
    round_half_away,
)
from worksheets.exercises.common import (
    DrawnFamily,
    Row,
    exp_table_value,
    int_grid,
    ints,
    names,
    number_text,
    row_vector,
)

# The sum of table values is exact, but a student who uses more digits of e^x than the table
# drifts by up to 0.005 per term; 0.02 covers four terms.
SUM_TOLERANCE = Tolerance("absolute", 0.02)
# A probability rounded to 2 decimals may differ by one unit in the last place when the
# student rounds the sum or the quotient a little differently.
PROB_TOLERANCE = Tolerance("absolute", 0.01)


def divide(numerator: float, total: float, fallback: float) -> float:
    """numerator / total, rounded as taught.

    A carried-forward total of 0 cannot be divided by, so the correct total is used instead
    (no follow-through credit is possible).  If that is 0 too (only scores far below the
    table, all rounding to e^x = 0.00, get there) every share is taken as 0.
    """
    divisor = total if total != 0 else fallback
    return round_half_away(numerator / divisor, 2) if divisor != 0 else 0.0


def table_sum(values: list[float]) -> float:
    # Table values have 2 decimals, so rounding to 2 only removes float noise.
    return round(sum(values), 2)


class SoftmaxParams(FamilyParams):
    length: int = Field(3, ge=2, le=4, description="number of logits")
    max_abs: int = Field(2, ge=1, le=3, description="largest absolute value of a logit")


class Softmax(DrawnFamily):
    name = "softmax"
    title = "Softmax"
    summary = "softmax of small integer logits, using a printed table of e^x (2 decimals)"
    Params = SoftmaxParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, SoftmaxParams)
        x = ints(rng, -params.max_abs, params.max_abs, params.length)
        return {"x": x, "ex": [exp_table_value(v) for v in x]}

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        ps = names("p", len(givens["x"]))
        return (
            FieldSpec("s", "sum of e^x", decimals=2, tolerance=SUM_TOLERANCE),
            *(FieldSpec(p, p, decimals=2, depends_on=("s",), tolerance=PROB_TOLERANCE)
              for p in ps),
        )

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        table = (tuple(str(v) for v in givens["x"]), tuple(number_text(e, 2) for e in givens["ex"]))
        return (
            (GivenGrid("logits and their e^x", table, row_labels=("x", "e^x")),),
            (AnswerGrid("sum", (("s",),)),),
            (AnswerGrid("softmax p_i = e^x_i / sum", (tuple(names("p", len(givens["x"]))),)),),
        )

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return (
            "Use the e^x values printed in the table (already rounded to 2 decimals): "
            "add them up, then write each p_i = e^x_i / sum rounded to 2 decimals."
        )

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        table = [float(e) for e in givens["ex"]]
        true_sum = table_sum(table)
        out = {"s": pick(overrides, "s", true_sum)}
        for i, e in enumerate(table):
            out[f"p{i + 1}"] = pick(overrides, f"p{i + 1}", divide(e, out["s"], true_sum))
        return out

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        return len(set(givens["x"])) > 1  # equal logits give a dull uniform answer


# Attention scores stay within the e^x table's reach: e^4 = 54.60 keeps the sum of three
# terms under 6 characters, and a 6-column table covers any spread up to 5.
SCORE_MIN, SCORE_MAX = -4, 4
TABLE_COLUMNS = 6
TABLE_LOW_MAX = 0  # the table never starts above 0, so it always shows e^0 = 1


def table_window(scores: list[int], rng: np.random.Generator) -> list[int]:
    """Consecutive integers holding every score, placed at random so the table's first
    column gives nothing away."""
    low = max(SCORE_MIN, max(scores) - TABLE_COLUMNS + 1)
    high = min(min(scores), TABLE_LOW_MAX)
    start = int(rng.integers(low, high + 1)) if low <= high else SCORE_MIN
    return list(range(start, start + TABLE_COLUMNS))


def lookup(value: float, xs: list[int], table: list[float]) -> float:
    """e^value from the printed table, or computed the same way for a value off the table
    (a carried-forward wrong score).  Huge wrong scores are capped so exp cannot overflow."""
    if value in xs:
        return float(table[xs.index(int(value))])
    return exp_table_value(min(value, 50.0))


class AttentionParams(FamilyParams):
    keys: int = Field(3, ge=2, le=3, description="number of keys (scores and weights)")
    dim: int = Field(2, ge=2, le=4, description="entries of the query and of each key")
    max_abs: int = Field(2, ge=1, le=3, description="largest absolute value of an entry")


class AttentionScores(DrawnFamily):
    name = "attention_scores"
    title = "Attention weights"
    summary = "scores q·k_j, then their softmax using a printed e^x table"
    Params = AttentionParams

    def draw(self, params: FamilyParams, rng: np.random.Generator) -> dict[str, Any]:
        assert isinstance(params, AttentionParams)
        m = params.max_abs
        q = nonzero_ints(rng, -m, m, params.dim)
        keys = [ints(rng, -m, m, params.dim) for _ in range(params.keys)]
        scores = [sum(a * b for a, b in zip(q, k, strict=True)) for k in keys]
        xs = table_window(scores, rng)
        return {"q": q, "K": keys, "table_x": xs, "table_e": [exp_table_value(v) for v in xs]}

    def fields(self, givens: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
        scores = names("s", len(givens["K"]))
        weights = [
            FieldSpec(f"a{j + 1}", f"a{j + 1}", decimals=2, depends_on=(s, "t"),
                      tolerance=PROB_TOLERANCE)
            for j, s in enumerate(scores)
        ]
        return (
            *(FieldSpec(s, f"q·k{s[1:]}") for s in scores),
            FieldSpec("t", "sum of e^s", decimals=2, depends_on=tuple(scores),
                      tolerance=SUM_TOLERANCE),
            *weights,
        )

    def rows(self, givens: Mapping[str, Any]) -> tuple[Row, ...]:
        n = len(givens["K"])
        table = (tuple(str(v) for v in givens["table_x"]),
                 tuple(number_text(e, 2) for e in givens["table_e"]))
        return (
            (GivenGrid("query q", row_vector(givens["q"])),
             GivenGrid("keys", int_grid(givens["K"]), row_labels=tuple(names("k", n)))),
            (GivenGrid("e^x table", table, row_labels=("x", "e^x")),),
            (AnswerGrid("scores s_j = q·k_j", (tuple(names("s", n)),)),
             AnswerGrid("sum", (("t",),))),
            (AnswerGrid("weights a_j = e^s_j / sum", (tuple(names("a", n)),)),),
        )

    def prompt(self, givens: Mapping[str, Any]) -> str:
        return (
            "Score each key by s_j = q·k_j (no scaling). Then take the softmax of the scores "
            "with the e^x table (2 decimals): add e^s_j, and write each weight e^s_j / sum "
            "rounded to 2 decimals."
        )

    def solve(
        self, givens: Mapping[str, Any], overrides: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        q, xs, table = givens["q"], givens["table_x"], givens["table_e"]
        out: dict[str, float] = {}
        for j, k in enumerate(givens["K"]):
            out[f"s{j + 1}"] = pick(overrides, f"s{j + 1}",
                                    sum(a * b for a, b in zip(q, k, strict=True)))
        exps = [lookup(out[f"s{j + 1}"], xs, table) for j in range(len(givens["K"]))]
        computed = table_sum(exps)
        out["t"] = pick(overrides, "t", computed)
        for j, e in enumerate(exps):
            out[f"a{j + 1}"] = pick(overrides, f"a{j + 1}", divide(e, out["t"], computed))
        return out

    def accept(self, givens: Mapping[str, Any], values: Mapping[str, float]) -> bool:
        scores = [int(values[f"s{j + 1}"]) for j in range(len(givens["K"]))]
        in_range = min(scores) >= SCORE_MIN and max(scores) <= SCORE_MAX
        on_table = all(s in givens["table_x"] for s in scores)
        return in_range and on_table and len(set(scores)) > 1
