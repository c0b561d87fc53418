"""Synthetic handwriting: single glyphs, multi-character numbers and the marks around them.

Used by the reader's training code, its benchmark, its tests and the photo simulator, so it
depends on numpy and OpenCV only.  Every random choice goes through the ``rng`` argument
(``numpy.random.Generator``), which makes each image reproducible from a seed.

Conventions: an *ink image* is ``float32`` of shape ``(H, W)`` with values in ``0..1``
(0 = no ink, 1 = full ink); a *paper image* is ``uint8`` of shape ``(H, W)``, white paper near
200-255 and ink darker.  Glyph characters are the reader's alphabet ``0-9``, ``-`` and ``.``,
plus the decimal comma ``,`` that many students write for the point (the reader reads it as
``.``).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

DIGITS = "0123456789"
ALPHABET = DIGITS + "-."
# Written for a decimal point where schools teach the comma; not a class of its own: the
# reader is trained to read it as ".", which is what it means in an answer box.
DECIMAL_COMMA = ","
DECIMAL_MARKS = "." + DECIMAL_COMMA
SPLITS = ("train", "val", "test")

# One MNIST training image in this many is kept out of "train" and forms "val" (used for
# calibration and early checks); the t10k files, written by other people, form "test".
VAL_EVERY = 12


def default_data_dir() -> Path:
    """The training data folder: ``$PAPERGRADE_DATA_DIR`` or the project's ``../shared/data``."""
    env = os.environ.get("PAPERGRADE_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def load_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a ``uint8`` array.

    Returns shape ``(N,)`` for label files and ``(N, rows, cols)`` for image files.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic not in (2049, 2051):
        raise ValueError(f"{path}: not an IDX file of uint8 labels or images (magic {magic})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {dims} values, found {arr.size}")
    return arr.reshape(dims)


class GlyphSource(Protocol):
    """Anything that can draw one handwritten character."""

    def glyph(self, char: str, rng: np.random.Generator) -> np.ndarray:
        """One glyph of ``char``: ``float32`` ink ``(h, w)`` in ``0..1`` (28x28 or cropped)."""
        ...


class MnistGlyphs:
    """Glyphs from MNIST digits and the MDAS minus/dot symbols.

    ``split`` is ``"train"`` (MNIST train files minus every ``VAL_EVERY``-th image),
    ``"val"`` (those held-out training images) or ``"test"`` (the t10k files, other writers).
    Symbols use the npz arrays of the same split name.
    """

    def __init__(self, data_dir: str | Path | None = None, split: str = "train") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.split = split
        self._images: dict[str, np.ndarray] = {}
        self._load()

    def _load(self) -> None:
        mnist = self.data_dir / "mnist"
        prefix = "t10k" if self.split == "test" else "train"
        images = load_idx(mnist / f"{prefix}-images-idx3-ubyte.gz")
        labels = load_idx(mnist / f"{prefix}-labels-idx1-ubyte.gz")
        if self.split != "test":
            held_out = np.arange(len(labels)) % VAL_EVERY == 0
            keep = held_out if self.split == "val" else ~held_out
            images, labels = images[keep], labels[keep]
        for d in range(10):
            self._images[str(d)] = images[labels == d]
        with np.load(self.data_dir / "symbols" / "minus_dot.npz") as npz:
            self._images["-"] = np.asarray(npz[f"minus_{self.split}"], dtype=np.uint8)
            self._images["."] = np.asarray(npz[f"dot_{self.split}"], dtype=np.uint8)

    def images(self, char: str) -> np.ndarray:
        """All images of ``char`` in this split: ``uint8`` ``(N, 28, 28)``, 255 = ink."""
        return self._images[char]

    def glyph(self, char: str, rng: np.random.Generator) -> np.ndarray:
        """A random glyph of ``char``: ``float32`` ``(28, 28)`` ink in ``0..1``."""
        pool = self._images[char]
        return pool[int(rng.integers(len(pool)))].astype(np.float32) / 255.0


# Procedural glyphs: each character is a list of strokes, each stroke a list of control points
# (x, y) in a unit box (y downwards).  Curves are smoothed from these points after jitter, so
# every call gives a slightly different shape, like a person writing the same digit twice.
_Stroke = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int) -> _Stroke:
    angles = np.radians(np.linspace(a0, a1, n))
    return [(cx + rx * float(np.cos(a)), cy + ry * float(np.sin(a))) for a in angles]


def _stroke_shapes(char: str, variant: int) -> list[_Stroke]:
    """Control strokes of one character; ``variant`` picks a writing style where there are two."""
    if char == "0":
        return [_arc(0.5, 0.5, 0.3, 0.45, -100, 265, 14)]
    if char == "1":
        stem: _Stroke = [(0.55, 0.05), (0.5, 0.95)]
        return [stem] if variant == 0 else [[(0.32, 0.28), (0.55, 0.05), (0.5, 0.95)]]
    if char == "2":
        return [[*_arc(0.5, 0.3, 0.27, 0.25, 200, 370, 6), (0.45, 0.65), (0.2, 0.95), (0.82, 0.93)]]
    if char == "3":
        top = _arc(0.48, 0.27, 0.26, 0.22, 210, 450, 7)
        bottom = _arc(0.48, 0.72, 0.28, 0.24, 270, 500, 7)
        return [top + bottom[1:]]
    if char == "4":
        if variant == 0:
            return [[(0.55, 0.05), (0.15, 0.65), (0.85, 0.65)], [(0.62, 0.3), (0.6, 0.95)]]
        return [[(0.25, 0.05), (0.2, 0.6), (0.8, 0.6)], [(0.7, 0.1), (0.68, 0.95)]]
    if char == "5":
        body = _arc(0.48, 0.67, 0.3, 0.28, 230, 490, 8)
        return [[(0.3, 0.08), (0.27, 0.42), *body], [(0.3, 0.07), (0.8, 0.05)]]
    if char == "6":
        return [[(0.7, 0.05), (0.42, 0.3), *_arc(0.5, 0.7, 0.27, 0.25, 190, 540, 10)]]
    if char == "7":
        main: _Stroke = [(0.18, 0.08), (0.82, 0.06), (0.45, 0.95)]
        return [main] if variant == 0 else [main, [(0.35, 0.5), (0.78, 0.5)]]
    if char == "8":
        top = _arc(0.5, 0.27, 0.22, 0.22, 90, 450, 10)
        bottom = _arc(0.5, 0.72, 0.27, 0.23, -90, 270, 10)
        return [top, bottom]
    if char == "9":
        loop = _arc(0.5, 0.3, 0.26, 0.24, 0, 370, 10)
        return [[*loop, (0.76, 0.4), (0.66, 0.95)]]
    if char == "-":
        return [[(0.15, 0.5), (0.85, 0.5)]]
    if char == ".":
        return [_arc(0.5, 0.5, 0.05, 0.05, 0, 360, 6)]
    if char == DECIMAL_COMMA:
        # A tail curling down and to the left, under a blob or (variant 1) on its own.
        tail: _Stroke = [(0.6, 0.2), (0.58, 0.55), (0.4, 0.95)]
        return [tail] if variant else [_arc(0.55, 0.16, 0.1, 0.1, 0, 360, 6), tail]
    raise ValueError(f"no glyph for {char!r}; the alphabet is {ALPHABET!r}")


def _smooth(points: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting: a rounder curve through the same region, keeping the ends."""
    for _ in range(iterations):
        if len(points) < 3:
            return points
        q = 0.75 * points[:-1] + 0.25 * points[1:]
        r = 0.25 * points[:-1] + 0.75 * points[1:]
        mid = np.empty((2 * len(q), 2), dtype=points.dtype)
        mid[0::2], mid[1::2] = q, r
        points = np.vstack([points[:1], mid, points[-1:]])
    return points


# Pen widths of the procedural glyphs, in pixels of the 4x canvas (low, high exclusive): a
# point is a dab, a comma's tail a little thicker than a digit's stroke.  One draw per glyph,
# so every glyph's random stream stays the one earlier models were trained on.
_STROKE_WIDTHS = {".": (10, 16), DECIMAL_COMMA: (7, 13)}


class StrokeGlyphs:
    """Procedural handwriting-like glyphs; needs no data (used when ``../shared/data`` is absent).

    Each glyph is drawn from jittered control strokes with a random stroke width, slant, aspect
    and size, anti-aliased at four times the resolution and reduced to 28x28 like MNIST.
    """

    size = 28
    _supersample = 4

    def __init__(self, jitter: float = 0.035) -> None:
        self.jitter = jitter

    def glyph(self, char: str, rng: np.random.Generator) -> np.ndarray:
        """A random glyph of ``char``: ``float32`` ``(28, 28)`` ink in ``0..1``."""
        big = self.size * self._supersample
        canvas = np.zeros((big, big), dtype=np.uint8)
        strokes = _stroke_shapes(char, int(rng.integers(2)))
        slant = rng.uniform(-0.25, 0.25)
        sx = rng.uniform(0.75, 1.1) * (0.7 if char in "-" + DECIMAL_MARKS else 0.72)
        sy = rng.uniform(0.85, 1.0) * 0.72
        angle = np.radians(rng.uniform(-6, 6))
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        thickness = int(rng.integers(*_STROKE_WIDTHS.get(char, (5, 11))))
        for stroke in strokes:
            pts = np.asarray(stroke, dtype=np.float64)
            pts = pts + rng.normal(0.0, self.jitter, pts.shape)
            pts = _smooth(pts, 2) - 0.5
            pts[:, 0] = (pts[:, 0] + slant * (0.0 - pts[:, 1])) * sx
            pts[:, 1] = pts[:, 1] * sy
            pts = pts @ rot.T
            pix = np.round((pts + 0.5) * big * 16).astype(np.int32)  # 4 fractional bits
            cv2.polylines(canvas, [pix], False, 255, thickness, cv2.LINE_AA, shift=4)
        small = cv2.resize(canvas, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return small.astype(np.float32) / 255.0


def ink_bbox(ink: np.ndarray, level: float = 0.1) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x0, y0, x1, y1)`` (exclusive ends) of pixels above ``level``, or None."""
    ys, xs = np.nonzero(ink > level)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    box = ink_bbox(ink)
    if box is None:
        return np.zeros((1, 1), dtype=np.float32)
    x0, y0, x1, y1 = box
    return ink[y0:y1, x0:x1]


def _resize(ink: np.ndarray, width: int, height: int) -> np.ndarray:
    width, height = max(1, width), max(1, height)
    shrink = width < ink.shape[1] or height < ink.shape[0]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(ink, (width, height), interpolation=interp)


@dataclass(frozen=True)
class Style:
    """How one writer writes a number; all lengths are fractions of the digit height."""

    digit_height: float  # pixels
    gap: float  # mean gap between characters; negative means overlapping
    gap_spread: float
    slant: float  # horizontal shear (x shift per unit of height)
    aspect: float  # width multiplier for digits
    wobble: float  # baseline wobble, std
    thickness: int  # morphology radius in px: >0 thicker strokes, <0 thinner, 0 unchanged


def random_style(rng: np.random.Generator, digit_height: float) -> Style:
    """A writer's style for numbers whose digits are about ``digit_height`` pixels tall."""
    touching = rng.random() < 0.2
    return Style(
        digit_height=digit_height,
        gap=rng.uniform(-0.08, 0.02) if touching else rng.uniform(0.02, 0.35),
        gap_spread=rng.uniform(0.0, 0.12),
        slant=rng.normal(0.0, 0.12),
        aspect=rng.uniform(0.8, 1.2),
        wobble=rng.uniform(0.0, 0.05),
        thickness=int(rng.choice([-1, 0, 0, 0, 1, 1, 2])) if digit_height > 30 else 0,
    )


# Writers let characters touch and overlap, but a character never starts more than this share
# of the narrower of the two inside the one before it: a narrow "1" beside a wide "0" would
# otherwise vanish under it, and the truth would say "10" where the ink shows one "0".
MAX_OVERLAP = 0.35


def _place_char(
    char: str, glyph: np.ndarray, style: Style, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Scale one cropped glyph for ``style``; returns it and its centre height above baseline."""
    h = style.digit_height
    gh, gw = glyph.shape
    if char == "-":
        width = h * rng.uniform(0.35, 0.65)
        height = min(max(gh * width / max(gw, 1), h * 0.06), h * 0.2)
        return _resize(glyph, round(width), round(height)), h * rng.uniform(0.4, 0.6)
    if char == ".":
        size = h * rng.uniform(0.09, 0.18)
        return _resize(glyph, round(size), round(size)), size / 2 + h * rng.uniform(-0.02, 0.06)
    if char == DECIMAL_COMMA:
        # Its blob on the baseline like a point, its tail hanging below it.
        height = h * rng.uniform(0.28, 0.45)
        width = max(height * gw / max(gh, 1), h * 0.06)
        return _resize(glyph, round(width), round(height)), height / 2 - h * rng.uniform(0.1, 0.22)
    scale = h * rng.uniform(0.9, 1.08) / gh
    width = gw * scale * style.aspect * rng.uniform(0.92, 1.08)
    return _resize(glyph, round(width), round(gh * scale)), gh * scale / 2


def compose_number(
    text: str,
    source: GlyphSource,
    rng: np.random.Generator,
    height_px: int,
    width_px: int | None = None,
    style: Style | None = None,
) -> np.ndarray:
    """Write ``text`` (characters of ``0-9 - . ,``) as one handwritten number.

    Characters get the writer's spacing (sometimes touching or overlapping, never hiding one
    another: see :data:`MAX_OVERLAP`), a wobbling baseline, per-character size changes, a
    common slant and stroke-thickness change; a decimal point is small and sits on the
    baseline, a decimal comma hangs below it, a minus sign sits at mid-height.

    Returns ``float32`` ink ``(height_px, W)`` in ``0..1``: ``W`` is the tight width of the
    number plus a small margin, or ``width_px`` when given (the number is then scaled down if
    needed and placed at a random horizontal position).  The digits are 60-80 % of
    ``height_px`` unless ``style`` says otherwise; the number is vertically centred with jitter.
    """
    if style is None:
        style = random_style(rng, height_px * rng.uniform(0.6, 0.8))
    h = style.digit_height
    pieces: list[tuple[np.ndarray, float, float]] = []  # (image, x, centre height)
    x = 0.0
    for i, char in enumerate(text):
        img, centre = _place_char(char, _crop_to_ink(source.glyph(char, rng)), style, rng)
        if i > 0:
            gap = style.gap + rng.normal(0.0, style.gap_spread)
            if char in DECIMAL_MARKS or text[i - 1] in DECIMAL_MARKS:
                gap = abs(gap) * 0.6 + 0.04
            elif text[i - 1] == "-":
                gap = abs(gap) * 0.5 + 0.1  # a minus touching a digit would read as a stroke
            narrower = min(img.shape[1], pieces[-1][0].shape[1])
            x += max(gap * h, -MAX_OVERLAP * narrower)
        centre += rng.normal(0.0, style.wobble) * h
        pieces.append((img, x, centre))
        x += img.shape[1]
    return _assemble(pieces, style, rng, height_px, width_px, x)


def _assemble(
    pieces: list[tuple[np.ndarray, float, float]],
    style: Style,
    rng: np.random.Generator,
    height_px: int,
    width_px: int | None,
    total_width: float,
) -> np.ndarray:
    """Paste placed characters onto one canvas, then slant, thicken and fit it."""
    h = style.digit_height
    pad = int(np.ceil(h * (abs(style.slant) + 0.3))) + 2
    canvas_h = int(np.ceil(h * 1.6)) + 2 * pad
    baseline = pad + h * 1.25
    canvas = np.zeros((canvas_h, int(np.ceil(total_width)) + 2 * pad + 2), dtype=np.float32)
    for img, x, centre in pieces:
        top = round(baseline - centre - img.shape[0] / 2)
        left = round(x) + pad
        top = min(max(top, 0), canvas_h - img.shape[0])
        region = canvas[top : top + img.shape[0], left : left + img.shape[1]]
        np.maximum(region, img[: region.shape[0], : region.shape[1]], out=region)
    canvas = _shear(canvas, style.slant, baseline)
    canvas = _thickness(canvas, style.thickness)
    return _fit(_crop_to_ink(canvas), rng, height_px, width_px, h)


def _shear(ink: np.ndarray, slant: float, pivot_y: float) -> np.ndarray:
    """Slant the ink: x moves by ``slant`` pixels per pixel above ``pivot_y``."""
    matrix = np.array([[1.0, -slant, slant * pivot_y], [0.0, 1.0, 0.0]], dtype=np.float64)
    return cv2.warpAffine(ink, matrix, (ink.shape[1], ink.shape[0]), flags=cv2.INTER_LINEAR)


def _thickness(ink: np.ndarray, radius: int) -> np.ndarray:
    if radius == 0:
        return ink
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (abs(radius) + 1, abs(radius) + 1))
    op = cv2.dilate if radius > 0 else cv2.erode
    out = op(ink, kernel)
    # Erosion can wipe out thin MNIST strokes entirely; keep the original then.
    return out if out.max() > 0.5 else ink


def _fit(
    ink: np.ndarray,
    rng: np.random.Generator,
    height_px: int,
    width_px: int | None,
    digit_height: float,
) -> np.ndarray:
    """Place a tight ink image on a canvas of ``height_px`` by ``width_px`` (or tight width)."""
    ih, iw = ink.shape
    limit_w = width_px if width_px is not None else 10**9
    scale = min(1.0, (height_px - 1) / ih, (limit_w - 1) / iw)
    if scale < 1.0:
        ink = _resize(ink, int(iw * scale), int(ih * scale))
        ih, iw = ink.shape
    margin = max(1, round(digit_height * 0.1))
    out_w = width_px if width_px is not None else iw + 2 * margin
    out = np.zeros((height_px, out_w), dtype=np.float32)
    left = int(rng.integers(0, max(out_w - iw, 0) + 1)) if width_px is not None else margin
    free_h = height_px - ih
    top = int(np.clip(round(free_h / 2 + rng.normal(0, free_h / 8 + 0.5)), 0, free_h))
    out[top : top + ih, left : left + iw] = ink
    return out


def erased_ink(
    text: str, source: GlyphSource, rng: np.random.Generator, height_px: int, width_px: int
) -> np.ndarray:
    """What is left after rubbing out ``text``: faint, blurred, broken strokes and smears.

    Returns ``float32`` ``(height_px, width_px)`` ink, mostly below 0.3.
    """
    ink: np.ndarray = np.zeros((height_px, width_px), dtype=np.float32)
    if text:
        ghost = compose_number(text, source, rng, height_px, width_px)
        # Erasing removes most of the stroke: keep a random, blotchy fraction of it.
        noise = rng.random((height_px // 4 + 1, width_px // 4 + 1)).astype(np.float32)
        holes = cv2.resize(noise, (width_px, height_px), interpolation=cv2.INTER_LINEAR)
        ink = ghost * (holes > rng.uniform(0.3, 0.7)) * np.float32(rng.uniform(0.1, 0.3))
    smear = _smear(rng, height_px, width_px) * rng.uniform(0.05, 0.18)
    k = 2 * int(rng.integers(1, 4)) + 1
    return np.clip(cv2.GaussianBlur(np.maximum(ink, smear), (k, k), 0), 0.0, 1.0)


def _smear(rng: np.random.Generator, height_px: int, width_px: int) -> np.ndarray:
    """A soft grey blob like graphite spread by an eraser: ``float32`` in ``0..1``."""
    cx, cy = rng.uniform(0.25, 0.75) * width_px, rng.uniform(0.3, 0.7) * height_px
    ax, ay = rng.uniform(0.1, 0.35) * width_px, rng.uniform(0.1, 0.3) * height_px
    yy, xx = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
    blob = np.exp(-(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2))
    noise = rng.random((height_px // 3 + 1, width_px // 3 + 1)).astype(np.float32)
    texture = cv2.resize(noise, (width_px, height_px), interpolation=cv2.INTER_LINEAR)
    return (blob * (0.5 + 0.5 * texture)).astype(np.float32)


def cross_out(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strike through the written ink: one to three lines, an X, or a zig-zag scribble.

    ``ink`` is ``float32`` ``(H, W)`` in ``0..1`` and is not modified; returns a new image.
    """
    out = ink.copy()
    box = ink_bbox(ink)
    h, w = ink.shape
    x0, y0, x1, y1 = box if box is not None else (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
    # A strike-through runs past the ends of what it cancels; a line that stops at the
    # digit's edges is how some people write a 7 or a 4, not a cross-out.
    reach = y1 - y0
    x0 = max(0.0, x0 - rng.uniform(0.2, 0.6) * reach)
    x1 = min(w - 1.0, x1 + rng.uniform(0.2, 0.6) * reach)
    thickness = max(1, round((y1 - y0) * rng.uniform(0.06, 0.14)))
    kind = rng.choice(["lines", "x", "scribble"], p=[0.4, 0.3, 0.3])
    if kind == "lines":
        for _ in range(int(rng.integers(1, 4))):
            ya = rng.uniform(y0 + 0.2 * (y1 - y0), y1 - 0.2 * (y1 - y0))
            yb = ya + rng.normal(0, 0.15) * (y1 - y0)
            _line(out, (x0, ya), (x1, yb), thickness)
    elif kind == "x":
        _line(out, (x0, y0), (x1, y1), thickness)
        _line(out, (x0, y1), (x1, y0), thickness)
    else:
        n = int(rng.integers(4, 9))
        xs = np.linspace(x0, x1, n) + rng.normal(0, 0.03 * w, n)
        ys = np.where(np.arange(n) % 2 == 0, y0, y1) + rng.normal(0, 0.1 * (y1 - y0), n)
        for i in range(n - 1):
            _line(out, (xs[i], ys[i]), (xs[i + 1], ys[i + 1]), thickness)
    return out


def _line(ink: np.ndarray, a: tuple[float, float], b: tuple[float, float], thickness: int) -> None:
    pa = (round(a[0] * 16), round(a[1] * 16))
    pb = (round(b[0] * 16), round(b[1] * 16))
    cv2.line(ink, pa, pb, 1.0, thickness, cv2.LINE_AA, shift=4)


def stray_mark(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add one small stray pencil mark (a short tick or hook) away from the number.

    Stray marks are thin short strokes near the top or a side, never a round blob on the
    baseline that could be taken for a decimal point.  Returns a new ``float32`` image.
    """
    out = ink.copy()
    h, w = ink.shape
    corner_x = rng.choice([rng.uniform(0.02, 0.15), rng.uniform(0.85, 0.98)]) * w
    y = rng.uniform(0.05, 0.3) * h
    length = rng.uniform(0.08, 0.2) * h
    angle = rng.uniform(0.2, 0.8) * np.pi  # steep: a flat dash would look like a minus
    end = (corner_x + length * np.cos(angle), y + length * np.sin(angle))
    _line(out, (corner_x, y), end, max(1, round(h * 0.015)))
    return out


def paper(height_px: int, width_px: int, rng: np.random.Generator) -> np.ndarray:
    """Plain paper: ``uint8`` ``(height_px, width_px)`` around 215-250 with fine grain."""
    level = rng.uniform(215, 250)
    grain = rng.normal(0.0, rng.uniform(0.5, 3.0), (height_px, width_px))
    return np.clip(level + grain, 0, 255).astype(np.uint8)


def draw_ink(
    page: np.ndarray,
    ink: np.ndarray,
    rng: np.random.Generator,
    x: int = 0,
    y: int = 0,
    darkness: float | None = None,
) -> np.ndarray:
    """Darken ``page`` (``uint8`` ``(H, W)``) by ``ink`` placed with its top-left at ``(x, y)``.

    ``darkness`` is how much of the paper's brightness full ink removes: about 0.4 for a light
    pencil up to 0.9 for a pen; random in that range when None.  Ink outside the page is
    clipped.  Returns a new ``uint8`` image of the page's shape.
    """
    if darkness is None:
        darkness = float(rng.uniform(0.4, 0.9))
    out = page.astype(np.float32)
    ph, pw = page.shape
    ih, iw = ink.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + iw, pw), min(y + ih, ph)
    if x1 <= x0 or y1 <= y0:
        return page.copy()
    part = ink[y0 - y : y1 - y, x0 - x : x1 - x]
    # Graphite is not uniform: a little multiplicative noise along the stroke.
    grain = 1.0 + rng.normal(0.0, 0.08, part.shape).astype(np.float32)
    out[y0:y1, x0:x1] *= 1.0 - np.clip(part * darkness * grain, 0.0, 0.97)
    return np.clip(out, 0, 255).astype(np.uint8)


def random_answer(rng: np.random.Generator, max_len: int = 6) -> str:
    """A plausible worksheet answer: an integer or decimal, maybe negative, ``<= max_len`` chars.

    Short answers are more common, as on real worksheets.
    """
    while True:
        negative = rng.random() < 0.25
        decimal = rng.random() < 0.35
        n_int = int(rng.choice([1, 1, 1, 2, 2, 2, 3, 3, 4, 5]))
        first = str(int(rng.integers(1, 10))) if n_int > 1 else str(int(rng.integers(0, 10)))
        text = first + "".join(str(d) for d in rng.integers(0, 10, n_int - 1))
        if decimal:
            n_frac = int(rng.choice([1, 1, 2, 2, 3]))
            text += "." + "".join(str(d) for d in rng.integers(0, 10, n_frac))
            if text.startswith("0.") and rng.random() < 0.1:
                text = text[1:]  # ".5" as some students write it
        if negative:
            text = "-" + text
        if len(text) <= max_len:
            return text


def sample_texts(rng: np.random.Generator, count: int, max_len: int = 6) -> Sequence[str]:
    """``count`` answers from :func:`random_answer`."""
    return [random_answer(rng, max_len) for _ in range(count)]
