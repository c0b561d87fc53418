"""Synthetic handwriting: glyph sources, number composition and the marks around numbers."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest

from grader import handwriting as hw

needs_data = pytest.mark.skipif(
    not (hw.default_data_dir() / "mnist").is_dir(),
    reason=f"training data not found at {hw.default_data_dir()} (set PAPERGRADE_DATA_DIR)",
)


def _ink_columns(ink: np.ndarray) -> int:
    return int((ink.max(axis=0) > 0.3).sum())


@pytest.mark.parametrize("char", list(hw.ALPHABET + hw.DECIMAL_COMMA))
def test_stroke_glyphs_draw_every_character(char: str) -> None:
    rng = np.random.default_rng(1)
    glyph = hw.StrokeGlyphs().glyph(char, rng)
    assert glyph.shape == (28, 28)
    assert glyph.dtype == np.float32
    assert glyph.min() >= 0.0 and glyph.max() <= 1.0
    assert glyph.max() > 0.5


def test_a_decimal_comma_hangs_below_the_baseline_where_a_point_sits_on_it() -> None:
    """Written large in a tall canvas, the comma's ink reaches lower than the digits'."""
    lowest = {}
    for mark in hw.DECIMAL_MARKS:
        depths = []
        for i in range(8):
            style = hw.random_style(np.random.default_rng([11, i]), 60.0)
            ink = hw.compose_number(f"4{mark}7", hw.StrokeGlyphs(), np.random.default_rng([12, i]),
                                    height_px=200, style=style)
            rows = np.flatnonzero(ink.max(axis=1) > 0.3)
            digit_rows = np.flatnonzero(ink[:, : ink.shape[1] // 3].max(axis=1) > 0.3)
            depths.append(rows[-1] - digit_rows[-1])
        lowest[mark] = np.median(depths)
    assert lowest[","] - lowest["."] >= 5  # pixels, the digits 60 high


def test_stroke_glyphs_are_reproducible_and_varied() -> None:
    source = hw.StrokeGlyphs()
    a = source.glyph("5", np.random.default_rng(7))
    b = source.glyph("5", np.random.default_rng(7))
    c = source.glyph("5", np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_stroke_glyphs_draw_what_earlier_models_were_trained_on() -> None:
    """Adding a character must not change the random stream of the others: their sums of
    ink, seed 7, as drawn before the decimal comma existed."""
    rng = np.random.default_rng(7)
    sums = [float(hw.StrokeGlyphs().glyph(c, rng).sum()) for c in "5.-0"]
    assert sums == pytest.approx([104.6157, 22.7804, 24.6706, 84.1608], abs=1e-3)


def test_stroke_glyphs_reject_unknown_characters() -> None:
    with pytest.raises(ValueError, match="alphabet"):
        hw.StrokeGlyphs().glyph("x", np.random.default_rng(0))


def test_compose_number_shape_and_range() -> None:
    rng = np.random.default_rng(3)
    ink = hw.compose_number("-12.5", hw.StrokeGlyphs(), rng, height_px=60)
    assert ink.dtype == np.float32
    assert ink.shape[0] == 60
    assert ink.shape[1] > 60  # five characters are wider than tall
    assert ink.min() >= 0.0 and ink.max() <= 1.0

    fixed = hw.compose_number("7", hw.StrokeGlyphs(), rng, height_px=60, width_px=150)
    assert fixed.shape == (60, 150)


def test_compose_number_fits_long_numbers_into_a_fixed_width() -> None:
    rng = np.random.default_rng(4)
    ink = hw.compose_number("888888", hw.StrokeGlyphs(), rng, height_px=40, width_px=60)
    assert ink.shape == (40, 60)
    assert ink.max() > 0.5


def test_compose_number_is_reproducible() -> None:
    a = hw.compose_number("3.14", hw.StrokeGlyphs(), np.random.default_rng(5), 50)
    b = hw.compose_number("3.14", hw.StrokeGlyphs(), np.random.default_rng(5), 50)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("text", ["11", "10", "01", "111", "71"])
def test_touching_characters_never_hide_one_another(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer who overlaps characters by 40 % of the digit height would bury a "1" under its
    neighbour; no character may start more than MAX_OVERLAP of the narrower one inside the
    character before it."""
    placed: list[list[tuple[np.ndarray, float, float]]] = []
    assemble = hw._assemble

    def spy(pieces: list[tuple[np.ndarray, float, float]], *args: object) -> np.ndarray:
        placed.append(list(pieces))
        return assemble(pieces, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(hw, "_assemble", spy)
    crowded = hw.Style(digit_height=40, gap=-0.4, gap_spread=0.0, slant=0.0, aspect=1.0,
                       wobble=0.0, thickness=0)
    for seed in range(10):
        hw.compose_number(text, hw.StrokeGlyphs(), np.random.default_rng(seed), 64,
                          style=crowded)
    for pieces in placed:
        for (before, x0, _), (after, x1, _) in itertools.pairwise(pieces):
            overlap = x0 + before.shape[1] - x1
            narrower = min(before.shape[1], after.shape[1])
            assert overlap <= hw.MAX_OVERLAP * narrower + 1e-6


def test_decimal_point_is_small_and_low_and_minus_is_mid_height() -> None:
    rng = np.random.default_rng(6)
    style = hw.Style(
        digit_height=40, gap=0.3, gap_spread=0.0, slant=0.0, aspect=1.0, wobble=0.0, thickness=0
    )
    ink = hw.compose_number("1.", hw.StrokeGlyphs(), rng, height_px=80, style=style)
    rows = np.nonzero(ink.max(axis=1) > 0.3)[0]
    cols = np.nonzero(ink.max(axis=0) > 0.3)[0]
    right = ink[:, cols[-1] - 3 :]  # the dot is the rightmost ink
    dot_rows = np.nonzero(right.max(axis=1) > 0.3)[0]
    assert dot_rows.min() > rows.min() + 0.6 * (rows.max() - rows.min())

    minus = hw.compose_number("-1", hw.StrokeGlyphs(), rng, height_px=80, style=style)
    rows = np.nonzero(minus.max(axis=1) > 0.3)[0]
    left = minus[:, : np.nonzero(minus.max(axis=0) > 0.3)[0][0] + 3]
    minus_rows = np.nonzero(left.max(axis=1) > 0.3)[0]
    middle = (rows.min() + rows.max()) / 2
    assert abs(minus_rows.mean() - middle) < 0.3 * (rows.max() - rows.min())


def test_cross_out_adds_ink_across_the_number() -> None:
    rng = np.random.default_rng(8)
    ink = hw.compose_number("42", hw.StrokeGlyphs(), rng, height_px=60, width_px=160)
    crossed = hw.cross_out(ink, rng)
    assert crossed.shape == ink.shape
    assert crossed.sum() > ink.sum() * 1.1
    assert _ink_columns(crossed) >= _ink_columns(ink)


def test_erased_ink_is_faint() -> None:
    rng = np.random.default_rng(9)
    ink = hw.erased_ink("25", hw.StrokeGlyphs(), rng, 60, 160)
    assert ink.shape == (60, 160)
    assert ink.max() < 0.5


def test_draw_ink_darkens_paper_where_ink_is() -> None:
    rng = np.random.default_rng(10)
    page = hw.paper(50, 80, rng)
    assert page.dtype == np.uint8 and page.min() > 150
    ink = np.zeros((20, 20), dtype=np.float32)
    ink[5:15, 5:15] = 1.0
    out = hw.draw_ink(page, ink, rng, x=70, y=40, darkness=0.8)  # partly off the page
    assert out.shape == page.shape and out.dtype == np.uint8
    assert out[45:50, 75:80].mean() < 0.4 * page[45:50, 75:80].mean()
    assert np.array_equal(out[:40], page[:40])


def test_random_answers_use_the_alphabet_and_fit_the_box() -> None:
    rng = np.random.default_rng(11)
    for text in hw.sample_texts(rng, 300):
        assert 1 <= len(text) <= 6
        assert set(text) <= set(hw.ALPHABET)
        assert "-" not in text[1:]
        assert text.count(".") <= 1 and not text.endswith(".")


def test_load_idx_reads_gzip_and_raw(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (2, 3, 4))
    raw = tmp_path / "x-idx3-ubyte"
    raw.write_bytes(header + images.tobytes())
    gz = tmp_path / "x-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(header + images.tobytes()))
    assert np.array_equal(hw.load_idx(raw), images)
    assert np.array_equal(hw.load_idx(gz), images)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x00\x07" + bytes(8))
    with pytest.raises(ValueError, match="IDX"):
        hw.load_idx(tmp_path / "bad")


def test_default_data_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERGRADE_DATA_DIR", "/somewhere/else")
    assert hw.default_data_dir() == Path("/somewhere/else")
    monkeypatch.delenv("PAPERGRADE_DATA_DIR")
    assert hw.default_data_dir().parts[-2:] == ("shared", "data")


@needs_data
@pytest.mark.needs_data
def test_mnist_splits_are_disjoint_and_complete() -> None:
    train = hw.MnistGlyphs(split="train")
    val = hw.MnistGlyphs(split="val")
    test = hw.MnistGlyphs(split="test")
    n_train = sum(len(train.images(d)) for d in hw.DIGITS)
    n_val = sum(len(val.images(d)) for d in hw.DIGITS)
    assert n_train + n_val == 60000
    assert sum(len(test.images(d)) for d in hw.DIGITS) == 10000
    assert len(train.images("-")) == 800 and len(test.images(".")) == 101
    glyph = test.glyph("7", np.random.default_rng(0))
    assert glyph.shape == (28, 28) and glyph.dtype == np.float32 and glyph.max() <= 1.0
    with pytest.raises(ValueError, match="split"):
        hw.MnistGlyphs(split="dev")
