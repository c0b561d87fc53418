"""One clean crop per box: sampled straight from the photo, lit evenly, box lines removed.

The crop contract the reader relies on: a (H, W) uint8 grayscale image of the box plus
``CROP_MARGIN_MM`` on every side, at ``CROP_PX_PER_MM`` in the page frame, so a 32 x 12 mm
answer box gives a 160 x 360 crop whose border centre lines lie 20 px in from each side
(pixel (v, u) covers page mm [x0 + u/10, x0 + (u+1)/10) with x0 = box x - 2 mm).  Paper is
brought to about 240-255 and printed box lines are painted out, keeping strokes that cross them.

Why each crop is warped from the photo directly: warping the whole 12 MP page first would
cost more than decoding the JPEG; a 360 x 160 warp reads only the pixels it needs.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import cv2
import numpy as np

from grader.align import MAX_REVIEW_VIEW_MARGIN_MM, BoxFit, review_margin_mm
from grader.keyindex import BoxSpec, Rect
from grader.locate import region_size, region_transform

CROP_PX_PER_MM = 10.0
CROP_MARGIN_MM = 2.0
PAPER_TARGET = 250.0
# Wider than any pen stroke (about 1 mm), so a max filter of this size sees paper everywhere.
BACKGROUND_KERNEL_MM = 2.1
LINE_SEARCH_PX = 6
LINE_MAX_HALF_PX = 6
# Darkness (grey levels, paper at 250) beyond the printed line's own that marks a pen or
# pencil stroke lying on the line: well above JPEG and sensor noise in a lit crop.
EXTRA_INK_LEVEL = 45.0
LINE_DARKNESS_PERCENTILE = 15.0
# A stroke crossing a printed line at a slant is joined across the line's band along these
# slopes (rows per column across the line: 45 and about 27 degrees off the perpendicular)
# where both ends of the slant are writing, darker than paper by CROSSING_INK_LEVEL.
CROSSING_SLOPES = (-1.0, -0.5, 0.5, 1.0)
CROSSING_INK_LEVEL = 60.0
# Writing on a box's left or right side: students who overshoot the box write a "1" along
# its side, lighter than the printed line, and painting the line out takes the "1" with it
# ("12" read "2", a lone "1" read as no answer, both with full confidence).  Row by row along
# the side, the darkness summed over the line's band and SIDE_WRITING_REACH_PX either side
# of it is compared with the line's own (its LINE_DARKNESS_PERCENTILE-th percentile along
# the side, as a "1" can cover more than half of it, and at most the median of the four
# sides', as it can cover nearly all of it); rows darker by SIDE_WRITING_EXCESS of the
# line's own hold writing.  The longest run of such rows is measured, leaving out
# SIDE_WRITING_CORNER_PX at each end, where the top and bottom lines cross.  The reach stops
# short of any other printed line beside the side: student-number digit boxes stood 1.5 mm
# apart on older sheets, and on a blurred page a neighbour's side within the reach made the
# first and last digits' outer sides look written on all along (35 of 40 numbered pages of a
# simulated class sent to identity review).
SIDE_WRITING_REACH_PX = 8
SIDE_WRITING_EXCESS = 0.5
SIDE_WRITING_CORNER_PX = 15


@dataclass(frozen=True)
class CropLine:
    """A printed line inside a crop: vertical (x = position) or horizontal (y = position).

    ``position``: crop index coordinate of the line centre; ``start``, ``end``: its extent
    along the line in crop pixels.
    """

    vertical: bool
    position: float
    start: float
    end: float


def crop_to_photo(h_box: np.ndarray, rect: Rect) -> np.ndarray:
    """3x3 map from crop index coordinates to photo pixels, through the box's own mapping."""
    return h_box @ region_transform(rect, CROP_MARGIN_MM, CROP_PX_PER_MM)


def crop_size(rect: Rect) -> tuple[int, int]:
    """(width, height) of a box's crop in pixels."""
    return region_size(rect, CROP_MARGIN_MM, CROP_PX_PER_MM)


def sample_crop(
    gray: np.ndarray, h_box: np.ndarray, rect: Rect, margin_mm: float = CROP_MARGIN_MM
) -> np.ndarray:
    """The raw (H, W) uint8 crop of a box plus ``margin_mm``, pixels outside the photo white."""
    to_photo = h_box @ region_transform(rect, margin_mm, CROP_PX_PER_MM)
    return cv2.warpPerspective(
        gray, to_photo, region_size(rect, margin_mm, CROP_PX_PER_MM),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=255,
    )


def normalise_lighting(crop: np.ndarray) -> np.ndarray:
    """Divide by a smooth paper estimate: (H, W) uint8 in, (H, W) uint8 out, paper ~250.

    The paper estimate is a max filter wider than any stroke or line (which removes them)
    followed by a blur, so shadows and gradients across the box disappear.
    """
    h, w = crop.shape
    # The estimate is smooth, so it is made at a quarter of the size (area averaging also
    # keeps single bright noise pixels out of the max filter) and scaled back up.
    small = cv2.resize(crop, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    k = max(3, round(BACKGROUND_KERNEL_MM * CROP_PX_PER_MM / 4) | 1)
    background = cv2.dilate(small, np.ones((k, k), np.uint8))
    background = cv2.blur(background, (2 * k + 1, 2 * k + 1))
    background = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)
    background = np.maximum(background, 16)
    return np.asarray(cv2.divide(crop, background, scale=PAPER_TARGET))


def lines_in_crop(box: BoxSpec, boxes: tuple[BoxSpec, ...]) -> list[CropLine]:
    """Every printed box side that runs through ``box``'s crop, in crop index coordinates.

    Includes the box's own border and the sides of neighbours within the margin (student
    number digits sat 1.5 mm apart on older sheets).  Positions come from the layout and are
    refined in :func:`remove_lines`.
    """
    x0 = box.rect[0] - CROP_MARGIN_MM
    y0 = box.rect[1] - CROP_MARGIN_MM
    width, height = crop_size(box.rect)
    r = CROP_PX_PER_MM

    def px(mm: float, origin: float) -> float:
        return (mm - origin) * r - 0.5

    lines = []
    for other in boxes:
        x, y, w, h = other.rect
        left, right, top, bottom = px(x, x0), px(x + w, x0), px(y, y0), px(y + h, y0)
        for pos in (left, right):
            if -LINE_MAX_HALF_PX < pos < width + LINE_MAX_HALF_PX and top < height and bottom > 0:
                lines.append(CropLine(True, pos, max(top, 0.0), min(bottom, height - 1.0)))
        for pos in (top, bottom):
            if -LINE_MAX_HALF_PX < pos < height + LINE_MAX_HALF_PX and left < width and right > 0:
                lines.append(CropLine(False, pos, max(left, 0.0), min(right, width - 1.0)))
    return lines


def margins_with_lines(box: BoxSpec, boxes: tuple[BoxSpec, ...]) -> tuple[bool, bool]:
    """Whether another box's side runs through the crop's margin beyond ``box``'s left and
    its right side (a neighbouring student-number digit's)."""
    own = [line.position for line in lines_in_crop(box, (box,)) if line.vertical]
    others = [line.position for line in lines_in_crop(box, boxes)
              if line.vertical and line.position not in own]
    return (any(pos < min(own) for pos in others), any(pos > max(own) for pos in others))


def _line_profile(img: np.ndarray, line: CropLine) -> tuple[np.ndarray, int] | None:
    """Mean darkness (paper minus value) across the line, and the profile's first index."""
    size = img.shape[1] if line.vertical else img.shape[0]
    lo = max(0, int(np.floor(line.position)) - LINE_SEARCH_PX - LINE_MAX_HALF_PX)
    hi = min(size, int(np.ceil(line.position)) + LINE_SEARCH_PX + LINE_MAX_HALF_PX + 1)
    a, b = round(line.start), round(line.end) + 1
    if hi - lo < 3 or b - a < 4:
        return None
    # Handwriting crossing the line darkens a few rows evenly across the band: it lowers the
    # profile's contrast a little but does not move its peak.  The mean along the line, as
    # ndarray.mean(dtype=float32) gives it (the sums of grey values are exact in float32, the
    # division is numpy's), summed by OpenCV at half numpy's cost on a strided band.
    if line.vertical:
        sums = cv2.reduce(img[a:b, lo:hi], 0, cv2.REDUCE_SUM, dtype=cv2.CV_32F)
    else:
        sums = cv2.reduce(img[lo:hi, a:b], 1, cv2.REDUCE_SUM, dtype=cv2.CV_32F)
    means = (sums.ravel() / np.float64(b - a)).astype(np.float32)
    return PAPER_TARGET - means, lo


def _locate_line(img: np.ndarray, line: CropLine) -> tuple[int, int] | None:
    """First and last index (across the line) of the printed line's dark band, or None."""
    found = _line_profile(img, line)
    if found is None:
        return None
    profile, lo = found
    near = _near(line.position - lo, len(profile))
    if near is None:
        return None
    i = near[0] + int(np.argmax(profile[near[0]:near[1] + 1]))
    peak = float(profile[i])
    if peak < 25.0:  # nothing line-like there (e.g. the line lies outside the crop)
        return None
    level = 0.12 * peak
    a = i
    while a > 0 and profile[a - 1] > level and i - a < LINE_MAX_HALF_PX:
        a -= 1
    b = i
    while b < len(profile) - 1 and profile[b + 1] > level and b - i < LINE_MAX_HALF_PX:
        b += 1
    # Two pixels more on each side take the blurred fringe as well.
    return lo + a - 2, lo + b + 2


def _near(centre: float, size: int) -> tuple[int, int] | None:
    """First and last index of ``range(size)`` within LINE_SEARCH_PX of ``centre`` (judged as
    ``abs(index - centre) <= LINE_SEARCH_PX``), or None: a line's search window, found from
    its ends instead of by testing every index."""
    first = max(0, math.floor(centre) - LINE_SEARCH_PX)
    while first < size and not abs(first - centre) <= LINE_SEARCH_PX:
        first += 1
    last = min(size - 1, math.ceil(centre) + LINE_SEARCH_PX)
    while last >= first and not abs(last - centre) <= LINE_SEARCH_PX:
        last -= 1
    return (first, last) if first <= last else None


# Where each printed line of a crop was found across it (see _locate_line): None if not.
LineBands = dict[CropLine, tuple[int, int] | None]


def remove_lines(img: np.ndarray, lines: list[CropLine]) -> np.ndarray:
    """Paint printed lines out of a lit-normalised crop; (H, W) uint8 in and out (a copy).

    Each line pixel is replaced by the straight interpolation between the pixels just outside
    the line on either side (across it).  Where a pen stroke crosses the line both of those
    are dark and the stroke stays joined; where there is only paper the line disappears.
    """
    return paint_out_lines(img, lines)[0]


def paint_out_lines(img: np.ndarray, lines: list[CropLine]) -> tuple[np.ndarray, LineBands]:
    """:func:`remove_lines`, also returning where each line was found."""
    out = img.copy()
    bands: LineBands = {}
    # Vertical lines first; horizontal ones then interpolate over already-cleaned corners.
    for line in sorted(lines, key=lambda ln: not ln.vertical):
        band = bands[line] = _locate_line(out, line)
        if band is None:
            continue
        view = out if line.vertical else out.T
        a, b = band
        size = view.shape[1]
        lo, hi = a - 1, b + 1
        grow = LINE_MAX_HALF_PX  # the line's ends meet the perpendicular lines' bands
        s0 = max(0, round(line.start) - grow)
        s1 = min(view.shape[0], round(line.end) + grow + 1)
        if lo < 0 and hi >= size:
            continue
        c0, c1 = max(a, 0), min(b, size - 1) + 1
        ends = (lo if lo >= 0 else hi, hi if hi < size else lo)
        own = slice(max(0, round(line.start) - s0), round(line.end) - s0 + 1)
        fill = _fill_across(view, (s0, s1), (c0, c1), (lo, hi), ends, own)
        band_view = view[s0:s1, c0:c1]
        cleaned = np.maximum(band_view, fill).astype(np.uint8)
        np.copyto(band_view, cleaned, where=~_ink_on_line(band_view, own))
    return out, bands


def _fill_across(
    view: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], across: tuple[int, int],
    ends: tuple[int, int], own: slice,
) -> np.ndarray:
    """What a line's band (``rows`` x ``cols`` of ``view``, the line vertical) would show
    without the line: the straight interpolation between the columns ``ends`` just outside it
    (at ``across``, the interpolation's ends), or along a slant (CROSSING_SLOPES) where
    writing lies at both ends of that slant and makes the fill darker.

    Straight across, a stroke that crosses the line at a slant has ink at one end only and
    comes out cut where the line was: an "8" written over a box's side was read "3" at
    0.995.  Lines with no writing at both ends along their own extent (``own``, rows of the
    band: beyond it lie the perpendicular lines), nearly all, take the straight fill alone.
    """
    (s0, s1), (c0, c1), (lo, hi) = rows, cols, across
    band_cols = np.arange(c0, c1)
    t = ((band_cols - lo) / float(hi - lo))[None, :]
    # Grey values are exact in float64, which the interpolation is computed in anyway.
    first = view[s0:s1, ends[0]].astype(np.float64)
    second = view[s0:s1, ends[1]].astype(np.float64)
    fill = first[:, None] * (1.0 - t) + second[:, None] * t
    ink = PAPER_TARGET - CROSSING_INK_LEVEL
    if not ((first[own] < ink).any() and (second[own] < ink).any()):
        return fill
    along = np.arange(s0, s1)[:, None]
    last = view.shape[0] - 1
    for slope in CROSSING_SLOPES:
        at_first = np.clip(along - np.rint(slope * (band_cols - lo)).astype(int), 0, last)
        at_second = np.clip(along + np.rint(slope * (hi - band_cols)).astype(int), 0, last)
        a = view[at_first, ends[0]].astype(np.float32)
        b = view[at_second, ends[1]].astype(np.float32)
        slanted = np.where(np.maximum(a, b) < ink, a * (1.0 - t) + b * t, fill)
        fill = np.minimum(fill, slanted)
    return fill


def _ink_on_line(band: np.ndarray, own: slice) -> np.ndarray:
    """Pixels of a line's band (rows along the line) darker than the printed line itself.

    A stroke written along a border (the down-stroke of a "1" on the left side, the bar of a
    "7" on the top) adds its darkness to the line's; interpolating across the band would
    erase it, so those pixels are kept as they are.  The line's own darkness is its darkest
    value across the band, row by row (so a line running slightly askew through the band
    counts the same), taken at a low percentile along the line's own extent (``own``, rows
    of ``band``): a stroke can cover most of a short border, but not nearly all of it.
    """
    rows = band[own] if band[own].size else band
    peaks = PAPER_TARGET - rows.min(axis=1).astype(np.float32)
    typical = _percentile(peaks, LINE_DARKNESS_PERCENTILE)
    # Darker than the line by the extra level, as float32 darkness would say it (so the level
    # is rounded to float32), compared on the grey values themselves: every step is exact.
    level = float(np.float32(typical + EXTRA_INK_LEVEL))
    return np.asarray(band < PAPER_TARGET - level)


def _percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation, the same value to the bit) for a
    1-D array, found by partitioning: np.percentile's general machinery costs 15 times as
    much on a line's hundred values, a tenth of a page's alignment with 18 boxes."""
    position = q / 100.0 * (values.size - 1)
    low = int(position)
    high = min(low + 1, values.size - 1)
    ordered = np.partition(values, (low, high))
    a, b = ordered[low], ordered[high]
    t = position - low
    # numpy's own interpolation, which works from the upper value when t >= 0.5.
    return float(b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t)


@dataclass(frozen=True)
class FieldCrop:
    """A box's finished crop and how much writing lay on its sides before the lines were
    painted out: the longest run along the left and the right side, in mm (see
    SIDE_WRITING_EXCESS)."""

    image: np.ndarray
    side_writing_mm: tuple[float, float]


def extract_field(gray: np.ndarray, fit: BoxFit, boxes: tuple[BoxSpec, ...]) -> FieldCrop:
    """The finished crop of one box (see the module docstring) and the writing on its sides."""
    raw = sample_crop(gray, fit.h, fit.box.rect)
    lit = normalise_lighting(raw)
    clean, bands = paint_out_lines(lit, lines_in_crop(fit.box, boxes))
    # The box's own lines are among those just found: their places are not searched again.
    return FieldCrop(clean, side_writing_mm(lit, lines_in_crop(fit.box, (fit.box,)), bands))


def side_writing_mm(
    lit: np.ndarray, border: list[CropLine], bands: LineBands | None = None
) -> tuple[float, float]:
    """The longest run along the left and the right side of a box's ``border`` (its four
    lines in a lit crop) where writing lies on the side, in mm (see SIDE_WRITING_EXCESS).
    ``bands``: where those lines were already found (the rest are searched for).

    A side's own darkness is its low percentile along it, but never more than the median of
    the four lines' (printed alike): a "1" covering nearly all of a side would otherwise set
    it.  A side that cannot be found counts 0.
    """
    found = bands or {}
    located = {line: found[line] if line in found else _locate_line(lit, line)
               for line in border}
    along = {line: _darkness_along(lit, line, band, _reach(line, band, found))
             for line, band in located.items()}
    lows = [_low_percentile(a) for a in along.values() if a is not None]
    if not lows:
        return 0.0, 0.0
    printed = statistics.median(lows)  # np.median's value, without its cost on four numbers
    runs = []
    for side in sorted((line for line in border if line.vertical), key=lambda ln: ln.position):
        values = along[side]
        if values is None:
            runs.append(0.0)
            continue
        own = max(min(_low_percentile(values), printed), 1.0)
        runs.append(_longest_run(values >= own * (1.0 + SIDE_WRITING_EXCESS)) / CROP_PX_PER_MM)
    return (runs[0], runs[-1]) if runs else (0.0, 0.0)


def _reach(
    line: CropLine, band: tuple[int, int] | None, bands: LineBands
) -> tuple[int, int] | None:
    """First and last index across ``line`` that its writing measure takes: its ``band`` and
    SIDE_WRITING_REACH_PX either side, short of the band of any other line along it
    (``bands``: lines found in the crop)."""
    if band is None:
        return None
    first, last = max(0, band[0] - SIDE_WRITING_REACH_PX), band[1] + SIDE_WRITING_REACH_PX
    for other, seen in bands.items():
        if (seen is None or other == line or other.vertical != line.vertical
                or other.end <= line.start or other.start >= line.end):
            continue
        if seen[0] > band[1]:
            last = min(last, seen[0] - 1)
        elif seen[1] < band[0]:
            first = max(first, seen[1] + 1)
    return first, last


def _darkness_along(
    lit: np.ndarray, line: CropLine, band: tuple[int, int] | None,
    reach: tuple[int, int] | None,
) -> np.ndarray | None:
    """Darkness (paper minus ``lit``) summed across ``reach`` (see :func:`_reach`) at each
    step along a printed line (SIDE_WRITING_CORNER_PX left out at each end); None where the
    line was not found."""
    start = round(line.start) + SIDE_WRITING_CORNER_PX
    end = round(line.end) - SIDE_WRITING_CORNER_PX
    if band is None or reach is None or end - start < 4:
        return None
    first, across = reach[0], reach[1] + 1
    region = lit[start:end, first:across] if line.vertical else lit[first:across, start:end]
    if region.size == 0:
        return np.zeros(region.shape[0] if line.vertical else region.shape[1], np.float32)
    # Each pixel's darkness is a whole number, so its float32 sums are exact in any order:
    # looked up and summed by OpenCV, they are what numpy's float32 arithmetic gives.
    dark = cv2.LUT(region, _DARKNESS)
    sums = cv2.reduce(dark, 1 if line.vertical else 0, cv2.REDUCE_SUM, dtype=cv2.CV_32F)
    values: np.ndarray = sums.ravel()
    return values


# Darkness of each grey value against the paper, never below 0 (see _darkness_along).
_DARKNESS = np.clip(PAPER_TARGET - np.arange(256), 0, None).astype(np.uint8)


def _low_percentile(values: np.ndarray) -> float:
    """The LINE_DARKNESS_PERCENTILE-th percentile of ``values`` by nearest rank (np.percentile
    costs more than the rest of the side measure together)."""
    rank = int(LINE_DARKNESS_PERCENTILE / 100.0 * (values.size - 1))
    return float(np.partition(values, rank)[rank])


def _longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D boolean array."""
    padded = np.concatenate(([0], flags.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0


def review_view(gray: np.ndarray, fit: BoxFit) -> np.ndarray:
    """A wide, evenly lit (H, W) uint8 view around a box that could not be placed safely.

    For a person deciding what is written there; box lines are kept, and it is never read.
    Its margin grows with how far the box's estimated place may be off
    (:func:`grader.align.review_margin_mm`); a page with a box that would need more than
    ``MAX_REVIEW_VIEW_MARGIN_MM`` is refused before any view is cut.
    """
    margin = min(review_margin_mm(fit), MAX_REVIEW_VIEW_MARGIN_MM)
    return normalise_lighting(sample_crop(gray, fit.h, fit.box.rect, margin))
