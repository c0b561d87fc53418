"""The lone-digit error breakdown's classification (bench/digit_errors.py), without data."""

from __future__ import annotations

from bench.digit_errors import error_kind
from grader.read import Reading


def test_each_wrong_reading_of_a_lone_digit_gets_its_kind() -> None:
    assert error_kind("7", Reading("7", "number", 0.99)) == ""
    assert error_kind("7", Reading("2", "number", 0.99)) == "another digit"
    assert error_kind("7", Reading(None, "crossed_out", 0.8)) == "no value (crossed_out)"
    assert error_kind("1", Reading(None, "blank", 1.0)) == "no value (blank)"
    assert error_kind("4", Reading("41", "number", 0.6)) == "extra or other characters"
    assert error_kind("5", Reading("-5", "number", 0.6)) == "extra or other characters"
