"""The handwritten number reader: field crop in, value with a calibrated confidence out.

Runs the exported ONNX model with onnxruntime (no torch at run time).  The preprocessing
here is also what the training code feeds the network, so both see identical inputs.

A *field crop* is a grayscale ``uint8`` image ``(H, W)``: paper around 200-255, darker ink, the
answer box plus a margin of about 2 mm, at about 10 px/mm; any size and aspect is accepted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from grader.errors import ReaderModelError

INPUT_HEIGHT = 32
INPUT_WIDTH = 128
# Working height for lighting and line clean-up: twice the network's, so that thin printed
# lines are still lines and not a grey haze when they are found.
_WORK_HEIGHT = 2 * INPUT_HEIGHT
# Thickest printed border remnant, as a share of the crop height: 0.5 mm lines, blurred,
# in a 16 mm crop.  Pen and pencil strokes of digits that size are thicker.
_LINE_THICKNESS = 0.055
STATUSES = ("number", "blank", "smudge", "crossed_out")
CONFIG_VERSION = 1
# Framed ink: what the reading window and the rules about it count as written.
FRAMED_INK = 0.35
Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any crop as ``uint8`` grayscale ``(H, W)``: accepts gray, BGR, BGRA, or float in 0..1."""
    arr = np.asarray(image)
    if arr.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if arr.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        arr = cv2.cvtColor(arr, code) if arr.shape[2] in (3, 4) else arr[:, :, 0]
    if arr.ndim != 2 or arr.shape[0] < 4 or arr.shape[1] < 4:
        raise ValueError(f"a field crop must be a 2-D image of at least 4x4, not {arr.shape}")
    if arr.dtype != np.uint8:
        scale = 255.0 if arr.dtype.kind == "f" and float(arr.max(initial=0)) <= 1.0 else 1.0
        arr = np.clip(arr.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    return arr


def ink_map(gray: np.ndarray) -> np.ndarray:
    """Normalise lighting: ``uint8`` ``(H, W)`` in, ``float32`` ink ``(H, W)`` in ``0..1`` out.

    The paper's brightness is estimated with a grey-level closing larger than any pen stroke
    (ink is dark, so a max filter removes it), and ink is the relative darkening against that.
    Contrast is then stretched so the darkest strokes reach about 1, but never by more than a
    fixed factor, so that a blank box's grain and faint erasures stay faint.
    """
    h = gray.shape[0]
    img = gray.astype(np.float32)
    k = max(3, (h // 5) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    background = cv2.dilate(img, kernel)
    background = cv2.blur(background, (k, k))
    background = np.maximum(background, 1.0)
    ink = np.clip(1.0 - img / background, 0.0, 1.0)
    strong = float(np.percentile(ink, 99.7))
    return np.clip(ink / max(strong, 0.45), 0.0, 1.0).astype(np.float32)


def remove_box_lines(ink: np.ndarray) -> np.ndarray:
    """Erase long, thin, straight printed-line remnants where the box border can be.

    ``ink`` is ``float32`` ``(H, W)`` in ``0..1``; returns a cleaned copy.  A run of ink is
    taken for the border only when it is about as long as the box's side (horizontal: over
    45 % of the height and half the width; vertical: over 72 % of the height, where the box
    is 75 %), lies in the band of the crop where the border sits (the crop has a margin of
    about 2 mm around a 12 mm box), and is no thicker than a printed line.  Shorter remnants
    are left to the network, which is trained on them.  A student's "1" or the bar of a "7"
    written against the border is thicker or shorter, so it stays.
    """
    h, w = ink.shape
    # A low level: after blur a thin printed line is faint, and straightness is the real test.
    mask = (ink > 0.2).astype(np.uint8)
    long_h = min(w - 1, max(int(0.45 * h), int(0.5 * w)))
    long_v = min(h - 1, int(0.72 * h))
    max_thickness = max(2.0, _LINE_THICKNESS * h)
    lines: np.ndarray = np.zeros_like(mask)
    if long_h >= 3:
        horiz = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((1, long_h), np.uint8))
        band = max(1, int(0.25 * h))
        horiz[band : h - band, :] = 0
        lines = lines | _thin_runs(horiz, mask, max_thickness, vertical=False)
    if long_v >= 3:
        vert = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((long_v, 1), np.uint8))
        band = max(1, min(int(0.2 * w), int(0.3 * h)))
        vert[:, band : w - band] = 0
        lines = lines | _thin_runs(vert, mask, max_thickness, vertical=True)
    if not lines.any():
        return ink
    # Grow by one pixel to take the anti-aliased fringe of the line with it.
    grown = cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8))
    out = ink.copy()
    out[grown > 0] = 0.0
    return out


def _thin_runs(
    runs: np.ndarray, mask: np.ndarray, max_thickness: float, vertical: bool
) -> np.ndarray:
    """The connected runs of ``runs`` (``uint8`` 0/1) whose ink is no thicker than a line.

    Thickness is measured on the ink ``mask`` itself next to the run, not on the run: a
    slanted, thick "1" still holds a thin perfectly vertical run, but not a thin stroke.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
    keep = np.zeros(n, dtype=bool)
    reach = max(1, round(max_thickness))
    for i in range(1, n):
        x, y, w, h = (int(v) for v in stats[i, :4])
        if vertical:
            near = mask[y : y + h, max(0, x - reach) : x + w + reach]
            length = h
        else:
            near = mask[max(0, y - reach) : y + h + reach, x : x + w]
            length = w
        keep[i] = float(near.sum()) / max(1, length) <= max_thickness
    return keep[labels].astype(np.uint8)


def _ink_box(ink: np.ndarray) -> Box | None:
    """Box ``(x0, y0, x1, y1)`` around the ink components worth reading, or None if none.

    Specks are ignored, and so are thin horizontal dashes in the top and bottom bands that lie
    above or below everything else: those are what is left of the box's top and bottom lines,
    and counting them would shrink the digits by stretching the window to the crop's full
    height. A dash level with the other ink is kept: a minus sign before digits written high
    or low in the box sits there too.
    """
    keep = framed_components(ink)
    if not keep:
        return None
    xs0, ys0, xs1, ys1 = zip(*keep, strict=True)
    return min(xs0), min(ys0), max(xs1), max(ys1)


def ink_components(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and ``cv2.connectedComponentsWithStats`` rows of the framed ink's components
    (row 0 is the background)."""
    mask = (ink > FRAMED_INK).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return labels, stats


def framed_components(ink: np.ndarray, stats: np.ndarray | None = None) -> list[Box]:
    """Boxes ``(x0, y0, x1, y1)`` of the ink components :func:`_ink_box` frames (``stats``:
    those of :func:`ink_components`, when already found)."""
    h = ink.shape[0]
    if stats is None:
        stats = ink_components(ink)[1]
    min_area = max(2, int(h * h * 0.0015))
    keep: list[Box] = []
    dashes: list[Box] = []
    for i in range(1, len(stats)):
        x, y, cw, ch, area = (int(v) for v in stats[i, :5])
        if area < min_area:
            continue
        centre = y + ch / 2
        dash = ch <= 0.05 * h and cw >= 2.5 * ch and not 0.3 * h < centre < 0.7 * h
        (dashes if dash else keep).append((x, y, x + cw, y + ch))
    if not keep:
        return []
    top, bottom = min(b[1] for b in keep), max(b[3] for b in keep)
    return keep + [d for d in dashes if top <= (d[1] + d[3]) / 2 <= bottom]


@dataclass(frozen=True)
class View:
    """One way of framing a crop for the network (see :data:`VIEWS`).

    ``pad``: padding around the ink as a share of its height; ``shift``: horizontal offset
    of the framed ink in the network input, in input pixels.
    """

    pad: float = 0.12
    shift: int = 0


# The views a field is read through; their readings are averaged (see Reader.read_batch).
# The first is the framing the model is trained on; the others frame the same ink a little
# looser and off-centre, so a reading that only holds for one exact framing loses weight.
VIEWS = (View(), View(pad=0.22, shift=-6), View(pad=0.05, shift=6))


def _reading_window(ink: np.ndarray, view: View = VIEWS[0]) -> tuple[int, int, int, int]:
    """The part of the crop the network looks at: the ink with padding, never too small.

    Cropping to the ink makes digits a similar size whatever the box's margin, while the
    minimum height (45 % of the crop) keeps a lone dot or dash small, as written.
    """
    h, w = ink.shape
    box = _ink_box(ink)
    if box is None:
        return 0, 0, w, h
    x0, y0, x1, y1 = box
    band = max(y1 - y0, int(0.45 * h))
    cy = (y0 + y1) / 2
    pad = view.pad * band
    top = int(max(0, math.floor(cy - band / 2 - pad)))
    bottom = int(min(h, math.ceil(cy + band / 2 + pad)))
    left = int(max(0, math.floor(x0 - 0.2 * band)))
    right = int(min(w, math.ceil(x1 + 0.2 * band)))
    if right - left < bottom - top:  # at least square, so a lone "1" is not stretched
        extra = (bottom - top) - (right - left)
        left = max(0, left - extra // 2)
        right = min(w, right + extra - extra // 2)
    return left, top, right, bottom


# A "no answer" reading is doubted when the box holds an upright stroke away from its sides:
# taller than this share of the crop, at most this wide for its height, its centre at least
# this far (as a share of the crop height: 0.25 is 4 mm, 2 mm inside the box) from both
# ends of the crop.  A stroke is ink above STROKE_INK whose darkest point reaches
# STROKE_PEAK: a "1" in the shade of a curled page fell apart above 0.5 into pieces too short
# to count, and was graded blank.
STROKE_MIN_HEIGHT = 0.3
STROKE_MAX_ASPECT = 0.35
STROKE_SIDE_MARGIN = 0.25
STROKE_INK = 0.3
STROKE_PEAK = 0.5
# The confidence such a reading keeps at most: below every threshold the reader uses.
DOUBTED_EMPTY_CONFIDENCE = 0.5
# Numbers written in a light pencil: training writes numbers at 0.4-0.9 of full darkness and
# erasures fainter, so the network takes an intact but faint number for a smudge, with full
# confidence, and a right answer would be graded as none.  A "no answer" reading is read again
# from the ink stretched so that the darkest ink inside the box (this share of the crop's
# height, 3 mm, in from its ends: clear of the box's sides and their remnants) is full
# darkness, by at most 1 / FAINT_STRETCH_FLOOR; a number read there at FAINT_NUMBER_CONFIDENCE
# or more sends the field to review.  Boxes already that dark are not read again.  What is
# left of printed lines does not count towards that darkness (see printed_line_marks): a box
# photographed off its place puts a dark side inside that band, and a faint number beside it
# was then taken as already dark enough.
FAINT_INSET = 0.1875
FAINT_STRETCH_FLOOR = 0.12
FAINT_LEVEL = 0.9
FAINT_NUMBER_CONFIDENCE = 0.5
# A printed line's remnant: a straight run of ink above this level, at least this share of
# the crop's height long (4 mm: pieces of a side are often short), horizontal or vertical,
# grown by this many pixels for its fringe.  A dark "1" drawn dead straight counts too; that
# only means a reading of no answer over it is read again.
LINE_MARK_INK = 0.35
LINE_MARK_RUN = 0.25
LINE_MARK_FRINGE = 2
# Writing the reading window leaves out: the window frames ink above 0.35 (see _ink_box), so a
# "1" drawn lighter than the "0" beside it falls outside and "10" is read "0" with full
# confidence.  A stroke counts as such writing when its ink, above LEFT_OUT_LEVEL, stands at
# least LEFT_OUT_HEIGHT of the framed ink's height, level with it (most of its height inside
# the framed band), beside it (no further than that height) and clear of the box's sides (see
# STROKE_SIDE_MARGIN).  The number is read again with such strokes made as dark as the framed
# ink, and goes to review unless that reading is the same number, as sure as the page's
# threshold asks: the network may still discount a thin stroke beside the digits as a
# remnant of the box's side, but no longer with full confidence.
LEFT_OUT_LEVEL = 0.15
LEFT_OUT_HEIGHT = 0.6
# A minus sign drawn lighter than the digits after it is left out the same way ("-6" read
# "6" at 0.997).  A flat stroke before the framed ink counts as such writing when it is at
# least LEFT_OUT_DASH of the framed ink's height long, no taller than half its length, with
# its middle in the middle half of the framed band, and beside it as above.
LEFT_OUT_DASH = 0.3
# Framed ink (above 0.35 in ink_map, which stretches by at most 1 / 0.45) is at least
# 0.35 x 0.45 = 16 % darker than the paper around it: 215 or darker even on paper of 255.
# A crop's margin with no pixel this dark holds none, and stroke_beyond looks no further.
BEYOND_DARKEST = 220
# A decimal point or comma the reading left out: the network has read "5,5" as "55" and
# "9.2" as "92" above every threshold, taking the mark for a speck.  An accepted reading
# without a point goes to review when the ink holds a point-sized mark (see
# unread_point_marks) among the digits.  The digits are the framed components at least
# POINT_DIGIT_SHARE as tall as the tallest, less what is left of the box: thin upright pieces
# (at most POINT_REMNANT_WIDTH of the crop's height wide) within POINT_REMNANT_SIDE of either
# end, and anything reaching into the crop's top or bottom POINT_REMNANT_EDGE, where the box's
# lines run.  A mark is framed ink (FRAMED_INK) reaching POINT_PEAK, at least POINT_MIN_AREA of the
# crop's height squared, at most POINT_MAX_SIZE of the digits' band high and wide and no
# wider than POINT_MAX_FLATNESS times its height (a dash is not a point).  Its centre lies
# between POINT_LOW of the band down and POINT_BELOW below the band's foot (a comma's tail
# hangs there), above POINT_FLOOR of the crop's height (the box's bottom line), clear of the
# crop's margin (STROKE_SIDE_MARGIN) and of every digit's middle (POINT_DIGIT_CORE of its
# width in from each side), after POINT_LEAD band heights before the first digit (".5") and
# before the middle of the last.
POINT_DIGIT_SHARE = 0.5
POINT_REMNANT_WIDTH = 0.11
POINT_REMNANT_SIDE = 0.2
POINT_REMNANT_EDGE = 0.08
POINT_PEAK = 0.6
POINT_MIN_AREA = 0.0007
POINT_MAX_SIZE = 0.5
POINT_MAX_FLATNESS = 1.6
POINT_LOW = 0.6
POINT_BELOW = 0.45
POINT_FLOOR = 0.8
POINT_DIGIT_CORE = 0.25
POINT_LEAD = 0.8


def upright_stroke(ink: np.ndarray) -> bool:
    """Whether cleaned ink (see :func:`clean_ink`) holds a written upright stroke, such as a
    "1", in the box and clear of its sides.

    The framing cuts every field to its ink, so the network sees a lone "1" and a piece of
    the box's side left after line removal as the same centred bar; it has called clean
    "1"s blank with full confidence.  Where the bar stood tells them apart: the box's sides
    lie 2 mm from the crop's ends, and what is left of them stays within a millimetre or so
    of there, while a stroke in the middle of the box is writing.  (Writing on a side itself
    is found before the lines are painted out: grader.grade.SIDE_WRITING_MM.)
    """
    h, w = ink.shape
    mask = (ink > STROKE_INK).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    margin = STROKE_SIDE_MARGIN * h
    for i in range(1, n):
        x, _, cw, ch = (int(v) for v in stats[i, :4])
        centre = x + cw / 2
        if (ch >= STROKE_MIN_HEIGHT * h and cw <= STROKE_MAX_ASPECT * ch
                and margin <= centre <= w - margin
                and float(ink[labels == i].max()) >= STROKE_PEAK):
            return True
    return False


def doubt_empty_reading(reading: Reading, ink: np.ndarray) -> Reading:
    """``reading``, sent to review when it says blank or smudge over a written stroke."""
    if reading.text is not None or reading.status == "crossed_out" or not upright_stroke(ink):
        return reading
    return doubted(reading)


def doubted(
    reading: Reading, leading: Sequence[tuple[str | None, float]] = ()
) -> Reading:
    """``reading`` sent to review by a second look, its confidence capped below every
    threshold (DOUBTED_EMPTY_CONFIDENCE), with what that look read (``leading``) first among
    its alternatives, each reading listed once."""
    lead = [(text, round(p, 6)) for text, p in leading]
    rest = [(text, p) for text, p in reading.alternatives if text not in dict(lead)]
    return replace(reading, confidence=min(reading.confidence, DOUBTED_EMPTY_CONFIDENCE),
                   alternatives=lead + rest, needs_review=True)


def stretched_ink(ink: np.ndarray) -> np.ndarray | None:
    """Cleaned ink with its faint writing made dark (see FAINT_INSET), or None when the
    box's interior already holds writing dark enough that stretching would change little."""
    h, w = ink.shape
    inset = round(FAINT_INSET * h)
    inside = (slice(inset, h - inset), slice(inset, w - inset))
    writing = ink[inside][~printed_line_marks(ink)[inside]]
    if writing.size == 0:
        return None
    darkest = float(np.percentile(writing, 99.5))
    if darkest >= FAINT_LEVEL:
        return None
    return np.clip(ink / max(darkest, FAINT_STRETCH_FLOOR), 0.0, 1.0).astype(np.float32)


def printed_line_marks(ink: np.ndarray) -> np.ndarray:
    """Boolean mask of what printed lines left in cleaned ink: straight dark runs (see
    LINE_MARK_RUN) with their fringe.  Only for judging how dark the writing is: faint
    writing has no run that dark, and dark writing stays dark elsewhere."""
    h = ink.shape[0]
    dark = (ink > LINE_MARK_INK).astype(np.uint8)
    run = max(3, int(LINE_MARK_RUN * h))
    across = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((1, run), np.uint8))
    down = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((run, 1), np.uint8))
    grow = np.ones((2 * LINE_MARK_FRINGE + 1, 2 * LINE_MARK_FRINGE + 1), np.uint8)
    return np.asarray(cv2.dilate(np.maximum(across, down), grow) > 0)


def doubt_faint_reading(reading: Reading, stretched: Reading) -> Reading:
    """``reading`` (no answer), sent to review when its stretched ink reads as a number; that
    number leads its alternatives, with its probability in the stretched ink."""
    if stretched.text is None or stretched.confidence < FAINT_NUMBER_CONFIDENCE:
        return reading
    return doubted(reading, [(stretched.text, stretched.confidence)])


def left_out_strokes(ink: np.ndarray) -> np.ndarray | None:
    """Mask of the written strokes the reading window leaves out (see LEFT_OUT_LEVEL), or None
    when there are none."""
    box = _ink_box(ink)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    band = y1 - y0
    h, w = ink.shape
    margin = STROKE_SIDE_MARGIN * h
    mask = (ink > LEFT_OUT_LEVEL).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    found = np.zeros(n, dtype=bool)
    for i in range(1, n):
        x, y, cw, ch = (int(v) for v in stats[i, :4])
        level = min(y + ch, y1) - max(y, y0)
        before = x + cw <= x0 and x0 - (x + cw) <= band
        beside = before or (x >= x1 and x - x1 <= band)
        upright = ch >= LEFT_OUT_HEIGHT * band and level >= 0.5 * ch and beside
        dash = (before and cw >= LEFT_OUT_DASH * band and 2 * ch <= cw
                and abs(y + ch / 2 - (y0 + y1) / 2) <= band / 4)
        found[i] = (upright or dash) and margin <= x + cw / 2 <= w - margin
    if not found.any():
        return None
    return found[labels]


def with_strokes_darkened(ink: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """``ink`` with the ``strokes`` mask scaled up to the darkness of the framed ink."""
    box = _ink_box(ink)
    if box is None:  # no framed ink to match (left_out_strokes finds none then)
        return ink
    x0, y0, x1, y1 = box
    framed = ink[y0:y1, x0:x1]
    target = float(np.percentile(framed[framed > FRAMED_INK], 90))
    peak = float(ink[strokes].max())
    out = ink.copy()
    out[strokes] = np.clip(ink[strokes] * (target / max(peak, 1e-6)), 0.0, 1.0)
    return out


def doubt_left_out_reading(reading: Reading, again: Reading, threshold: float) -> Reading:
    """``reading``, sent to review unless ``again`` (the ink it left out, darkened) is read
    as the same number at ``threshold``; the other readings of ``again`` lead its
    alternatives."""
    if again.text == reading.text and again.confidence >= threshold:
        return reading
    others = [(again.text, again.confidence), *again.alternatives]
    return doubted(reading, [(text, p) for text, p in others if text != reading.text][:2])


def _accepted_as_empty(reading: Reading) -> bool:
    return reading.text is None and reading.status != "crossed_out" and not reading.needs_review


def written_digits(ink: np.ndarray, stats: np.ndarray | None = None) -> list[Box]:
    """Boxes of the framed components that stand as tall as digits, without what is left of
    the box's lines (see POINT_DIGIT_SHARE; ``stats`` as for :func:`framed_components`)."""
    h, w = ink.shape

    def box_remnant(b: Box) -> bool:
        centre = (b[0] + b[2]) / 2
        thin_side = (b[2] - b[0] <= POINT_REMNANT_WIDTH * h
                     and min(centre, w - centre) <= POINT_REMNANT_SIDE * h)
        edge = POINT_REMNANT_EDGE * h
        return thin_side or b[1] < edge or b[3] > h - edge

    framed = [b for b in framed_components(ink, stats) if not box_remnant(b)]
    if not framed:
        return []
    tallest = max(b[3] - b[1] for b in framed)
    return [b for b in framed if b[3] - b[1] >= POINT_DIGIT_SHARE * tallest]


class _PointPlaces:
    """Where a decimal point or comma could lie among written digits (see
    POINT_DIGIT_SHARE), for a crop ``shape`` ``(H, W)``."""

    def __init__(self, shape: tuple[int, ...], digits: Sequence[Box]) -> None:
        self.height, self.width = shape[0], shape[1]
        self.digits = digits
        self.top = float(np.median([b[1] for b in digits]))
        self.foot = float(np.median([b[3] for b in digits]))
        self.band = max(1.0, self.foot - self.top)
        self.first = min(b[0] for b in digits) - POINT_LEAD * self.band
        self.last = max((b[0] + b[2]) / 2 for b in digits)

    def holds(self, box: Box, area: int) -> bool:
        """Whether a component of ``area`` pixels in ``box`` is the size of a point and lies
        where one would."""
        x0, y0, x1, y1 = box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        h, band, wide, high = self.height, self.band, x1 - x0, y1 - y0
        point_sized = (area >= POINT_MIN_AREA * h * h and max(wide, high) <= POINT_MAX_SIZE * band
                       and wide <= POINT_MAX_FLATNESS * high + 1)
        lowest = min(self.foot + POINT_BELOW * band, POINT_FLOOR * h)
        low = self.top + POINT_LOW * band <= cy <= lowest
        margin = STROKE_SIDE_MARGIN * h
        among = max(margin, self.first) <= cx < min(self.last, self.width - margin)
        return point_sized and low and among and not any(
            b[0] + POINT_DIGIT_CORE * (b[2] - b[0]) < cx < b[2] - POINT_DIGIT_CORE * (b[2] - b[0])
            for b in self.digits
        )


def unread_point_marks(ink: np.ndarray) -> list[Box]:
    """Boxes of the marks in cleaned ink that could be a decimal point or comma among the
    written digits (see POINT_DIGIT_SHARE)."""
    labels, stats = ink_components(ink)
    digits = written_digits(ink, stats)
    if not digits:
        return []
    places = _PointPlaces(ink.shape, digits)
    marks: list[Box] = []
    for i in range(1, len(stats)):
        x, y, cw, ch, area = (int(v) for v in stats[i, :5])
        box = (x, y, x + cw, y + ch)
        if places.holds(box, area) and float(ink[labels == i].max()) >= POINT_PEAK:
            marks.append(box)
    return marks


def doubt_unread_point(reading: Reading, ink: np.ndarray) -> Reading:
    """``reading``, sent to review when it was accepted without a decimal point over ink that
    holds a mark like one; its likeliest alternative with a point leads its alternatives."""
    text = reading.text
    if text is None or "." in text or reading.needs_review or not unread_point_marks(ink):
        return reading
    with_point = [(alt, p) for alt, p in reading.alternatives if alt is not None and "." in alt]
    return doubted(reading, with_point[:1])


def clean_ink(image: np.ndarray) -> np.ndarray:
    """A crop as ink at the working height: lighting normalised, box-line remnants erased."""
    gray = to_gray(image)
    h, w = gray.shape
    scale = _WORK_HEIGHT / h
    work_w = max(4, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    gray = cv2.resize(gray, (work_w, _WORK_HEIGHT), interpolation=interp)
    return remove_box_lines(ink_map(gray))


def framed_span(crop: np.ndarray) -> tuple[float, float] | None:
    """Where the ink the reader reads lies across a crop: the left and right edges of its
    framing (see :func:`_ink_box`) as shares of the crop's width, or None when it holds no
    ink worth reading."""
    ink = clean_ink(crop)
    box = _ink_box(ink)
    if box is None:
        return None
    width = ink.shape[1]
    return box[0] / width, box[2] / width


def stroke_beyond(crop: np.ndarray, side: str, limit: float) -> bool:
    """Whether the ink the reader frames in ``crop`` (see :func:`_ink_box`) holds a stroke
    whose centre lies beyond ``limit`` (a share of the crop's width from its left end) on
    ``side`` (``"left"`` or ``"right"``), level with the framed ink inside that limit (at
    least half its height within that ink's band) and clear of the crop's top, bottom and
    outer ends: a fold's or a curled edge's shadow runs on past the box, writing does not."""
    cut = round(limit * crop.shape[1])
    margin = crop[:, :cut] if side == "left" else crop[:, cut:]
    if margin.size == 0 or int(margin.min()) > BEYOND_DARKEST:
        return False
    ink = clean_ink(crop)
    x_limit = limit * ink.shape[1]

    def lies_beyond(b: Box) -> bool:
        centre = (b[0] + b[2]) / 2
        return centre < x_limit if side == "left" else centre > x_limit

    framed = framed_components(ink)
    beyond = [b for b in framed if lies_beyond(b)]
    inside = [b for b in framed if not lies_beyond(b)]
    if not beyond or not inside:
        return False
    top, bottom = min(b[1] for b in inside), max(b[3] for b in inside)
    height, width = ink.shape
    clear = [(y0, y1) for x0, y0, x1, y1 in beyond if y0 > 0 and y1 < height
             and (x0 > 0 if side == "left" else x1 < width)]
    return any(min(y1, bottom) - max(y0, top) >= (y1 - y0) / 2 for y0, y1 in clear)


def frame_ink(ink: np.ndarray, view: View = VIEWS[0]) -> np.ndarray:
    """Cleaned ink (see :func:`clean_ink`) framed for the network: ``(INPUT_HEIGHT, INPUT_WIDTH)``.

    Cut to the ink with padding, resized to the input height keeping the aspect ratio
    (squeezed only when wider than the input), placed near the centre on zeros.
    """
    x0, y0, x1, y1 = _reading_window(ink, view)
    window = ink[y0:y1, x0:x1]
    wh, ww = window.shape
    out_w = min(INPUT_WIDTH, max(1, round(ww * INPUT_HEIGHT / wh)))
    small = cv2.resize(window, (out_w, INPUT_HEIGHT), interpolation=cv2.INTER_AREA)
    out = np.zeros((INPUT_HEIGHT, INPUT_WIDTH), dtype=np.float32)
    slack = INPUT_WIDTH - out_w
    left = min(slack, max(0, slack // 2 + view.shift))
    out[:, left : left + out_w] = small
    return out


# Figures a network may read beside its framed input (reader.json: ``input.geometry``).
GEOMETRY_SIZE = 4
GEOMETRY_CAP = 2.0  # crop heights: farther from an end than this is the box's middle anyway


def ink_geometry(ink: np.ndarray) -> np.ndarray:
    """Where the ink :func:`frame_ink` frames lay in the crop: its distances from the crop's
    left, right, top and bottom ends, in crop heights (capped at GEOMETRY_CAP), ``float32``
    ``(4,)``; zeros when there is no ink.

    Framing cuts a field to its ink, which throws this away: a lone "1" in the middle of a
    box and a piece of the box's side left in a blank one become the same upright bar.
    """
    h, w = ink.shape
    box = _ink_box(ink)
    if box is None:
        return np.zeros(GEOMETRY_SIZE, dtype=np.float32)
    x0, y0, x1, y1 = box
    margins = np.array([x0, w - x1, y0, h - y1], dtype=np.float32) / h
    return np.clip(margins, 0.0, GEOMETRY_CAP)


def preprocess(image: np.ndarray, view: View = VIEWS[0]) -> np.ndarray:
    """One field crop to the network's input: ``float32`` ``(INPUT_HEIGHT, INPUT_WIDTH)``.

    Steps: grayscale; resize to a working height; lighting normalised to ink in ``0..1``;
    box-line remnants erased; cut to the ink (with padding); resized to the input height,
    keeping the aspect ratio (squeezed only when wider than the input); centred on zeros.
    """
    return frame_ink(clean_ink(image), view)


# ----------------------------------------------------------------------------------------------
# Decoding: CTC output to candidate numbers with probabilities.

MAX_CHARS = 8  # the worksheets ask for up to 6; a little slack so a long answer is not cut


def valid_prefix(text: str) -> bool:
    """Whether ``text`` can start a number: a minus only first, at most one decimal point."""
    if len(text) > MAX_CHARS or "-" in text[1:]:
        return False
    return text.count(".") <= 1


def valid_number(text: str) -> bool:
    """A complete number: optional minus, digits with at most one point, not ending in one."""
    body = text[1:] if text.startswith("-") else text
    return valid_prefix(text) and any(c.isdigit() for c in body) and not body.endswith(".")


def softmax(logits: np.ndarray, temperature: float = 1.0, axis: int = -1) -> np.ndarray:
    """Softmax of ``logits / temperature`` along ``axis``, as ``float64``."""
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=axis, keepdims=True)
    return out


def ctc_beam_search(
    probs: np.ndarray, alphabet: str, beam: int = 8, prune: float = 1e-4
) -> list[tuple[str, float]]:
    """Most likely labelings of one CTC output, each with its probability.

    ``probs`` is ``(T, 1 + len(alphabet))``, rows summing to 1, class 0 the CTC blank.  A prefix
    beam search sums the probability over all alignments of each labeling and only extends
    prefixes that can still become a number (see :func:`valid_prefix`).  Returns up to
    ``beam`` pairs ``(text, probability)``, most likely first; ``""`` means nothing written.
    """
    beams: dict[str, tuple[float, float]] = {"": (1.0, 0.0)}  # prefix -> (ends blank, not)
    for row in probs:
        chars = [int(c) for c in np.nonzero(row[1:] > prune)[0] + 1]
        nxt: dict[str, list[float]] = {}
        for prefix, (p_b, p_nb) in beams.items():
            total = p_b + p_nb
            entry = nxt.setdefault(prefix, [0.0, 0.0])
            entry[0] += total * row[0]
            last = prefix[-1] if prefix else ""
            for c in chars:
                ch = alphabet[c - 1]
                ext = prefix + ch
                if ch == last:
                    entry[1] += p_nb * row[c]  # a repeat without a blank collapses
                    stay = p_b * row[c]
                else:
                    stay = total * row[c]
                if valid_prefix(ext):
                    nxt.setdefault(ext, [0.0, 0.0])[1] += stay
        best = sorted(nxt.items(), key=lambda kv: kv[1][0] + kv[1][1], reverse=True)[:beam]
        beams = {k: (v[0], v[1]) for k, v in best}
    ranked = sorted(((k, v[0] + v[1]) for k, v in beams.items()), key=lambda kv: -kv[1])
    return [(k, p) for k, p in ranked if k == "" or valid_number(k)]


@dataclass(frozen=True)
class Reading:
    """What the reader made of one field crop.

    ``text`` is the number as written (``"-12"``, ``"3.5"``) or None when there is no answer
    (``status`` ``"blank"``, ``"smudge"`` or ``"crossed_out"``).  ``confidence`` (0..1) is the
    calibrated probability that ``text`` is right; ``alternatives`` are the next-best readings
    as ``(text or None, probability)``; ``needs_review``: ``confidence`` is below the model's
    threshold, or the text is spelled as no student writes a number (see
    :func:`unusual_spelling`).
    """

    text: str | None
    status: str
    confidence: float
    alternatives: list[tuple[str | None, float]] = field(default_factory=list)
    needs_review: bool = False


def decide(
    ctc_logits: np.ndarray,
    status_logits: np.ndarray,
    alphabet: str,
    ctc_temperature: float = 1.0,
    status_temperature: float = 1.0,
    threshold: float = 0.5,
    top_k: int = 3,
) -> Reading:
    """One field's reading from the network outputs of each of its views.

    ``ctc_logits`` is ``(V, T, 1 + len(alphabet))`` and ``status_logits`` ``(V, len(STATUSES))``
    for ``V`` views (1 or more).  The probability of each value is the status head's
    probability of "number" times the CTC probability of the text; "no answer" gathers the
    other statuses plus an empty CTC read.  The views' probabilities are averaged.
    """
    parts = [
        value_distribution(
            ctc_logits[v], status_logits[v], alphabet, ctc_temperature, status_temperature
        )
        for v in range(len(ctc_logits))
    ]
    return reading_from([p[0] for p in parts], [p[1] for p in parts], threshold, top_k)


def value_distribution(
    ctc_logits: np.ndarray,
    status_logits: np.ndarray,
    alphabet: str,
    ctc_temperature: float = 1.0,
    status_temperature: float = 1.0,
) -> tuple[dict[str | None, float], np.ndarray]:
    """Probability of each value one view gives (None: no answer), and the status posterior."""
    p_status = softmax(status_logits, status_temperature)
    candidates = ctc_beam_search(softmax(ctc_logits, ctc_temperature), alphabet)
    p_number = float(p_status[0])
    scored: dict[str | None, float] = {None: float(p_status[1:].sum())}
    for text, p in candidates:
        key = text if text else None
        scored[key] = scored.get(key, 0.0) + p_number * float(p)
    return scored, p_status


def reading_from(
    distributions: Sequence[dict[str | None, float]],
    statuses: Sequence[np.ndarray],
    threshold: float = 0.5,
    top_k: int = 3,
) -> Reading:
    """The reading from one or more views' value distributions, averaged.

    A value missing from a view's candidates counts as probability 0 there, so views that
    disagree lower the confidence of each of their readings.
    """
    averaged: dict[str | None, float] = {}
    for scored in distributions:
        for value, p in scored.items():
            averaged[value] = averaged.get(value, 0.0) + p / len(distributions)
    ranked = _without_unusual_spellings(sorted(averaged.items(), key=lambda kv: -kv[1]))
    best, confidence = ranked[0]
    confidence = min(1.0, float(confidence))
    p_status = np.mean(statuses, axis=0)
    status = STATUSES[1 + int(np.argmax(p_status[1:]))] if best is None else "number"
    alternatives = [(t, round(min(1.0, float(p)), 6)) for t, p in ranked[1 : 1 + top_k]]
    return Reading(
        text=best,
        status=status,
        confidence=confidence,
        alternatives=alternatives,
        needs_review=confidence < threshold or unusual_spelling(best),
    )


def _without_unusual_spellings(
    ranked: list[tuple[str | None, float]],
) -> list[tuple[str | None, float]]:
    """Drop alternatives no student writes (see :func:`unusual_spelling`) and rescale the rest.

    The model never saw such spellings in training; the probability it gives them is that of
    a decimal point it did not see, not of a number a student wrote, so the plausible readings
    share it.  When the best reading itself is unusual, nothing is changed: it goes to review.
    """
    if unusual_spelling(ranked[0][0]):
        return ranked
    unusual = sum(p for value, p in ranked if unusual_spelling(value))
    if unusual <= 0.0:
        return ranked
    scale = 1.0 / (1.0 - min(unusual, 0.5))
    return [(value, p * scale) for value, p in ranked if not unusual_spelling(value)]


def unusual_spelling(text: str | None) -> bool:
    """A zero followed by more digits before any point ("022", "-07").

    Students do not write numbers that way; when the reader sees one, the usual cause is a
    decimal point it missed ("0.22"), so such a reading is never trusted on its own.
    """
    if text is None:
        return False
    body = text.lstrip("-")
    return len(body) > 1 and body[0] == "0" and body[1].isdigit()


# ----------------------------------------------------------------------------------------------
# The model files and the reader.

MODEL_DIR = Path(str(resources.files("grader") / "models"))
_REQUIRED_KEYS = ("version", "input", "normalisation", "alphabet", "statuses", "calibration")


def load_config(path: Path) -> dict[str, Any]:
    """Read and check ``reader.json``; raises :class:`ReaderModelError` when unusable."""
    if not path.is_file():
        raise ReaderModelError(
            f"reader config {path} is missing; reinstall Papergrade or retrain it "
            "with 'make train MODEL_OUT=grader/models'"
        )
    try:
        config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReaderModelError(f"reader config {path} is unreadable: {exc}") from exc
    missing = [k for k in _REQUIRED_KEYS if k not in config]
    if missing:
        raise ReaderModelError(f"reader config {path} lacks {', '.join(missing)}; retrain")
    if config["version"] != CONFIG_VERSION:
        raise ReaderModelError(
            f"reader config {path} has version {config['version']}, this code reads "
            f"version {CONFIG_VERSION}; retrain the model or update Papergrade"
        )
    expected = [1, INPUT_HEIGHT, INPUT_WIDTH]
    if list(config["input"]["shape"]) != expected:
        raise ReaderModelError(
            f"reader config {path} expects input {config['input']['shape']}, but the "
            f"preprocessing makes {expected}; retrain the model"
        )
    if tuple(config["statuses"]) != STATUSES:
        raise ReaderModelError(f"reader config {path} has statuses {config['statuses']}")
    return config


def key_match_threshold_of(config: dict[str, Any]) -> float | None:
    """The confidence from which a doubted reading that is exactly the expected answer is
    credited all the same (see grader.score.may_confirm); None where it was never calibrated."""
    value = config["calibration"].get("key_match_threshold")
    return None if value is None else float(value)


def packaged_key_match_threshold() -> float | None:
    """:func:`key_match_threshold_of` the packaged model, without loading the network."""
    return key_match_threshold_of(load_config(MODEL_DIR / "reader.json"))


class Capture(Protocol):
    """What the page pipeline measured of the photo a crop comes from (see
    grader.quality.QualityMetrics)."""

    @property
    def px_per_mm(self) -> float: ...

    @property
    def edge_mm(self) -> float: ...


@dataclass(frozen=True)
class SharpCapture:
    """A threshold for crops of measurably sharp, well-resolved pages.

    The model's own threshold is chosen on fields a fifth of which are poor captures, whose
    wrong readings are confident; on a page at least ``min_px_per_mm`` at its boxes whose
    marker edges rise within ``max_edge_mm``, ``threshold`` (chosen on validation pages that
    pass the same gate, by bench/capture_threshold.py) accepts as few wrong readings.
    """

    min_px_per_mm: float
    max_edge_mm: float
    threshold: float

    def holds_for(self, capture: Capture) -> bool:
        return capture.px_per_mm >= self.min_px_per_mm and capture.edge_mm <= self.max_edge_mm


def sharp_capture_of(config: dict[str, Any]) -> SharpCapture | None:
    """The sharp-capture gate and threshold of ``reader.json``; None where never calibrated."""
    gate = config["calibration"].get("sharp_capture")
    if gate is None:
        return None
    try:
        return SharpCapture(
            float(gate["min_px_per_mm"]), float(gate["max_edge_mm"]), float(gate["threshold"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReaderModelError(f"reader config's sharp_capture is unusable: {exc}") from exc


class Reader:
    """Loads the ONNX model and its config once and reads batches of field crops.

    ``model_dir`` holds ``reader.onnx`` and ``reader.json`` (default: the packaged model);
    ``threads`` is onnxruntime's intra-op thread count (1 keeps a worker to one core).
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        threads: int = 1,
        threshold: float | None = None,
    ) -> None:
        directory = Path(model_dir) if model_dir is not None else MODEL_DIR
        self.config = load_config(directory / "reader.json")
        self.alphabet: str = self.config["alphabet"]
        calibration = self.config["calibration"]
        self.ctc_temperature = float(calibration["ctc_temperature"])
        self.status_temperature = float(calibration["status_temperature"])
        self.threshold = float(threshold if threshold is not None else calibration["threshold"])
        # A threshold the caller chose holds for every page; the model's own depends on the page.
        self.sharp_capture = sharp_capture_of(self.config) if threshold is None else None
        self.key_match_threshold = key_match_threshold_of(self.config)
        self.mean = float(self.config["normalisation"]["mean"])
        self.std = float(self.config["normalisation"]["std"])
        self.batch_size = int(self.config["input"].get("batch_size", 64))
        # How many of VIEWS the threshold was calibrated for; reading through fewer or more
        # would change what a confidence means.
        self.views = VIEWS[: int(calibration.get("views", 1))]
        self._session = self._open(directory / "reader.onnx", threads)
        # A model trained with --ink-geometry also reads where the ink lay (ink_geometry).
        self.reads_geometry = any(i.name == "geometry" for i in self._session.get_inputs())

    def _open(self, path: Path, threads: int) -> Any:
        if not path.is_file():
            raise ReaderModelError(
                f"reader model {path} is missing; reinstall Papergrade or retrain it "
                "with 'make train MODEL_OUT=grader/models'"
            )
        import onnxruntime as ort  # imported here so that importing grader stays light

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ReaderModelError(f"reader model {path} cannot be loaded: {exc}") from exc
        outputs = {o.name: o.shape for o in session.get_outputs()}
        if set(outputs) != {"ctc_logits", "status_logits"}:
            raise ReaderModelError(f"reader model {path} has outputs {sorted(outputs)}")
        classes = outputs["ctc_logits"][-1]
        if isinstance(classes, int) and classes != 1 + len(self.alphabet):
            raise ReaderModelError(
                f"reader model {path} has {classes} classes but its config's alphabet "
                f"{self.alphabet!r} needs {1 + len(self.alphabet)}; the files do not match"
            )
        return session

    def logits(
        self, crops: Sequence[np.ndarray], views: Sequence[View] = VIEWS[:1]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs per view: ``(V, N, T, C)`` CTC and ``(V, N, 4)`` status logits."""
        return self.logits_of_inks([clean_ink(c) for c in crops], views)

    def logits_of_inks(
        self, inks: Sequence[np.ndarray], views: Sequence[View] = VIEWS[:1]
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`logits` of crops already cleaned (see :func:`clean_ink`)."""
        framed = np.stack([frame_ink(ink, view) for view in views for ink in inks])
        geometry = None
        if self.reads_geometry:
            geometry = np.tile(np.stack([ink_geometry(ink) for ink in inks]), (len(views), 1))
        ctc, status = self.network((framed[:, None, :, :] - self.mean) / self.std, geometry)
        n = len(inks)
        return ctc.reshape(len(views), n, *ctc.shape[1:]), status.reshape(len(views), n, -1)

    def network(
        self, batch: np.ndarray, geometry: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The network's logits for normalised inputs ``(N, 1, H, W)`` (and, for a model that
        reads it, each input's :func:`ink_geometry` ``(N, 4)``), in batches: ``(N, T, C)``
        CTC and ``(N, 4)`` status."""
        if self.reads_geometry and geometry is None:
            raise ValueError("this reader model also needs each field's ink geometry")
        ctc_parts, status_parts = [], []
        for start in range(0, len(batch), self.batch_size):
            part = slice(start, start + self.batch_size)
            feed = {"image": batch[part].astype(np.float32)}
            if geometry is not None and self.reads_geometry:
                feed["geometry"] = geometry[part].astype(np.float32)
            ctc, status = self._session.run(["ctc_logits", "status_logits"], feed)
            ctc_parts.append(ctc)
            status_parts.append(status)
        return np.concatenate(ctc_parts), np.concatenate(status_parts)

    def threshold_for(self, capture: Capture | None = None) -> float:
        """The review threshold for crops of a page measured as ``capture`` (None: unknown)."""
        gate = self.sharp_capture
        if capture is not None and gate is not None and gate.holds_for(capture):
            return gate.threshold
        return self.threshold

    def read_batch(
        self, crops: Sequence[np.ndarray], capture: Capture | None = None
    ) -> list[Reading]:
        """Read field crops (each ``uint8`` ``(H, W)`` grayscale; see :func:`to_gray`), all
        from one page measured as ``capture`` when given (see :meth:`threshold_for`)."""
        if len(crops) == 0:
            return []
        inks = [clean_ink(c) for c in crops]
        ctc, status = self.logits_of_inks(inks, self.views)
        threshold = self.threshold_for(capture)
        decided = [
            decide(ctc[:, i], status[:, i], self.alphabet, self.ctc_temperature,
                   self.status_temperature, threshold)
            for i in range(len(inks))
        ]
        readings = [doubt_unread_point(doubt_empty_reading(reading, ink), ink)
                    for reading, ink in zip(decided, inks, strict=True)]
        readings = self._doubt_left_out_strokes(readings, inks, threshold)
        return self._doubt_faint_numbers(readings, inks)

    def _doubt_left_out_strokes(
        self, readings: list[Reading], inks: Sequence[np.ndarray], threshold: float
    ) -> list[Reading]:
        """Accepted numbers read again with the strokes their window left out (see
        LEFT_OUT_LEVEL)."""
        darkened: dict[int, np.ndarray] = {}
        for i, reading in enumerate(readings):
            if reading.text is not None and not reading.needs_review:
                strokes = left_out_strokes(inks[i])
                if strokes is not None:
                    darkened[i] = with_strokes_darkened(inks[i], strokes)
        out = list(readings)
        for i, again in self._read_again(darkened).items():
            out[i] = doubt_left_out_reading(readings[i], again, threshold)
        return out

    def _doubt_faint_numbers(
        self, readings: list[Reading], inks: Sequence[np.ndarray]
    ) -> list[Reading]:
        """Readings of no answer read again from stretched ink (see FAINT_INSET)."""
        stretched: dict[int, np.ndarray] = {}
        for i, reading in enumerate(readings):
            if _accepted_as_empty(reading):
                ink = stretched_ink(inks[i])
                if ink is not None:
                    stretched[i] = ink
        out = list(readings)
        for i, again in self._read_again(stretched).items():
            out[i] = doubt_faint_reading(readings[i], again)
        return out

    def _read_again(self, inks: dict[int, np.ndarray]) -> dict[int, Reading]:
        """Readings of altered inks (keyed by their field's index), through the same views,
        without a threshold: the caller judges them against the first reading."""
        if not inks:
            return {}
        ctc, status = self.logits_of_inks(list(inks.values()), self.views)
        return {
            i: decide(ctc[:, k], status[:, k], self.alphabet, self.ctc_temperature,
                      self.status_temperature)
            for k, i in enumerate(inks)
        }

    def read(self, crop: np.ndarray) -> Reading:
        """Read one field crop."""
        return self.read_batch([crop])[0]
