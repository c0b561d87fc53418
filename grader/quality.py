"""Quality gates: refuse a page that cannot be read reliably, and say why and what to do.

Every measure is taken where it matters and in page units, so one threshold holds for a
12 MP phone photo and a 200 dpi scan alike:

* resolution: photo pixels per page mm at the answer boxes (the reader works at 10 px/mm;
  below ``MIN_PX_PER_MM`` strokes are too few pixels to upsample into shapes);
* sharpness: the 10-90 % rise distance, in mm, of the markers' outer edges, which are
  straight black-to-white steps printed on every page, so the distance is the blur alone;
* exposure: the paper and marker-black levels next to those same edges; a dark photo has
  dim paper, an overexposed one has washed-out black.

When no page can be located, :func:`diagnose_unlocated` explains it with whole-image figures.
Thresholds were set on simulated pages with seeds different from those of the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from grader.align import PageFit, local_scale, marker_corners_mm, marker_homography, project
from grader.errors import LowResolution, MarkersMissing, Overexposed, PageError, TooBlurred, TooDark
from grader.keyindex import Rect
from grader.locate import MarkerHit, working_copy

# Below 1.5 px/mm a 0.5 mm pen stroke is under a pixel and a digit's loops close up.  The
# simulator's hard tier (a 1600 px frame, half filled, 35 degrees steep) reaches 1.6 px/mm,
# and such pages still align and read, so the gate sits just below it.
MIN_PX_PER_MM = 1.5
# Edges of hard-tier photos (shaken, defocused) rise over at most ~1.3 mm; at 1.6 mm
# (Gaussian sigma ~0.6 mm) strokes of neighbouring digits start to merge.
MAX_EDGE_MM = 1.6
MIN_PAPER_LEVEL = 60.0
MIN_CONTRAST = 45.0
MAX_BLACK_SHARE = 0.6  # marker black over paper; above it the ink is washed out
# A4 long side; used to guess the scale when no marker gives it.
PAGE_LONG_MM = 297.0

_EDGE_SAMPLES = 41
_EDGE_SPAN_MM = 1.2  # the profile runs this far either side of the edge (the black border is 1.67)
_EDGE_POSITIONS = (0.3, 0.5, 0.7)


@dataclass
class QualityMetrics:
    """Figures of one located page (all measured on the full-resolution photo).

    ``px_per_mm``: smallest scale over the page's boxes and markers.  ``edge_mm``: median
    10-90 % rise of marker edges.  ``paper_level`` and ``black_level``: median 0-255 grey of
    paper beside the markers and of their black border.
    """

    px_per_mm: float
    edge_mm: float
    paper_level: float
    black_level: float

    @property
    def contrast(self) -> float:
        return self.paper_level - self.black_level


def edge_profiles(gray: np.ndarray, hit: MarkerHit, rect: Rect) -> np.ndarray:
    """Grey levels across the marker's four outer edges, outside to inside.

    Returns (12, ``_EDGE_SAMPLES``) float32: three profiles per side, sampled every
    2 * ``_EDGE_SPAN_MM`` / (``_EDGE_SAMPLES`` - 1) mm along the side's inward normal, using
    the marker's own corners as a local homography (exact around the marker).
    """
    corners_mm = marker_corners_mm(rect)
    h_local = cv2.getPerspectiveTransform(corners_mm.astype(np.float32),
                                          hit.corners.astype(np.float32))
    t = np.linspace(-_EDGE_SPAN_MM, _EDGE_SPAN_MM, _EDGE_SAMPLES)
    points = []
    for k in range(4):
        a, b = corners_mm[k], corners_mm[(k + 1) % 4]
        along = (b - a) / np.linalg.norm(b - a)
        inward = np.array([-along[1], along[0]])  # corners run clockwise in a y-down frame
        for s in _EDGE_POSITIONS:
            base = a + s * (b - a)
            points.append(base[None, :] + t[:, None] * inward[None, :])
    pts_mm = np.array(points).reshape(-1, 1, 2)
    pts_px = cv2.perspectiveTransform(pts_mm, h_local).reshape(len(points), _EDGE_SAMPLES, 2)
    map_x = pts_px[..., 0].astype(np.float32)
    map_y = pts_px[..., 1].astype(np.float32)
    return cv2.remap(gray, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
                     ).astype(np.float32)


def rises_mm(profiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10-90 % rise distance (mm), paper level and black level of each edge profile.

    ``profiles``: (n, ``_EDGE_SAMPLES``) float32 from :func:`edge_profiles`.  Profiles with
    under 10 grey levels of contrast, or that never cross both levels, give NaN.
    """
    n = profiles.shape[1]
    step = 2 * _EDGE_SPAN_MM / (n - 1)
    paper = np.median(profiles[:, : n // 5], axis=1)
    black = np.median(profiles[:, -(n // 5):], axis=1)
    contrast = paper - black
    # Normalised darkening: 0 on paper, 1 on black; monotone up to noise.
    norm = (paper[:, None] - profiles) / np.where(contrast > 0, contrast, 1.0)[:, None]
    lo = _crossings(norm, 0.1)
    hi = _crossings(norm, 0.9)
    rise = (hi - lo) * step
    bad = (contrast < 10.0) | ~np.isfinite(rise) | (rise < 0)
    return np.where(bad, np.nan, rise), paper, black


def _crossings(values: np.ndarray, level: float) -> np.ndarray:
    """Per row, the first (interpolated) index where ``values`` rises through ``level``."""
    above = values >= level
    first = np.argmax(above, axis=1)
    rows = np.arange(values.shape[0])
    prev = values[rows, np.maximum(first - 1, 0)]
    cur = values[rows, first]
    frac = np.where(cur != prev, (level - prev) / np.where(cur != prev, cur - prev, 1.0), 1.0)
    pos = np.where(first > 0, first - 1 + frac, 0.0)
    return np.where(above.any(axis=1), pos, np.nan)


def measure(gray: np.ndarray, fit: PageFit, layout: dict[int, Rect],
            box_points_mm: list[tuple[float, float]]) -> QualityMetrics:
    """Resolution, sharpness and exposure of a located page."""
    scales = [local_scale(fit.h, p) for p in box_points_mm]
    scales += [local_scale(fit.h, (r[0] + r[2] / 2, r[1] + r[3] / 2))
               for i, r in layout.items() if i in fit.markers]
    profiles = np.concatenate([edge_profiles(gray, hit, layout[i])
                               for i, hit in fit.markers.items()])
    rise, paper, black = rises_mm(profiles)
    ok = np.isfinite(rise)
    if not ok.any():
        # Markers were decoded, so they have some contrast; call it flat and blurred.
        return QualityMetrics(min(scales), float("inf"), 0.0, 0.0)
    return QualityMetrics(
        px_per_mm=float(min(scales)),
        edge_mm=float(np.median(rise[ok])),
        paper_level=float(np.median(paper[ok])),
        black_level=float(np.median(black[ok])),
    )


def check(metrics: QualityMetrics, source: str) -> None:
    """Raise the first failing gate's error for a located page."""
    if metrics.px_per_mm < MIN_PX_PER_MM:
        raise LowResolution(
            f"{source}: the sheet is only {metrics.px_per_mm:.1f} pixels per mm (at least "
            f"{MIN_PX_PER_MM:g} needed); take the photo closer so the sheet fills the frame, or "
            "scan at 200 dpi or more"
        )
    if metrics.paper_level < MIN_PAPER_LEVEL or (
        metrics.contrast < MIN_CONTRAST and metrics.paper_level < 128
    ):
        raise TooDark(
            f"{source}: the photo is too dark (paper at {metrics.paper_level:.0f} of 255); "
            "take it again in brighter, even light, without the phone's shadow on the sheet"
        )
    if metrics.contrast < MIN_CONTRAST or \
            metrics.black_level > MAX_BLACK_SHARE * metrics.paper_level:
        raise Overexposed(
            f"{source}: the photo is overexposed, black print shows as grey "
            f"({metrics.black_level:.0f} of 255); avoid the flash and direct light, or lower "
            "the exposure, and take it again"
        )
    if metrics.edge_mm > MAX_EDGE_MM:
        raise TooBlurred(
            f"{source}: the photo is too blurred (edges spread over {metrics.edge_mm:.1f} mm); "
            "hold the phone still, let it focus on the sheet, and take it again"
        )


# --- pages that could not be located ----------------------------------------------------------

_POSITIONS = ("top-left corner", "top middle", "top-right corner", "right middle",
              "bottom-right corner", "bottom middle", "bottom-left corner", "left middle")
_EDGES = {"top": (0, 1, 2), "right": (2, 3, 4), "bottom": (4, 5, 6), "left": (6, 7, 0)}


def missing_markers_advice(found_ids: set[int]) -> str:
    """Which edges or markers are missing, in words, and what to do."""
    missing = [i for i in range(8) if i not in found_ids]
    edges = [name for name, ids in _EDGES.items() if not set(ids) & found_ids]
    if not found_ids:
        where = "no marker squares are visible"
    elif edges:
        joined = " and ".join(edges)
        where = f"the {joined} edge{'s are' if len(edges) > 1 else ' is'} cut off or covered"
    else:
        where = "covered or out of the picture: " + ", ".join(_POSITIONS[i] for i in missing)
    return (f"only {len(found_ids)} of 8 markers visible; {where}; photograph the whole sheet "
            "with all eight black corner and edge squares in view, nothing covering them")


def one_edge_only(found_ids: set[int]) -> bool:
    """True if every found marker lies on one edge of the page (the fit would be a hinge)."""
    return any(found_ids <= set(ids) for ids in _EDGES.values())


def diagnose_unlocated(
    gray: np.ndarray, hits: list[MarkerHit], source: str,
    layout: dict[int, Rect] | None = None,
) -> PageError:
    """The most likely reason no page could be located, as an error to raise.

    With the page's marker ``layout``, markers that the ones found put inside the photo are
    said to be unreadable there, not cut off (see :func:`missing_in_view`).
    """
    h, w = gray.shape
    # The sheet can at best fill the frame; if even then it has too few pixels, say so.
    best_px_per_mm = max(h, w) / PAGE_LONG_MM
    if best_px_per_mm < MIN_PX_PER_MM:
        return LowResolution(
            f"{source}: the image is only {w}x{h} pixels, too small to read handwriting; "
            "send the original photo (not a thumbnail), or scan at 200 dpi or more"
        )
    small, scale_a, _ = working_copy(gray, 800)
    p1, p2, p50, p99, p999 = np.percentile(small, (0.1, 2, 50, 99, 99.9))
    if p999 - p1 < 12:
        return MarkersMissing(
            f"{source}: no worksheet is visible in this image; photograph the whole sheet with "
            "all eight black corner and edge squares in view (if this is a blank page, such as "
            "the back of a sheet scanned double-sided, it can be ignored)"
        )
    if p99 < MIN_PAPER_LEVEL:
        return TooDark(
            f"{source}: the photo is too dark to find the sheet; take it again in brighter light"
        )
    if p2 > 150 and p50 > 240:
        # A blank page of a scanned stack (the back of a sheet scanned double-sided, with
        # the front showing through faintly) measures the same: say so, or a teacher hunts
        # for a flash that never fired.
        return Overexposed(
            f"{source}: the photo is overexposed, the print is washed out; avoid the flash and "
            "direct light, and take it again (if this is a blank page of a scan, such as the "
            "back of a sheet scanned double-sided, nothing is lost: it can be ignored)"
        )
    if not hits and _looks_blurred(small, best_px_per_mm / scale_a):
        return TooBlurred(
            f"{source}: the photo is too blurred to find the sheet's markers; hold the phone "
            "still, let it focus on the sheet, and take it again"
        )
    found = {hit.marker_id for hit in hits}
    if layout is not None and missing_in_view(hits, layout, (h, w)):
        return MarkersMissing(
            f"{source}: only {len(found)} of {len(layout)} markers could be read, though the "
            "whole sheet seems to be in the picture; they may be covered or in shadow, or too "
            "small, blurred or grainy to read: photograph the sheet closer, uncovered, in even "
            "light, holding the phone still"
        )
    return MarkersMissing(f"{source}: {missing_markers_advice(found)}")


# A missing marker counts as in view when the found markers put it at least this far (as a
# share of the photo's shorter side) inside the photo: from two markers the place of the
# others is only known to a few millimetres.
IN_VIEW_MARGIN = 0.03


def missing_in_view(
    hits: list[MarkerHit], layout: dict[int, Rect], shape: tuple[int, int]
) -> bool:
    """Whether every marker missing from ``hits`` lies inside the photo of ``shape`` (H, W),
    by a homography fitted to the corners of those found (at least two, not all on one edge
    of the page: a hinge cannot say where the far side is)."""
    found = {hit.marker_id: hit for hit in hits if hit.marker_id in layout}
    missing = [i for i in layout if i not in found]
    if len(found) < 2 or one_edge_only(set(found)) or not missing:
        return False
    h_page = marker_homography(found, layout)
    if h_page is None:
        return False
    at = project(h_page, np.array([marker_corners_mm(layout[i]).mean(axis=0) for i in missing]))
    margin = IN_VIEW_MARGIN * min(shape)
    height, width = shape
    return bool(np.all((at[:, 0] > margin) & (at[:, 0] < width - margin)
                       & (at[:, 1] > margin) & (at[:, 1] < height - margin)))


def _looks_blurred(small: np.ndarray, px_per_mm_guess: float) -> bool:
    """Whole-image sharpness: the steepest edges' rise distance, with the scale guessed.

    Used only to explain a page without markers: a sharp photo of the sheet has marker and
    text edges rising within a pixel or two of the working copy.
    """
    f = small.astype(np.float32)
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    grad = np.sqrt(gx * gx + gy * gy)
    steep = float(np.percentile(grad, 99.7))
    lo, hi = np.percentile(f, (2, 98))
    if steep <= 0 or hi - lo < 20:
        return False
    # A step of contrast C blurred to a 10-90 rise of r px has a slope near 0.8 C / r.
    rise_px = 0.8 * (hi - lo) / steep
    return bool(rise_px / max(px_per_mm_guess * 0.6, 1e-6) > MAX_EDGE_MM * 1.5)
