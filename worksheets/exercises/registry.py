"""The explicit registry of exercise families (no package walking)."""

from __future__ import annotations

from worksheets.errors import ExerciseError
from worksheets.exercises.arithmetic import Arithmetic
from worksheets.exercises.base import ExerciseFamily
from worksheets.exercises.gradients import BackpropChain, GradientDescentStep, MseLoss
from worksheets.exercises.linalg import Conv2d, DotProduct, MatrixMultiply, MatrixVector
from worksheets.exercises.nn import LinearLayer, LinearRelu, Relu, SkipConnection
from worksheets.exercises.softmax import AttentionScores, Softmax

# In teaching order: warm-up arithmetic, linear algebra, layers, softmax, then gradients.
FAMILIES: dict[str, ExerciseFamily] = {
    family.name: family
    for family in (
        Arithmetic(),
        DotProduct(),
        MatrixVector(),
        MatrixMultiply(),
        LinearLayer(),
        Relu(),
        LinearRelu(),
        SkipConnection(),
        Conv2d(),
        Softmax(),
        AttentionScores(),
        MseLoss(),
        GradientDescentStep(),
        BackpropChain(),
    )
}


def get_family(name: str) -> ExerciseFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise ExerciseError(
            f"unknown exercise family {name!r}; run 'papergrade exercises' to list them ({known})"
        ) from None
