"""The sharp-capture calibration's threshold choice (bench/capture_threshold.py)."""

from __future__ import annotations

import numpy as np

from bench.capture_threshold import lowest_safe_threshold


def test_the_lowest_threshold_within_the_target_is_chosen() -> None:
    # 1000 readings: one wrong at 0.99, one at 0.5; the rest right, from 0.3 up.
    confidence = np.linspace(0.3, 0.999, 1000)
    exact = np.ones(1000, dtype=bool)
    exact[np.argmin(np.abs(confidence - 0.99))] = False
    exact[np.argmin(np.abs(confidence - 0.5))] = False
    # At 1 in 500, both errors fit among all 1000 readings: accept everything.
    assert lowest_safe_threshold(confidence, exact, 1 / 500) == confidence.min()
    # At 1 in 600 both do not fit (2 in 1000); just above the one at 0.5, one in ~714 does.
    strict = lowest_safe_threshold(confidence, exact, 1 / 600)
    accepted = confidence >= strict
    assert 0.5 < strict < 0.51 and int((~exact[accepted]).sum()) == 1
    # At 1 in 100 000 no error fits at all: only readings above the one at 0.99 are kept.
    assert lowest_safe_threshold(confidence, exact, 1e-5) > 0.99


def test_readings_of_equal_confidence_are_accepted_or_doubted_together() -> None:
    confidence = np.array([0.9, 0.9, 0.8, 0.7])
    exact = np.array([True, False, True, True])
    # Accepting the right 0.9 alone is not a threshold anyone can set.
    assert lowest_safe_threshold(confidence, exact, 0.0) == 1.0
    assert lowest_safe_threshold(confidence, exact, 0.5) == 0.7
