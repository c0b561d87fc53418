"""Training data and the trainer: poor captures, reproducibility, a tiny end-to-end run.

The synthesizer tests need only numpy and OpenCV; the trainer tests need the ``[train]``
extra (torch, onnx) and skip with that reason where it is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from training.synth import Synthesizer, TrainingGlyphs, bar_seven, thin_stroke, warp_glyph


def sharpness(image: np.ndarray) -> float:
    """Mean gradient magnitude: falls as blur and low resolution spread the strokes."""
    gx = cv2.Sobel(image.astype(np.float32), cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(image.astype(np.float32), cv2.CV_32F, 0, 1)
    return float(np.mean(np.hypot(gx, gy)))


def test_without_poor_captures_the_streams_are_unchanged() -> None:
    """Asking for no poor captures draws nothing extra: older data sets stay reproducible."""
    plain, explicit = Synthesizer(None), Synthesizer(None, poor_capture_share=0.0)
    for i in range(5):
        a = plain.sample(np.random.default_rng([3, i]))
        b = explicit.sample(np.random.default_rng([3, i]))
        assert a.text == b.text and a.status == b.status
        assert np.array_equal(a.image, b.image)


def test_poor_captures_are_blurred_and_coarse_but_keep_size_and_label() -> None:
    good, poor = Synthesizer(None), Synthesizer(None, poor_capture_share=1.0)
    ratios = []
    for i in range(12):
        a = good.render("305", "number", np.random.default_rng([4, i]))
        b = poor.render("305", "number", np.random.default_rng([4, i]))
        assert b.image.dtype == np.uint8 and b.text == "305" and b.status == "number"
        assert b.image.shape == a.image.shape
        ratios.append(sharpness(b.image) / sharpness(a.image))
    assert np.median(ratios) < 0.8, ratios


def test_a_share_of_poor_captures_is_mixed_in() -> None:
    """Each sample is either the good or the poor capture of the same draw, in about that share."""
    never = Synthesizer(None, poor_capture_share=1e-12)
    always = Synthesizer(None, poor_capture_share=1.0)
    mixed = Synthesizer(None, poor_capture_share=0.5)
    poor = 0
    for i in range(40):
        m, g, p = (s.sample(np.random.default_rng([5, i])).image for s in (mixed, never, always))
        is_good, is_poor = np.array_equal(m, g), np.array_equal(m, p)
        assert is_good != is_poor
        poor += int(is_poor)
    assert 8 <= poor <= 32


class MarkedGlyphs:
    """A glyph source whose every glyph is the value 0.77, to tell it from procedural ink."""

    def glyph(self, char: str, rng: np.random.Generator) -> np.ndarray:
        return np.full((28, 28), 0.77, np.float32)


def from_data(glyphs: TrainingGlyphs, char: str, draws: int = 60) -> float:
    """Share of ``draws`` glyphs of ``char`` that came from the data rather than strokes."""
    rng = np.random.default_rng(7)
    return float(np.mean([glyphs.glyph(char, rng)[0, 0] == np.float32(0.77) for _ in range(draws)]))


def test_digits_and_symbols_take_their_own_procedural_share() -> None:
    """Symbols are half procedural; digits follow their own share (none by default)."""
    default = TrainingGlyphs(MarkedGlyphs())
    assert from_data(default, "7") == 1.0
    assert 0.25 < from_data(default, ".") < 0.75
    assert 0.25 < from_data(default, "-") < 0.75
    half = TrainingGlyphs(MarkedGlyphs(), symbol_stroke_share=0.0, digit_stroke_share=0.5)
    assert 0.25 < from_data(half, "3") < 0.75
    assert from_data(half, "-") == 1.0


def test_each_glyph_makes_one_draw_to_choose_its_source() -> None:
    """As before digits and symbols had separate shares, so older streams reproduce."""
    glyphs = TrainingGlyphs(MarkedGlyphs(), symbol_stroke_share=0.0, digit_stroke_share=0.0)
    used, counted = np.random.default_rng(3), np.random.default_rng(3)
    for char in "12-.9":
        glyphs.glyph(char, used)
        counted.random()
    assert used.random() == counted.random()


def digit_image() -> np.ndarray:
    """A synthetic "7": a bar and a diagonal, ``float32`` ``(28, 28)`` in 0..1."""
    img = np.zeros((28, 28), np.float32)
    cv2.line(img, (7, 6), (21, 6), 1.0, 2)
    cv2.line(img, (21, 6), (11, 23), 1.0, 2)
    return img


def test_a_warped_glyph_is_the_same_digit_moved_a_little() -> None:
    img = digit_image()
    for i in range(20):
        out = warp_glyph(img, np.random.default_rng([9, i]))
        assert out.shape == img.shape and out.dtype == np.float32
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert not np.array_equal(out, img)
        # Most ink stays within a few pixels of where it was: a distortion, not a new shape.
        near = cv2.dilate((img > 0.3).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        assert float(out[near].sum()) / float(out.sum()) > 0.9
    first, again = (warp_glyph(img, np.random.default_rng(5)) for _ in range(2))
    assert np.array_equal(first, again)


class SevenGlyphs:
    def glyph(self, char: str, rng: np.random.Generator) -> np.ndarray:
        return digit_image()


def test_digit_warp_applies_to_its_share_of_digits_only() -> None:
    rng = np.random.default_rng(11)
    never = TrainingGlyphs(SevenGlyphs(), symbol_stroke_share=0.0)
    assert all(np.array_equal(never.glyph("7", rng), digit_image()) for _ in range(10))
    always = TrainingGlyphs(SevenGlyphs(), symbol_stroke_share=0.0, digit_warp_share=1.0)
    assert not any(np.array_equal(always.glyph("7", rng), digit_image()) for _ in range(10))
    assert all(np.array_equal(always.glyph("-", rng), digit_image()) for _ in range(10))
    half = TrainingGlyphs(SevenGlyphs(), symbol_stroke_share=0.0, digit_warp_share=0.5)
    warped = sum(not np.array_equal(half.glyph("7", rng), digit_image()) for _ in range(60))
    assert 15 <= warped <= 45


def test_without_digit_warp_the_streams_are_unchanged() -> None:
    plain = Synthesizer(SevenGlyphs())
    explicit = Synthesizer(SevenGlyphs(), digit_warp_share=0.0)
    for i in range(5):
        a = plain.sample(np.random.default_rng([6, i]))
        b = explicit.sample(np.random.default_rng([6, i]))
        assert np.array_equal(a.image, b.image)


def test_a_barred_seven_has_a_bar_through_its_stem_within_its_own_width() -> None:
    """The bar crosses the stem below the top stroke and stays inside the digit's width: a
    strike-through runs past both ends of what it cancels, this must not look like one."""
    img = digit_image()
    ink_cols = np.flatnonzero(img.max(axis=0) > 0.5)
    for i in range(20):
        out = bar_seven(img, np.random.default_rng([4, i]))
        assert out.shape == img.shape and out.dtype == np.float32
        assert np.all(out >= img) and float(out.max()) <= 1.0  # nothing of the seven erased
        added = np.argwhere(out - img > 0.3)
        assert len(added) > 0
        rows, cols = added[:, 0], added[:, 1]
        assert rows.min() >= 9 and rows.max() <= 21  # below the top stroke, above the foot
        assert ink_cols[0] - 1 <= cols.min() and cols.max() <= ink_cols[-1] + 1
        stem = float(np.flatnonzero(img[int(np.median(rows))] > 0.5).mean())
        assert cols.min() < stem - 1 and cols.max() > stem + 1  # on both sides of the stem


def test_a_seven_without_a_single_stem_is_left_as_it_is() -> None:
    flat = np.zeros((28, 28), np.float32)
    cv2.line(flat, (4, 14), (24, 14), 1.0, 2)  # too flat to place a bar
    assert np.array_equal(bar_seven(flat, np.random.default_rng(0)), flat)


def one_image(width: int) -> np.ndarray:
    """A synthetic upright "1" of ``width`` px, ``float32`` ``(28, 28)`` in 0..1."""
    img = np.zeros((28, 28), np.float32)
    img[4:24, 13 : 13 + width] = 1.0
    return img


def ink_rows_and_width(img: np.ndarray) -> tuple[int, float]:
    inked = img > 0.5
    per_row = inked.sum(axis=1)
    return int((per_row > 0).sum()), float(np.median(per_row[per_row > 0]))


def test_a_thinned_one_is_narrower_and_as_tall() -> None:
    img = one_image(4)
    for i in range(10):
        out = thin_stroke(img, np.random.default_rng([13, i]))
        assert out.shape == img.shape and out.dtype == np.float32
        assert np.all(out <= img)  # nothing drawn, only taken away
        rows, width = ink_rows_and_width(out)
        assert rows == 20 and width in (2.0, 3.0)


def test_a_stroke_too_thin_to_thin_is_left_as_it_is() -> None:
    img = one_image(1)
    assert np.array_equal(thin_stroke(img, np.random.default_rng(0)), img)
    two = one_image(2)  # two passes would erase it: one pass at most
    assert all(ink_rows_and_width(thin_stroke(two, np.random.default_rng(i)))[1] == 1.0
               for i in range(6))


@pytest.mark.parametrize(
    ("digit", "option"), [("7", "barred_seven_share"), ("1", "thin_one_share")]
)
def test_a_glyph_edit_applies_to_its_share_of_its_digit_only(digit: str, option: str) -> None:
    rng = np.random.default_rng(12)
    always = TrainingGlyphs(SevenGlyphs(), symbol_stroke_share=0.0, **{option: 1.0})
    assert not any(np.array_equal(always.glyph(digit, rng), digit_image()) for _ in range(10))
    for char in "147-".replace(digit, ""):  # SevenGlyphs draws one image for every character
        assert all(np.array_equal(always.glyph(char, rng), digit_image()) for _ in range(5))
    half = TrainingGlyphs(SevenGlyphs(), symbol_stroke_share=0.0, **{option: 0.5})
    edited = sum(not np.array_equal(half.glyph(digit, rng), digit_image()) for _ in range(60))
    assert 15 <= edited <= 45


@pytest.mark.parametrize("option", ["barred_seven_share", "thin_one_share"])
def test_without_a_glyph_edit_the_streams_are_unchanged(option: str) -> None:
    plain = Synthesizer(SevenGlyphs(), digit_warp_share=0.5)
    off: dict[str, Any] = {option: 0.0}  # Any: Synthesizer's other arguments are not floats
    explicit = Synthesizer(SevenGlyphs(), digit_warp_share=0.5, **off)
    for i in range(5):
        a = plain.render("71", "number", np.random.default_rng([7, i]))
        b = explicit.render("71", "number", np.random.default_rng([7, i]))
        assert np.array_equal(a.image, b.image)


def test_decimal_commas_change_the_ink_but_keep_the_point_as_label() -> None:
    point, comma = Synthesizer(None), Synthesizer(None, decimal_comma_share=1.0)
    for i in range(4):
        a = point.render("-3.25", "number", np.random.default_rng([8, i]))
        b = comma.render("-3.25", "number", np.random.default_rng([8, i]))
        assert a.text == b.text == "-3.25"
        assert not np.array_equal(a.image, b.image)
    whole, same = (s.render("325", "number", np.random.default_rng([8, 0])) for s in (comma, point))
    assert np.array_equal(whole.image, same.image)


def test_a_share_of_decimal_commas_writes_some_numbers_with_the_point() -> None:
    half, point = Synthesizer(None, decimal_comma_share=0.5), Synthesizer(None)
    written = [half._as_written("0.5", np.random.default_rng([9, i])) for i in range(60)]
    assert 15 <= written.count("0,5") <= 45 and written.count("0.5") == 60 - written.count("0,5")
    assert point._as_written("0.5", np.random.default_rng(0)) == "0.5"


def test_without_decimal_commas_the_streams_are_unchanged() -> None:
    plain = Synthesizer(None)
    explicit = Synthesizer(None, decimal_comma_share=0.0)
    for i in range(5):
        a = plain.sample(np.random.default_rng([10, i]))
        b = explicit.sample(np.random.default_rng([10, i]))
        assert a.text == b.text and np.array_equal(a.image, b.image)


def test_faint_numbers_are_lighter_and_only_numbers_are_made_faint() -> None:
    def darkest(image: np.ndarray) -> float:
        """How much darker than the paper the writing is, in the middle of the box (away
        from the printed sides, which are as dark in both)."""
        h, w = image.shape
        middle = image[round(0.3 * h) : round(0.7 * h), round(0.2 * w) : round(0.8 * w)]
        return float(np.percentile(middle, 50) - np.percentile(middle, 1))

    plain, faint = Synthesizer(None), Synthesizer(None, faint_number_share=1.0)
    lighter = 0
    for i in range(8):
        a = plain.render("4", "number", np.random.default_rng([11, i]))
        b = faint.render("4", "number", np.random.default_rng([11, i]))
        lighter += darkest(b.image) < darkest(a.image)
    assert lighter >= 6
    assert faint._darkness("smudge", np.random.default_rng(0)) is None
    assert Synthesizer(None, ink_darkness=0.3)._darkness("number", np.random.default_rng(0)) == 0.3


def test_without_faint_numbers_the_streams_are_unchanged() -> None:
    plain, explicit = Synthesizer(None), Synthesizer(None, faint_number_share=0.0)
    for i in range(5):
        a = plain.sample(np.random.default_rng([12, i]))
        b = explicit.sample(np.random.default_rng([12, i]))
        assert np.array_equal(a.image, b.image)


torch = pytest.importorskip("torch", reason="trainer tests need the [train] extra (torch)")
pytest.importorskip("onnx", reason="trainer tests need the [train] extra (onnx)")

from grader import read as rd  # noqa: E402
from training import train_reader  # noqa: E402


def tiny_batch() -> dict:
    data = train_reader.SynthFields(None, "train", 0, train_reader.STREAM_TRAIN)
    return train_reader.collate([data[i] for i in range(8)])


def test_a_field_framed_two_ways_gives_two_inputs_with_one_label() -> None:
    """``repeats`` 2: the field's first view and one other, both labelled as the field."""
    plain = train_reader.SynthFields(None, "train", 0, train_reader.STREAM_TRAIN)
    twice = train_reader.SynthFields(None, "train", 0, train_reader.STREAM_TRAIN, repeats=2)
    single, geometry, status, text = plain[5]
    views, geometry2, status2, text2 = twice[5]
    assert views.shape == (2, *single.shape)
    assert (status2, text2) == (status, text)
    assert np.array_equal(geometry2, geometry)  # where the ink lay does not depend on framing
    assert np.array_equal(views[0], single)  # the same field, framed as the reader's first view
    batch = train_reader.collate_repeated([twice[i] for i in range(4)])
    assert batch["x"].shape == (8, 1, *single.shape)
    assert batch["geometry"].shape == (8, rd.GEOMETRY_SIZE)
    assert batch["texts"][0::2] == batch["texts"][1::2]
    assert torch.equal(batch["status"][0::2], batch["status"][1::2])


def test_the_second_framing_is_another_view_of_the_reader() -> None:
    twice = train_reader.SynthFields(None, "train", 0, train_reader.STREAM_TRAIN, repeats=2)
    chosen = set()
    for i in range(12):
        views, _, _, _ = twice[i]
        assert twice._synth is not None
        sample = twice._synth.sample(np.random.default_rng([0, train_reader.STREAM_TRAIN, i]))
        ink = rd.clean_ink(sample.image)
        framed = [(rd.frame_ink(ink, v) - train_reader.MEAN) / train_reader.STD for v in rd.VIEWS]
        matches = {k for k in (1, 2) if np.allclose(views[1], framed[k])}
        assert matches, f"field {i}: second input is neither of the other views"
        if len(matches) == 1:
            chosen |= matches
    assert chosen == {1, 2}


def test_bf16_is_chosen_only_where_the_cpu_has_it_natively(tmp_path: Path) -> None:
    """oneDNN emulates bfloat16 on AVX-512 cores without it, 2.4 times slower than fp32."""
    emulated = frozenset({"avx2", "avx512f", "avx512bw", "avx512vl"})
    assert not train_reader.bf16_supported(emulated)
    assert train_reader.bf16_supported(emulated | {"avx512_bf16"})
    assert train_reader.bf16_supported(emulated | {"amx_bf16"})
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16\n\n")
    assert train_reader.cpu_flags(cpuinfo) == {"fpu", "sse2", "avx512f", "amx_bf16"}
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")  # ARM: no x86 flags
    assert train_reader.cpu_flags(cpuinfo) is None
    assert train_reader.cpu_flags(tmp_path / "missing") is None


def test_asking_for_bf16_on_a_cpu_that_would_emulate_it_is_warned_about() -> None:
    warning = train_reader.emulated_precision_warning("bf16", "cpu", native=False)
    assert warning is not None and "fp32" in warning
    assert train_reader.emulated_precision_warning("bf16", "cpu", native=True) is None
    assert train_reader.emulated_precision_warning("bf16", "cuda", native=False) is None
    assert train_reader.emulated_precision_warning("fp32", "cpu", native=False) is None


def test_bf16_and_fp32_losses_agree() -> None:
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU cannot compute in bfloat16, natively or emulated")
    torch.manual_seed(0)
    model = train_reader.ReaderNet()
    batch = tiny_batch()
    full = [v.item() for v in train_reader.losses(model, batch, "fp32")]
    half = [v.item() for v in train_reader.losses(model, batch, "bf16")]
    assert np.allclose(full, half, rtol=0.05), (full, half)


@pytest.mark.slow
def test_a_short_run_exports_a_model_the_reader_loads(tmp_path: Path) -> None:
    out = tmp_path / "model"
    code = train_reader.main(
        [
            "--data-dir",
            str(tmp_path / "no-data"),
            "--out",
            str(out),
            "--steps",
            "3",
            "--batch",
            "8",
            "--workers",
            "0",
            "--val-fields",
            "40",
            "--views",
            "1",
            "--checkpoint",
            str(tmp_path / "reader.pt"),
        ]
    )
    assert code == 0
    config = json.loads((out / "reader.json").read_text())
    assert config["training"]["steps"] == 3
    assert config["training"]["precision"] in ("bf16", "fp32")
    assert config["calibration"]["views"] == 1 and config["calibration"]["fields"] == 40
    reader = rd.Reader(out, threads=1)
    crop = Synthesizer(None).render("42", "number", np.random.default_rng(0)).image
    reading = reader.read_batch([crop])[0]
    assert 0.0 <= reading.confidence <= 1.0


def test_a_network_that_reads_the_ink_geometry_uses_it_and_needs_it() -> None:
    torch.manual_seed(0)
    model = train_reader.ReaderNet(n_geometry=rd.GEOMETRY_SIZE).eval()
    batch = tiny_batch()
    middle = torch.full((8, rd.GEOMETRY_SIZE), 0.9)
    side = middle.clone()
    side[:, 0] = 0.1  # the same ink, but at the crop's left end
    with torch.no_grad():
        ctc, status = model(batch["x"], middle)
        ctc_side, status_side = model(batch["x"], side)
    assert ctc.shape[0] == 8 and status.shape == (8, len(rd.STATUSES))
    assert not torch.allclose(status, status_side) and not torch.allclose(ctc, ctc_side)
    with pytest.raises(ValueError, match="place in the crop"):
        model(batch["x"])
    plain = train_reader.ReaderNet().eval()
    with torch.no_grad():  # a network without it ignores what it is given
        assert torch.equal(plain(batch["x"], middle)[1], plain(batch["x"], side)[1])


@pytest.mark.slow
def test_a_model_that_reads_the_ink_geometry_is_exported_with_it(tmp_path: Path) -> None:
    short_run(tmp_path, 2, "--ink-geometry", "1")
    out = tmp_path / "model"
    config = json.loads((out / "reader.json").read_text())
    assert config["input"]["geometry"] == "grader.read.ink_geometry"
    assert config["training"]["ink_geometry"] == 1
    reader = rd.Reader(out, threads=1)
    assert reader.reads_geometry
    one, other = upright_bar_crops()
    _, status = reader.logits([one, other])
    assert not np.allclose(status[0, 0], status[0, 1])  # one bar, two places in the box
    with pytest.raises(ValueError, match="ink geometry"):
        reader.network(np.zeros((1, 1, rd.INPUT_HEIGHT, rd.INPUT_WIDTH), np.float32))


def upright_bar_crops() -> tuple[np.ndarray, np.ndarray]:
    """One upright bar, in the middle of a box's crop and near its left end."""
    middle = np.full((160, 360), 235, np.uint8)
    middle[40:120, 178:184] = 40
    near_side = np.full((160, 360), 235, np.uint8)
    near_side[40:120, 30:36] = 40
    return middle, near_side


def short_run(tmp_path: Path, steps: int, *extra: str) -> dict:
    """Train ``steps`` steps on procedural glyphs; the checkpoint's weights."""
    train_reader.main(
        [
            "--data-dir",
            str(tmp_path / "no-data"),
            "--out",
            str(tmp_path / "model"),
            "--steps",
            str(steps),
            "--batch",
            "8",
            "--workers",
            "0",
            "--val-fields",
            "20",
            "--views",
            "1",
            "--checkpoint",
            str(tmp_path / "reader.pt"),
            *extra,
        ]
    )
    return torch.load(tmp_path / "reader.pt")


@pytest.mark.slow
def test_a_resumed_run_ends_where_an_unbroken_one_does(tmp_path: Path) -> None:
    """Weights, optimiser, generator and data position all carry over.

    Both runs stay within the warm-up, where the learning rate does not depend on the
    planned total, so two steps extended to four must equal four unbroken steps.
    """
    unbroken = short_run(tmp_path / "a", 4)
    short_run(tmp_path / "b", 2)
    resumed = short_run(tmp_path / "b", 4, "--resume")
    assert resumed["step"] == unbroken["step"] == 4
    for name, weights in unbroken["model"].items():
        assert torch.equal(weights, resumed["model"][name]), name


def test_a_resumed_run_records_each_leg_and_its_device(tmp_path: Path) -> None:
    """A run moved between machines says which steps ran where, in the checkpoint and in
    reader.json."""
    first = short_run(tmp_path, 2)
    assert [(g["device"], g["first_step"], g["last_step"]) for g in first["legs"]] == [
        ("cpu", 1, 2)
    ]
    resumed = short_run(tmp_path, 3, "--resume")
    expected = [("cpu", 1, 2), ("cpu", 3, 3)]
    assert [(g["device"], g["first_step"], g["last_step"]) for g in resumed["legs"]] == expected
    recorded = json.loads((tmp_path / "model" / "reader.json").read_text())["training"]["legs"]
    assert [(g["device"], g["first_step"], g["last_step"]) for g in recorded] == expected


def test_resuming_with_another_recipe_is_refused(tmp_path: Path) -> None:
    short_run(tmp_path, 1)
    with pytest.raises(SystemExit, match="was trained with"):
        short_run(tmp_path, 2, "--resume", "--lr", "0.01")


def test_recalibrating_rewrites_the_calibration_and_keeps_the_weights(tmp_path: Path) -> None:
    short_run(tmp_path, 2)
    out = tmp_path / "model"
    weights = (out / "reader.onnx").read_bytes()
    before = json.loads((out / "reader.json").read_text())
    code = train_reader.main(
        ["--data-dir", str(tmp_path / "no-data"), "--out", str(out), "--recalibrate",
         "--val-fields", "30", "--views", "1", "--workers", "0"]
    )
    assert code == 0
    after = json.loads((out / "reader.json").read_text())
    assert (out / "reader.onnx").read_bytes() == weights
    assert after["calibration"]["fields"] == 30 and before["calibration"]["fields"] == 20
    assert after["calibration"]["digits"] == "mnist"
    assert after["training"] == before["training"]
    rd.Reader(out, threads=1)  # still loads


def test_the_weight_average_moves_towards_the_weights_by_its_decay() -> None:
    """Early steps ramp the decay up (the untrained start must not linger); later ones use
    the decay itself; counters are copied, not averaged."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(0.0)
    average = train_reader.WeightAverage(model, decay=0.99)
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    model[1].num_batches_tracked.fill_(7)
    average.update(model, step=0)  # ramp: keeps 1/10 of the old average
    assert torch.allclose(average.state["0.weight"], torch.full((1, 2), 0.9))
    average.update(model, step=10_000)  # keeps 0.99 of it
    assert torch.allclose(average.state["0.weight"], torch.full((1, 2), 1 - 0.99 * 0.1))
    assert int(average.state["1.num_batches_tracked"]) == 7


def network_output(model_dir: Path) -> np.ndarray:
    reader = rd.Reader(model_dir, threads=1)
    crop = Synthesizer(None).render("7", "number", np.random.default_rng(0)).image
    x = rd.preprocess(crop)[None, None].astype(np.float32)
    return reader.network(np.ascontiguousarray(x))[0]


@pytest.mark.slow
def test_with_a_weight_average_it_is_exported_and_the_last_weights_kept(
    tmp_path: Path,
) -> None:
    state = short_run(tmp_path, 3, "--ema", "0.5")
    assert set(state["ema"]) == set(state["model"])
    assert any(not torch.equal(state["ema"][k], state["model"][k]) for k in state["model"])
    config = json.loads((tmp_path / "model" / "reader.json").read_text())
    assert config["training"]["weight_average_decay"] == 0.5

    def export(out: Path, ema: str) -> np.ndarray:
        train_reader.main(
            ["--data-dir", str(tmp_path / "no-data"), "--out", str(out), "--export-only",
             "--ema", ema, "--checkpoint", str(tmp_path / "reader.pt"), "--val-fields", "20",
             "--views", "1", "--workers", "0"]
        )
        return network_output(out)

    exported = network_output(tmp_path / "model")
    assert np.allclose(export(tmp_path / "again", "0.5"), exported, atol=1e-5)
    assert not np.allclose(export(tmp_path / "last", "0"), exported, atol=1e-5)


@pytest.mark.slow
def test_a_resumed_run_carries_its_weight_average_on(tmp_path: Path) -> None:
    unbroken = short_run(tmp_path / "a", 4, "--ema", "0.5")
    short_run(tmp_path / "b", 2, "--ema", "0.5")
    resumed = short_run(tmp_path / "b", 4, "--ema", "0.5", "--resume")
    for name, weights in unbroken["ema"].items():
        assert torch.equal(weights, resumed["ema"][name]), name


def test_exporting_an_average_a_checkpoint_lacks_is_refused(tmp_path: Path) -> None:
    short_run(tmp_path, 1)
    with pytest.raises(SystemExit, match="no weight average"):
        train_reader.main(
            ["--data-dir", str(tmp_path / "no-data"), "--out", str(tmp_path / "x"),
             "--export-only", "--ema", "0.9", "--checkpoint", str(tmp_path / "reader.pt")]
        )
