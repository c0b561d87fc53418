"""Synthetic field crops for training and benchmarking the reader (numpy and OpenCV only).

A sample is what the page pipeline hands the reader: a grayscale ``uint8`` crop of one answer
box plus a 2 mm margin, with box-line remnants the extractor left behind, camera effects
(uneven light, blur, noise, JPEG, slight rotation, scale and shift) and handwriting that may
cross the border.  Each sample is a pure function of its seed, so a data set is reproducible
from ``(seed, index)`` whatever the order or process that makes it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from grader import handwriting as hw

BOX_MM = (32.0, 12.0)  # width, height of an answer box
DIGIT_BOX_MM = (10.0, 12.0)  # a student-number box
MARGIN_MM = 2.0

# Share of each field kind in training and in the benchmark's field mix.
KIND_WEIGHTS = {"number": 0.76, "blank": 0.08, "smudge": 0.06, "crossed_out": 0.10}
# Share of training fields photographed like the simulator's ``hard`` tier (see _POOR_CAPTURE):
# without them the reader met heavy blur and 2-4 px/mm photos only at run time, and read faint
# numbers there as blank with full confidence instead of being unsure.
TRAINING_POOR_CAPTURE_SHARE = 0.2


# Numbers written in a light pencil (``faint_number_share``): as faint as the darker erasures
# (erased_ink leaves at most 0.3 of the ink, drawn at 0.4-0.9), but whole strokes.
FAINT_NUMBER_DARKNESS = (0.12, 0.4)


@dataclass(frozen=True)
class CaptureRange:
    """Camera ranges in millimetres on the page (uniform ``(lo, hi)`` pairs)."""

    defocus_mm: tuple[float, float]  # Gaussian sigma
    motion_prob: float
    motion_mm: tuple[float, float]  # length of the shake
    sensor_px_per_mm: tuple[float, float] | None  # None: the crop's own resolution
    noise: tuple[float, float]  # grey levels
    jpeg_quality: tuple[int, int]


_GOOD_CAPTURE = CaptureRange((0.0, 0.15), 0.15, (0.1, 0.4), None, (0.5, 7.0), (45, 96))
# The hard tier: a 1600 px frame puts 2-4 px on a millimetre, defocus of 0.15-0.4 mm and
# shake of 0.4-1.3 mm on most photos (grader.simulate.TIERS["hard"] at those frame sizes).
_POOR_CAPTURE = CaptureRange((0.12, 0.4), 0.6, (0.4, 1.3), (2.0, 4.5), (3.0, 9.0), (55, 81))


@dataclass(frozen=True)
class FieldSample:
    """One synthetic crop: ``image`` ``uint8`` ``(H, W)``, what it shows and its text."""

    image: np.ndarray
    status: str  # one of grader.read.STATUSES
    text: str  # the number written ("" unless status is "number" or "crossed_out")


class TrainingGlyphs:
    """Digits from MNIST or the procedural glyphs, symbols from MDAS or the procedural ones.

    The MDAS symbols come from two writers only, so half the minus signs and decimal points
    are procedural (``symbol_stroke_share``), which keeps the model from learning those two
    writers' habits.  ``digit_stroke_share`` is the same choice for each digit.
    """

    def __init__(
        self,
        mnist: hw.GlyphSource | None,
        symbol_stroke_share: float = 0.5,
        digit_stroke_share: float = 0.0,
        digit_warp_share: float = 0.0,
        barred_seven_share: float = 0.0,
        thin_one_share: float = 0.0,
    ) -> None:
        self.mnist = mnist
        self.strokes = hw.StrokeGlyphs()
        self.symbol_stroke_share = symbol_stroke_share if mnist is not None else 1.0
        self.digit_stroke_share = digit_stroke_share if mnist is not None else 1.0
        self.digit_warp_share = digit_warp_share
        self.barred_seven_share = barred_seven_share
        self.thin_one_share = thin_one_share

    def glyph(self, char: str, rng: np.random.Generator) -> np.ndarray:
        """A glyph of ``char``: ``float32`` ``(28, 28)`` ink in ``0..1``."""
        if char == hw.DECIMAL_COMMA:  # the data hold no commas
            return self.strokes.glyph(char, rng)
        share = self.digit_stroke_share if char.isdigit() else self.symbol_stroke_share
        if self.mnist is None or rng.random() < share:
            return self.strokes.glyph(char, rng)
        glyph = self.mnist.glyph(char, rng)
        # Each drawn only when asked for, so a recipe without it keeps its streams.
        if char == "7" and self.barred_seven_share > 0 and rng.random() < self.barred_seven_share:
            glyph = bar_seven(glyph, rng)
        if char.isdigit() and self.digit_warp_share > 0 and rng.random() < self.digit_warp_share:
            glyph = warp_glyph(glyph, rng)
        if char == "1" and self.thin_one_share > 0 and rng.random() < self.thin_one_share:
            glyph = thin_stroke(glyph, rng)
        return glyph


# Many writers cross the stem of a 7.  MNIST holds few such sevens, and a lone barred 7 looks
# like a crossed-out digit to a reader that has seldom seen one (four of the nine lone
# validation digits model 1.5 called crossed out).  The bar crosses the stem a little below
# the middle of the ink, as wide as half to three quarters of the seven, nearly level, as
# thick as the stem, so it stays inside the digit's own width where a strike-through
# (grader.handwriting.cross_out) runs past both ends of what it cancels.
BAR_HEIGHT = (0.45, 0.62)  # where it crosses, as a share of the ink's height from its top
BAR_WIDTH = (0.5, 0.75)  # its length, as a share of the ink's width
BAR_TILT_DEG = 6.0


def bar_seven(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of a ``float32`` ``(H, W)`` seven with a bar through its stem (ink 0..1).

    Returns the glyph unchanged when no stem is found where the bar would cross it (a seven
    drawn too faint or too flat to place one).
    """
    rows = np.flatnonzero(glyph.max(axis=1) > 0.5)
    cols = np.flatnonzero(glyph.max(axis=0) > 0.5)
    if len(rows) < 8 or len(cols) < 4:
        return glyph
    top, height, width = rows[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    y = top + rng.uniform(*BAR_HEIGHT) * height
    stem = np.flatnonzero(glyph[round(float(y))] > 0.5)
    if len(stem) == 0 or stem[-1] - stem[0] + 1 > 0.4 * width:  # no stem, or more than one
        return glyph
    centre = float(stem.mean()) + rng.normal(0.0, 0.5)
    half = rng.uniform(*BAR_WIDTH) * width / 2
    slope = np.tan(np.radians(rng.normal(0.0, BAR_TILT_DEG)))
    thickness = int(np.clip(round(stroke_width(glyph) * rng.uniform(0.8, 1.1)), 1, 4))
    bar = np.zeros_like(glyph)
    # Kept within the seven's own width, inked ends included.
    left = max(centre - half, cols[0] + thickness / 2) - centre
    right = min(centre + half, cols[-1] - thickness / 2) - centre
    ends = [(centre + dx, y + dx * slope) for dx in (left, right)]
    a, b = ((round(px * 16), round(py * 16)) for px, py in ends)
    cv2.line(bar, a, b, float(glyph.max()), thickness, cv2.LINE_AA, shift=4)
    return np.maximum(glyph, bar)


def stroke_width(glyph: np.ndarray) -> float:
    """A glyph's typical stroke width in pixels: its inked area over half its outline."""
    mask = (glyph > 0.5).astype(np.uint8)
    outline = int(mask.sum()) - int(cv2.erode(mask, np.ones((3, 3), np.uint8)).sum())
    return 2.0 * float(mask.sum()) / max(outline, 1)


# Model 1.5 reads a lone "1" as a blank box when its stroke is thin: most of the ones it
# misses are 2 px wide on the network's input, where the 5th percentile of those it reads is
# 3 px, and a blank box's leftover piece of side is such a thin upright bar.  Thinning a
# share of the training ones (``thin_one_share``) gives more such strokes that mean "1".
# Horizontal grey erosion narrows an upright stroke by a pixel per pass and keeps its length.
THIN_PASSES = (1, 2)
THIN_KEEP_INK = 0.35  # a thinned glyph keeps at least this share of its inked pixels
THIN_KEEP_HEIGHT = 0.85  # and of its inked height, or it is drawn with fewer passes


def thin_stroke(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of a ``float32`` ``(H, W)`` glyph (ink 0..1) with narrower upright strokes.

    One or two passes of a two-pixel horizontal erosion, fewer where more would break the
    stroke; the glyph unchanged where even one pass would.
    """
    inked = glyph > 0.5
    height = _inked_height(inked)
    kernel = np.ones((1, 2), np.uint8)
    for passes in range(int(rng.integers(THIN_PASSES[0], THIN_PASSES[1] + 1)), 0, -1):
        thinned = cv2.erode(glyph, kernel, iterations=passes)
        kept = thinned > 0.5
        if (kept.sum() >= THIN_KEEP_INK * inked.sum()
                and _inked_height(kept) >= THIN_KEEP_HEIGHT * height > 0):
            return thinned
    return glyph


def _inked_height(mask: np.ndarray) -> int:
    """Rows from the first inked one to the last (0 for no ink)."""
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0


# Elastic warp of one MNIST glyph: a smooth random displacement field (Gaussian-filtered noise,
# in pixels of the 28 x 28 image) plus a small rotation and shear.  The 55 000 training digits
# come from a few hundred writers; warping each draw makes new, still legible shapes of the same
# digit, the classic remedy for a digit reader that knows its writers better than new ones.
WARP_SIGMA_PX = 4.0
WARP_ALPHA_PX = (0.6, 1.8)  # root-mean-square displacement
WARP_ROTATION_DEG = 6.0
WARP_SHEAR = 0.15


@functools.cache
def _centred_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to the image centre: ``float32`` ``(H, W)`` x and y."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx - (w - 1) / 2, yy - (h - 1) / 2


def warp_glyph(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An elastically warped copy of a ``float32`` ``(H, W)`` glyph (same shape, ink 0..1)."""
    h, w = glyph.shape
    alpha = rng.uniform(*WARP_ALPHA_PX)
    field = rng.uniform(-1.0, 1.0, (2, h, w)).astype(np.float32)
    dx, dy = (cv2.GaussianBlur(f, (0, 0), WARP_SIGMA_PX) for f in field)
    # Normalised so that alpha is the typical displacement whatever the filter's smoothing.
    scale = alpha / max(float(np.sqrt((dx**2 + dy**2).mean())), 1e-6)
    angle = np.radians(rng.normal(0.0, WARP_ROTATION_DEG))
    shear = rng.uniform(-WARP_SHEAR, WARP_SHEAR)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    u, v = _centred_grid(h, w)
    cos, sin = np.cos(angle), np.sin(angle)
    map_x = (cos * u - sin * v + shear * v + cx + dx * scale).astype(np.float32)
    map_y = (sin * u + cos * v + cy + dy * scale).astype(np.float32)
    out = cv2.remap(glyph, map_x, map_y, cv2.INTER_LINEAR, borderValue=0.0)
    return out if float(out.max()) > 0.3 else glyph


class Synthesizer:
    """Makes :class:`FieldSample` crops from a glyph source.

    ``mnist`` draws digits and the minus and dot; ``stroke_share`` is the fraction of numbers
    written entirely with procedural glyphs (so the model also reads the simulator's
    handwriting when no data is installed); in the other numbers, each symbol and each digit
    is procedural with ``symbol_stroke_share`` and ``digit_stroke_share``, and each MNIST digit
    is elastically warped with ``digit_warp_share``, and each MNIST seven given a bar through
    its stem with ``barred_seven_share``, and each MNIST one thinned with ``thin_one_share``
    (see :class:`TrainingGlyphs`).  A share
    ``decimal_comma_share`` of the numbers with a decimal point are written with a decimal comma
    instead, still labelled with the point: the reader reads a comma as ``.``.
    ``ink_darkness`` fixes how dark the writing is (see :func:`grader.handwriting.draw_ink`);
    otherwise a share ``faint_number_share`` of the numbers is written in faint pencil
    (FAINT_NUMBER_DARKNESS), which the reader must still read as numbers.
    """

    def __init__(
        self,
        mnist: hw.GlyphSource | None,
        stroke_share: float = 0.15,
        symbol_stroke_share: float = 0.5,
        digit_stroke_share: float = 0.0,
        clean: bool = False,
        poor_capture_share: float = 0.0,
        digit_warp_share: float = 0.0,
        barred_seven_share: float = 0.0,
        thin_one_share: float = 0.0,
        decimal_comma_share: float = 0.0,
        ink_darkness: float | None = None,
        faint_number_share: float = 0.0,
    ) -> None:
        self.mnist_like = TrainingGlyphs(
            mnist,
            symbol_stroke_share,
            digit_stroke_share,
            digit_warp_share,
            barred_seven_share,
            thin_one_share,
        )
        self.strokes = hw.StrokeGlyphs()
        self.stroke_share = stroke_share if mnist is not None else 1.0
        self.clean = clean
        self.poor_capture_share = poor_capture_share
        self.decimal_comma_share = decimal_comma_share
        self.ink_darkness = ink_darkness  # None: each field's own, 0.4-0.9 (hw.draw_ink)
        self.faint_number_share = faint_number_share

    def sample(self, rng: np.random.Generator, kind: str | None = None) -> FieldSample:
        """A random field crop; ``kind`` forces one of :data:`KIND_WEIGHTS`'s keys."""
        if kind is None:
            kinds = list(KIND_WEIGHTS)
            kind = str(rng.choice(kinds, p=list(KIND_WEIGHTS.values())))
        digit_box = rng.random() < 0.1
        text = (
            str(int(rng.integers(10)))
            if digit_box
            else hw.random_answer(rng, max_len=int(rng.choice([6, 6, 4, 3])))
        )
        return self.render(text, kind, rng, digit_box=digit_box)

    def render(
        self, text: str, kind: str, rng: np.random.Generator, digit_box: bool = False
    ) -> FieldSample:
        """Write ``text`` as a field of ``kind`` into a box and photograph it."""
        source: hw.GlyphSource = (
            self.strokes if rng.random() < self.stroke_share else self.mnist_like
        )
        ppm = float(rng.choice([rng.uniform(5.0, 10.0), 10.0]))  # px per mm
        box_w, box_h = DIGIT_BOX_MM if digit_box else BOX_MM
        box = (box_w * ppm, box_h * ppm)
        crop_w = round((box_w + 2 * MARGIN_MM) * ppm)
        crop_h = round((box_h + 2 * MARGIN_MM) * ppm)
        ink = _handwriting(self._as_written(text, rng), kind, source, rng, box, ppm)
        # Drawn only when asked for, so a synthesizer without poor captures keeps its streams.
        poor = self.poor_capture_share > 0 and rng.random() < self.poor_capture_share
        camera = None if self.clean else _POOR_CAPTURE if poor else _GOOD_CAPTURE
        darkness = self._darkness(kind, rng)
        image = _photograph(ink, rng, (crop_w, crop_h), box, ppm, camera, darkness)
        shown = text if kind in ("number", "crossed_out") else ""
        return FieldSample(image=image, status=kind, text=shown)

    def _darkness(self, kind: str, rng: np.random.Generator) -> float | None:
        """The writing's darkness: fixed, or faint for a share of numbers, else None (drawn
        by :func:`grader.handwriting.draw_ink`, 0.4-0.9)."""
        if self.ink_darkness is not None:
            return self.ink_darkness
        # Drawn only when asked for, so a synthesizer without faint numbers keeps its streams.
        share = self.faint_number_share
        if kind == "number" and share > 0 and rng.random() < share:
            return float(rng.uniform(*FAINT_NUMBER_DARKNESS))
        return None

    def _as_written(self, text: str, rng: np.random.Generator) -> str:
        """``text`` with its decimal point written as a comma, for a share of such numbers."""
        share = self.decimal_comma_share
        if "." not in text or share <= 0:
            return text
        # Drawn only when it decides something, so shares 0 and 1 keep the other streams.
        if share >= 1 or rng.random() < share:
            return text.replace(".", hw.DECIMAL_COMMA)
        return text


def _handwriting(
    text: str,
    kind: str,
    source: hw.GlyphSource,
    rng: np.random.Generator,
    box: tuple[float, float],
    ppm: float,
) -> np.ndarray:
    """Ink for the box interior plus the margin: ``float32`` ``(crop_h, crop_w)``."""
    box_w, box_h = box
    margin = MARGIN_MM * ppm
    crop_w, crop_h = round(box_w + 2 * margin), round(box_h + 2 * margin)
    canvas = np.zeros((crop_h, crop_w), dtype=np.float32)
    if kind == "blank":
        written = None
    elif kind == "smudge":
        ghost = hw.random_answer(rng) if rng.random() < 0.7 else ""
        written = hw.erased_ink(ghost, source, rng, round(box_h), round(box_w))
    else:
        # Mostly inside the box; sometimes larger than it, so strokes cross the border.
        height = round(box_h * rng.uniform(0.75, 1.0) if rng.random() < 0.85 else box_h * 1.15)
        width = round(box_w * rng.uniform(0.8, 1.0))
        written = hw.compose_number(text, source, rng, height, width)
        if kind == "crossed_out":
            written = hw.cross_out(written, rng)
        elif rng.random() < 0.08:
            old = hw.erased_ink(hw.random_answer(rng), source, rng, height, width)
            written = np.maximum(written, old)  # rewritten over an erased answer
    if written is not None:
        y = margin + (box_h - written.shape[0]) / 2 + rng.normal(0, 0.05) * box_h
        x = margin + (box_w - written.shape[1]) / 2 + rng.normal(0, 0.02) * box_w
        x, y = _keep_inside(written, x, y, (crop_w, crop_h), 1.0 * ppm)
        _paste_max(canvas, written, x, y)
    if rng.random() < 0.06:
        canvas = hw.stray_mark(canvas, rng)
    return canvas


def _keep_inside(
    ink: np.ndarray, x: float, y: float, size: tuple[int, int], edge: float
) -> tuple[int, int]:
    """Shift a placement so the ink stays ``edge`` px inside the crop.

    Writing may cross the box border into the margin, but a digit cut off by the crop's own
    edge would be a training label the image does not show.
    """
    box = hw.ink_bbox(ink)
    if box is None:
        return round(x), round(y)
    x0, y0, x1, y1 = box
    crop_w, crop_h = size
    x = min(max(x, edge - x0), max(edge - x0, crop_w - edge - x1))
    y = min(max(y, edge - y0), max(edge - y0, crop_h - edge - y1))
    return round(x), round(y)


def _paste_max(canvas: np.ndarray, ink: np.ndarray, x: int, y: int) -> None:
    """Merge ``ink`` into ``canvas`` at ``(x, y)`` by maximum, clipping at the edges."""
    ch, cw = canvas.shape
    ih, iw = ink.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + iw, cw), min(y + ih, ch)
    if x1 > x0 and y1 > y0:
        region = canvas[y0:y1, x0:x1]
        np.maximum(region, ink[y0 - y : y1 - y, x0 - x : x1 - x], out=region)


def _photograph(
    ink: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
    box: tuple[float, float],
    ppm: float,
    camera: CaptureRange | None,
    darkness: float | None = None,
) -> np.ndarray:
    """Paper, printed box, handwriting, camera (None: a clean crop), then line removal."""
    crop_w, crop_h = size
    page = hw.paper(crop_h, crop_w, rng)
    lines = _box_lines(rng, size, box, ppm)
    line_level = rng.uniform(0.45, 0.85)
    page = (page * (1.0 - lines * line_level)).astype(np.uint8)
    page = hw.draw_ink(page, ink, rng, darkness=darkness)
    if camera is None:
        return _remove_lines(page, lines, rng, keep=0.0)
    img = _camera(page.astype(np.float32), rng, ppm, camera)
    return _remove_lines(img, lines, rng, keep=float(rng.uniform(0.0, 0.2)))


def _box_lines(
    rng: np.random.Generator, size: tuple[int, int], box: tuple[float, float], ppm: float
) -> np.ndarray:
    """The printed box border as ``float32`` ``(H, W)`` coverage, slightly rotated and offset."""
    crop_w, crop_h = size
    box_w, box_h = box
    lines = np.zeros((crop_h, crop_w), dtype=np.float32)
    thickness = max(1, round(rng.uniform(0.2, 0.5) * ppm))
    cx = crop_w / 2 + rng.normal(0, 0.4) * ppm
    cy = crop_h / 2 + rng.normal(0, 0.4) * ppm
    sw, sh = box_w / 2 + rng.normal(0, 0.2) * ppm, box_h / 2 + rng.normal(0, 0.2) * ppm
    angle = np.radians(rng.normal(0, 0.8))
    corners = np.array([[-sw, -sh], [sw, -sh], [sw, sh], [-sw, sh]])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = corners @ rot.T + [cx, cy]
    pts16 = np.round(pts * 16).astype(np.int32)
    cv2.polylines(lines, [pts16], True, 1.0, thickness, cv2.LINE_AA, shift=4)
    return lines


def _camera(
    img: np.ndarray, rng: np.random.Generator, ppm: float, capture: CaptureRange
) -> np.ndarray:
    """Phone-photo effects on a ``float32`` page ``(H, W)`` in 0..255; returns ``uint8``."""
    h, w = img.shape
    # Uneven light: a tilted plane times a soft blob, like a lamp and a hand's shadow.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.normal(0, 0.25, 2)
    light = 1.0 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5)
    if rng.random() < 0.3:
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.3, 1.0) * w
        light *= 1.0 - rng.uniform(0.1, 0.35) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / r**2)
    exposure = rng.uniform(0.6, 1.05)
    img = img * light * exposure
    # Small geometric error of the alignment: rotation, scale and shift of about 1 mm.
    angle = rng.normal(0, 1.2)
    scale = rng.uniform(0.94, 1.06)
    matrix = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale), np.float64)
    matrix[:, 2] = matrix[:, 2] + rng.normal(0, 0.3, 2) * ppm
    border = float(np.median(img[:, : max(1, w // 10)]))
    img = cv2.warpAffine(
        img,
        matrix,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )
    img = _optics(img, rng, ppm, capture)
    return _sensor(img, rng, ppm, capture)


def _optics(
    img: np.ndarray, rng: np.random.Generator, ppm: float, capture: CaptureRange
) -> np.ndarray:
    """Defocus and, on some photos, a straight camera shake."""
    sigma = rng.uniform(*capture.defocus_mm) * ppm
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < capture.motion_prob:
        length = max(2, int(rng.uniform(*capture.motion_mm) * ppm))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2, length / 2), rng.uniform(0, 180), 1.0)
        img = cv2.filter2D(img, -1, cv2.warpAffine(kernel, rot, (length, length)))
    return img


def _sensor(
    img: np.ndarray, rng: np.random.Generator, ppm: float, capture: CaptureRange
) -> np.ndarray:
    """Sampling, noise and JPEG; a coarse sensor is sampled down, then up to the crop's size,
    as the page pipeline's warp enlarges a low-resolution photo."""
    h, w = img.shape
    if capture.sensor_px_per_mm is not None:
        factor = min(1.0, rng.uniform(*capture.sensor_px_per_mm) / ppm)
        small = (max(8, round(w * factor)), max(8, round(h * factor)))
        img = cv2.resize(img, small, interpolation=cv2.INTER_AREA)
    img = img + rng.normal(0, rng.uniform(*capture.noise), img.shape)
    out = np.clip(img, 0, 255).astype(np.uint8)
    quality = int(rng.integers(*capture.jpeg_quality))
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
    out = decoded if decoded is not None else out
    if out.shape != (h, w):
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out


def _remove_lines(
    img: np.ndarray, lines: np.ndarray, rng: np.random.Generator, keep: float
) -> np.ndarray:
    """The extractor's line removal: paint most of the border with the local paper colour.

    Removal is imperfect: whole runs of the border survive (``keep`` is about the share kept),
    the rest leaves a faint trace, and handwriting crossing the line is cut where it was
    painted over, as the real extractor does.  ``img`` is ``uint8`` ``(H, W)``.
    """
    h, w = img.shape
    mask = lines > 0.2
    if not mask.any():
        return img
    # Which parts survive: a random on/off pattern along the border, in runs of a few mm.
    runs = rng.random((max(2, h // 12), max(2, w // 12))) < keep
    survive = cv2.resize(runs.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    if rng.random() < 0.05:
        survive[:] = True  # the extractor missed the box entirely
    erase = mask & ~survive
    erase = cv2.dilate(erase.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    paper = cv2.dilate(img, np.ones((7, 7), np.uint8))  # local paper brightness
    trace = rng.uniform(0.0, 0.25)
    out = img.astype(np.float32)
    out[erase] = paper[erase] * (1 - trace) + out[erase] * trace
    return np.clip(out, 0, 255).astype(np.uint8)


def make_synthesizer(data_dir: Path | None, split: str, **kwargs: float) -> Synthesizer:
    """A synthesizer on MNIST glyphs of ``split`` when the data exists, procedural otherwise."""
    directory = data_dir if data_dir is not None else hw.default_data_dir()
    mnist = hw.MnistGlyphs(directory, split) if (directory / "mnist").is_dir() else None
    return Synthesizer(mnist, **kwargs)  # type: ignore[arg-type]
