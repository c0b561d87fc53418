"""How the reader benchmarks sort their fields (bench/digit_errors.py's kinds of error on lone
digits, bench/reader.py's breakdown by length and its decimal marks), without data."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from bench.digit_errors import digit_summary, error_kind, glyph_edits
from bench.reader import by_length, decimal_mark_tier, decimal_texts, digit_count
from grader import handwriting as hw
from grader.read import Capture, Reader, Reading
from training.synth import FieldSample


def test_each_wrong_reading_of_a_lone_digit_gets_its_kind() -> None:
    assert error_kind("7", Reading("7", "number", 0.99)) == ""
    assert error_kind("7", Reading("2", "number", 0.99)) == "another digit"
    assert error_kind("7", Reading(None, "crossed_out", 0.8)) == "no value (crossed_out)"
    assert error_kind("1", Reading(None, "blank", 1.0)) == "no value (blank)"
    assert error_kind("4", Reading("41", "number", 0.6)) == "extra or other characters"
    assert error_kind("5", Reading("-5", "number", 0.6)) == "extra or other characters"


def test_the_summary_of_one_digit_counts_its_misses_of_that_status() -> None:
    labels = ["7", "7", "7", "7", "1"]
    kinds = ["", "no value (crossed_out)", "another digit", "", "no value (crossed_out)"]
    assert (digit_summary(labels, kinds, "7", "sevens", "crossed_out")
            == "  sevens: 4, 50.00 % read right, 1 called crossed out")


def test_the_stress_edits_change_only_the_digit_they_are_for() -> None:
    assert glyph_edits(0, bar_sevens=False, thin_ones=False) is None
    glyph = np.zeros((28, 28), np.float32)
    cv2.line(glyph, (8, 5), (20, 5), 1.0, 3)  # a seven's top and a stem four pixels wide
    glyph[5:24, 12:16] = 1.0
    sevens, ones = glyph_edits(0, True, False), glyph_edits(0, False, True)
    assert sevens is not None and ones is not None
    assert not np.array_equal(sevens("7", glyph, 0), glyph)
    assert np.array_equal(sevens("1", glyph, 0), glyph)
    thinned = ones("1", glyph, 0)
    assert (thinned > 0.5).sum() < (glyph > 0.5).sum()
    assert np.array_equal(ones("7", glyph, 0), glyph) and np.array_equal(ones("4", glyph, 0), glyph)


def test_fields_are_counted_by_the_digits_of_the_number_written() -> None:
    blank = np.zeros((4, 4), dtype=np.uint8)
    samples = [FieldSample(blank, "number", "-0.25"), FieldSample(blank, "number", "125"),
               FieldSample(blank, "number", "7"), FieldSample(blank, "blank", "")]
    readings = [Reading("-0.25", "number", 0.7, needs_review=True),
                Reading("126", "number", 0.99), Reading("1", "number", 0.5, needs_review=True),
                Reading(None, "blank", 1.0)]
    assert digit_count("-0.25") == 3 and digit_count("7") == 1
    rows = {row["digits"]: row for row in by_length(samples, readings)}
    assert sorted(rows) == [1, 3]
    assert rows[3] == {"digits": 3, "fields": 2, "exact": 1, "reviewed": 1,
                       "reviewed_misread": 0, "accepted_misread": 1}
    assert rows[1] == {"digits": 1, "fields": 1, "exact": 0, "reviewed": 1,
                       "reviewed_misread": 1, "accepted_misread": 0}


class ScriptedReader(Reader):
    """Reads the n-th crop as ``texts[n]`` (no network), sure of it unless n is in
    ``doubted``: the tally alone is tested."""

    def __init__(self, texts: list[str], doubted: set[int]) -> None:
        self.texts, self.doubted, self.crops_read = texts, doubted, 0

    def read_batch(
        self, crops: Sequence[np.ndarray], capture: Capture | None = None
    ) -> list[Reading]:
        first = self.crops_read
        self.crops_read += len(crops)
        return [Reading(self.texts[n], "number", 0.99, needs_review=n in self.doubted)
                for n in range(first, self.crops_read)]


def test_the_decimal_tier_writes_each_number_with_a_point_and_a_comma() -> None:
    texts = decimal_texts(4, seed=3)
    assert all("." in t for t in texts) and texts == decimal_texts(4, seed=3)
    # Read right with the point; with the comma, the first number loses its decimal mark;
    # with the tailed point, the second is sent to review.
    readings = [*texts, texts[0].replace(".", ""), *texts[1:], *texts]
    glyphs = hw.StrokeGlyphs()
    marks = decimal_mark_tier(ScriptedReader(readings, {9}), glyphs, 4, seed=3)  # type: ignore[arg-type]
    assert marks["point"] == {"fields": 4.0, "exact": 1.0, "review": 0.0, "accepted_misreads": 0.0}
    assert marks["comma"] == {"fields": 4.0, "exact": 0.75, "review": 0.0, "accepted_misreads": 1.0}
    assert marks["tailed point"]["review"] == 0.25 and marks["tailed point"]["exact"] == 1.0
