"""Map the printed page onto the photo: a global homography, then a local fit per box.

Frames as in :mod:`grader.locate`: page mm (top-left origin, x right, y down) and photo pixels
(OpenCV index coordinates).  Every 3x3 matrix here maps page mm to photo pixels.

Why two levels.  The eight markers give a homography that is exact for a flat sheet, but a
curled or folded sheet is not a plane: in the middle of the page the homography can be off by
several millimetres.  Each answer box therefore gets its own mapping, fitted to its printed
border: the region around the box is warped upright with the global homography, the four
border lines are found in it, and the box's corners in the photo follow from their
intersections.  A box whose border cannot be trusted borrows the correction of its neighbours
(boxes and markers), but only where they agree; otherwise the page is refused rather than
risking a crop of the wrong place.

Border finding is robust to handwriting because it scores the whole rectangle at once: a thin
dark line must run along all four sides at the printed size.  Strokes cross a side in a few
places, so they barely move a side's mean line response, while the real border raises all four.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import pairwise

import cv2
import numpy as np

from grader.errors import AlignmentUncertain
from grader.keyindex import BoxSpec, Rect
from grader.locate import MarkerHit, warp_region

# --- global homography ----------------------------------------------------------------------

# Markers of a curled sheet do not fit one homography exactly (a corner lifted towards the
# camera lands a centimetre or more away); RANSAC only has to reject false detections, so its
# threshold is generous.  Dropping a real marker would cost far more: the page around it
# would be extrapolated.
RANSAC_THRESHOLD_MM = 15.0
MAX_MARKER_RESIDUAL_MM = 30.0


@dataclass
class PageFit:
    """The global page-to-photo homography and how well the markers agree with it.

    ``h``: 3x3 float64, page mm -> photo px.  ``markers``: the markers used (one per id).
    ``residuals_mm``: per marker id, the mean distance (mm) between its detected corners and
    where ``h`` puts them.  ``px_per_mm``: median scale over the page.
    """

    h: np.ndarray
    markers: dict[int, MarkerHit]
    residuals_mm: dict[int, float]
    px_per_mm: float

    @property
    def residual_mm(self) -> float:
        """Root mean square of the markers' residuals (mm)."""
        values = np.array(list(self.residuals_mm.values()))
        return float(np.sqrt(np.mean(values**2))) if values.size else float("nan")


def marker_corners_mm(rect: Rect) -> np.ndarray:
    """(4, 2) float64 page mm of a marker's corners in the printed order TL, TR, BR, BL."""
    x, y, w, h = rect
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def project(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points through the 3x3 homography ``h``; (N, 2) float64 out."""
    pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(pts, h).reshape(-1, 2)


def local_scale(h: np.ndarray, point_mm: tuple[float, float]) -> float:
    """Photo pixels per mm at ``point_mm``: square root of the homography's Jacobian area."""
    x, y = point_mm
    p = project(h, np.array([[x, y], [x + 1.0, y], [x, y + 1.0]]))
    jac = np.column_stack([p[1] - p[0], p[2] - p[0]])
    return float(np.sqrt(abs(np.linalg.det(jac))))


def fit_page(hits: list[MarkerHit], layout: dict[int, Rect]) -> PageFit | None:
    """Fit the homography to every usable marker; None if fewer than 3 remain.

    A homography cannot follow a bent sheet, so markers legitimately disagree with it by
    millimetres; they are all kept (their residuals become local corrections, see
    :func:`marker_anchors`).  Only duplicates (a marker-like pattern, or a second sheet in
    the picture) are resolved, by RANSAC consistency, and a marker off by more than
    ``MAX_MARKER_RESIDUAL_MM`` is dropped as a false detection, the worst first.
    """
    if len({hit.marker_id for hit in hits}) < 3:
        return None
    used = _unique_markers(hits, layout)
    while len(used) >= 3:
        h = marker_homography(used, layout)
        if h is None or not _orientation_preserving(h, layout):
            return None
        residuals = {i: _marker_residual_mm(h, hit, layout[i]) for i, hit in used.items()}
        worst = max(residuals, key=lambda i: residuals[i])
        if residuals[worst] <= MAX_MARKER_RESIDUAL_MM:
            break
        del used[worst]
    else:
        return None
    page_scale = float(np.median([local_scale(h, _centre(layout[i])) for i in used]))
    return PageFit(h=h, markers=used, residuals_mm=residuals, px_per_mm=page_scale)


def _unique_markers(hits: list[MarkerHit], layout: dict[int, Rect]) -> dict[int, MarkerHit]:
    """One hit per id: duplicates decided by agreement with a RANSAC fit of all hits."""
    by_id: dict[int, list[MarkerHit]] = {}
    for hit in hits:
        by_id.setdefault(hit.marker_id, []).append(hit)
    if all(len(v) == 1 for v in by_id.values()):
        return {i: v[0] for i, v in by_id.items()}
    src = np.concatenate([marker_corners_mm(layout[hit.marker_id]) for hit in hits])
    dst = np.concatenate([hit.corners.astype(np.float64) for hit in hits])
    scale = float(np.median([hit.side_px for hit in hits])) / layout[hits[0].marker_id][2]
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_THRESHOLD_MM * scale,
                              maxIters=500, confidence=0.999)
    if h is None:
        return {i: v[0] for i, v in by_id.items() if len(v) == 1}
    return {i: min(v, key=lambda hit: _marker_residual_mm(h, hit, layout[i]))
            for i, v in by_id.items()}


def marker_homography(used: dict[int, MarkerHit], layout: dict[int, Rect]) -> np.ndarray | None:
    """The least-squares homography (page mm -> photo px) through the corners of ``used``."""
    src = np.concatenate([marker_corners_mm(layout[i]) for i in used])
    dst = np.concatenate([hit.corners.astype(np.float64) for hit in used.values()])
    # Plain least squares spreads a bend's disagreement over all markers.
    h, _ = cv2.findHomography(src, dst, 0)
    return None if h is None else np.asarray(h, np.float64)


def _marker_residual_mm(h: np.ndarray, hit: MarkerHit, rect: Rect) -> float:
    """Mean distance (mm) between a marker's detected corners and where ``h`` puts them."""
    px = np.linalg.norm(project(h, marker_corners_mm(rect)) - hit.corners, axis=1)
    return float(np.mean(px)) / local_scale(h, _centre(rect))


def _centre(rect: Rect) -> tuple[float, float]:
    return rect[0] + rect[2] / 2, rect[1] + rect[3] / 2


def _orientation_preserving(h: np.ndarray, layout: dict[int, Rect]) -> bool:
    """A photo never mirrors the page, and the page must stay in front of the camera."""
    pts = np.array([_centre(r) for r in layout.values()], np.float64)
    w = pts @ h[2, :2] + h[2, 2]
    if np.any(w <= 0):
        return False
    return local_scale(h, tuple(pts.mean(axis=0))) > 0 and np.linalg.det(h[:2, :2]) * h[2, 2] > 0


# --- local refinement per box -----------------------------------------------------------------

REFINE_PX_PER_MM = 8.0
# How far a box may be from where its neighbours predict it.  Boxes are visited outwards from
# the markers, so the prediction comes from nearby boxes and this stays small even when the
# global homography is a centimetre off in the middle of a curled sheet.
SEARCH_MM = 7.0
CORNER_SKIP_MM = 1.2  # side segments stop short of the corners, where two lines meet
SEGMENT_MM = 3.5
EVEN_LINE_SHARE = 0.4  # weakest segment of a side vs its median: a printed line is even
MAX_LINE_RESIDUAL_MM = 0.25
BLUR_RESIDUAL_SHARE = 0.38
SIDE_SEARCH_MM = 1.0  # per-segment search around the outline's best position
LINE_MM = 0.4  # printed box line width
RIDGE_NEAR_MM = 0.35  # just past a sharp line's half width
LINE_CAP = 0.6
# Found box size vs printed, after the predicted correction.  A steep, curled sheet still
# changes the local scale from what the neighbours predict: by 16 % on development pages.
SIZE_TOLERANCE = 0.18
MAX_TURN_DEG = 7.0
FAST_SHIFT_MM = 1.9  # a window this narrow (prediction within ~0.35 mm) skips the pair search
NEIGHBOUR_WEIGHT = 0.5
PRIOR_WEIGHT = 0.015
PEAK_HALF_MM = 0.3  # a side sits on a maximum of the line response within this
PEAK_CENTROID_MM = 0.6
AMBIGUOUS_MM = 1.5
AMBIGUOUS_SHARE = 0.85
CORNER_GAP_MM = (0.7, 1.3)  # where a crossing side is checked for running on past a corner
CORNER_CONTINUE_SHARE = 0.5
CORNER_PRESENT_SHARE = 0.4
CORNER_BEND_MM = 0.8  # how far a bent side may stray from its straight course at a corner
NEIGHBOUR_RADIUS_MM = 120.0
PREDICT_NEIGHBOURS = 12
# A box is placed from its neighbours only where they predict it this well.  Calibrated on
# simulated pages: at 0.3 mm no such placement was off by more than 0.7 mm; on strongly bent
# sheets the prediction is rarely this sure, and the page is refused instead.
MAX_FALLBACK_UNCERTAINTY_MM = 0.3
# A found box whose centre is further than this (plus the prediction's uncertainty) from
# where consistent neighbours put it is refused: either its border locked onto the wrong
# lines or the neighbours mislead, and which cannot be told, so neither may place it.
MAX_DISAGREEMENT_MM = 0.7
# Neighbours judge a box only where they predict it at least this well.  On development
# pages a border that locked onto a wrong line was 1.9 mm from neighbours that predicted it
# to 0.8 mm; the judgement widens with the uncertainty, so a loose prediction refuses only
# gross disagreements (it costs under 1 % of hard-tier pages whose border was right).
MAX_JUDGE_UNCERTAINTY_MM = 1.0
MIN_FOUND_SHARE = 0.5
# The second look for a border where the neighbours put a doubted box also tries a border
# this much blurrier than measured on the markers (a box nearer or further than the focal
# plane is blurred more); a border accepted only under that assumption was found unreliable
# (on benchmark pages one was 5.8 mm off), so it serves only to refuse, never to place.
LOCAL_BLUR_FACTOR = 1.7


@dataclass(frozen=True)
class LineModel:
    """How printed lines look in this photo, from the measured blur.

    ``ridge_mm``: distance at which a line pixel is compared with the paper on both sides;
    ``min_contrast``: the weakest mean line darkening (share of paper brightness) accepted.
    ``max_residual_mm``: how far (RMS) a side's per-segment positions may scatter about a
    straight line; a blurred line's peak wanders with noise and handwriting near it.
    ``edge_mm``: the blur the model was made for (10-90 % edge rise, mm).
    """

    ridge_mm: float
    min_contrast: float
    max_residual_mm: float = MAX_LINE_RESIDUAL_MM
    edge_mm: float = 0.0

    @classmethod
    def for_blur(cls, edge_mm: float) -> LineModel:
        """Model for a photo whose edges rise (10-90 %) over ``edge_mm`` millimetres."""
        sigma_blur = max(edge_mm, 0.0) / 2.56  # a Gaussian's 10-90 rise is 2.56 sigma
        sigma = float(np.hypot(sigma_blur, LINE_MM / np.sqrt(12.0)))
        # The blurred line is about 2 sigma wide each side; compare beyond that.
        ridge = max(0.5, 0.2 + 2.15 * sigma)
        # Peak darkening of a blurred 0.4 mm line of ~80 % ink, and a third of it accepted.
        expected = min(0.8, 0.8 * LINE_MM / (np.sqrt(2 * np.pi) * sigma))
        # A sharp line's segments agree within a few hundredths of a mm, so the straightness
        # test can be strict; under heavy blur the peak of each segment wanders by about a
        # third of the edge width, which a bend must exceed to be told apart.
        residual = max(MAX_LINE_RESIDUAL_MM, BLUR_RESIDUAL_SHARE * max(edge_mm, 0.0))
        return cls(ridge_mm=float(ridge), min_contrast=float(np.clip(0.3 * expected, 0.05, 0.18)),
                   max_residual_mm=float(residual), edge_mm=float(max(edge_mm, 0.0)))

    @property
    def spread_mm(self) -> float:
        """How far (mm) a blurred line's response spreads each side of the line.

        A shaken camera splits that response into two peaks up to about a millimetre apart,
        one each side of the printed line (see :func:`_fit_side_pair`).
        """
        return float(np.clip(self.ridge_mm, PEAK_CENTROID_MM, SIDE_SEARCH_MM))


@dataclass
class BoxFit:
    """Where one box is in the photo.

    ``corners_px``: (4, 2) float64 photo px of the box's corners TL, TR, BR, BL (the centres of
    its border lines).  ``h``: 3x3 page mm -> photo px, exact at those corners.  ``found``: the
    border was seen (else the corners come from neighbours).  ``shift_mm``: (2,) how far the
    box's centre is from where the global homography put it, in page mm (``corner_shifts_mm``:
    (4, 2) the same per corner).  ``contrast``: line darkening of the weakest side, as a share
    of paper brightness.  ``trusted``: False when the box could be neither found nor placed
    safely from its neighbours; such a box must not be cropped.  ``uncertainty_mm``: for a box
    not found by its border, how far (mm) its placement may be off: the uncertainty of the
    neighbours' prediction that placed it, infinite where none could (0 for a found box).
    ``disputed_mm``: for a border refused because its neighbours put the box elsewhere, how
    far away (the box stays at its border, but may be there; ``uncertainty_mm`` is then the
    neighbours').  ``found_distance_mm``: how far (page mm) its centre is from the nearest
    found box, which also bounds how well it can be placed (:func:`placement_uncertainty_mm`).
    An unplaced box's review view is widened by all three (:func:`review_margin_mm`).
    """

    box: BoxSpec
    corners_px: np.ndarray
    h: np.ndarray
    found: bool
    shift_mm: np.ndarray
    contrast: float
    note: str = ""
    corner_shifts_mm: np.ndarray = field(default_factory=lambda: np.zeros((4, 2)))
    trusted: bool = True
    # Unknown until something places the box: a box no path sets this for is refused, not
    # shown in a view too narrow to hold it.
    uncertainty_mm: float = float("inf")
    disputed_mm: float = 0.0
    # How far (page mm) the box's centre is from the nearest found box (its centre or a
    # corner), set for every box once the page's boxes are fitted; unknown (refused) before.
    found_distance_mm: float = float("inf")


def box_corners_mm(rect: Rect) -> np.ndarray:
    """(4, 2) float64: the rect's corners TL, TR, BR, BL in page mm."""
    return marker_corners_mm(rect)


@dataclass(frozen=True)
class SideMaps:
    """Line responses of an upright region for one orientation, (n, m) float32 each.

    Laid out with the lines horizontal (for vertical lines the region is transposed).
    ``first`` and ``second`` serve a box's first (top, left) and second side; both are the
    darkening against the paper on at least one side.  ``both``: against both sides (a line
    seen from nowhere in particular), made when first asked for (``make_both``): only a
    search for a box's sides among its neighbours' needs it, and most boxes are found where
    predicted without one.  All are shares of the local paper brightness.
    """

    first: np.ndarray
    second: np.ndarray
    make_both: Callable[[], np.ndarray] = field(repr=False, compare=False)

    @cached_property
    def both(self) -> np.ndarray:
        return self.make_both()


def _darker(
    image: np.ndarray, side: np.ndarray, d: int, inv_paper: np.ndarray, on_both: bool = False
) -> np.ndarray:
    """How much darker each pixel is than the paper on at least one side (or ``on_both``).

    ``image`` and ``side`` (its max filter along the rows) are (n, m) uint8; a pixel of row
    i is compared with ``side`` rows i - d and i + d.  Returns an (n, m) float32 map, as
    shares of the paper level (``inv_paper`` = 1 / paper); the first and last d rows are 0.
    """
    before, after, centre = side[: -2 * d], side[2 * d:], image[d:-d]
    paper = cv2.min(before, after) if on_both else cv2.max(before, after)
    darker = np.empty(image.shape, np.float32)
    darker[:d] = darker[-d:] = 0.0
    np.multiply(cv2.subtract(paper, centre), inv_paper[d:-d], out=darker[d:-d])
    return darker


# 1 / paper level for every grey value, as the line responses divide by it (never below 8);
# a (1, 256) table for cv2.LUT, several times quicker than numpy's indexing by a uint8 image.
_INVERSE_PAPER = (1.0 / np.maximum(np.arange(256, dtype=np.float32), 8.0)).astype(
    np.float32).reshape(1, 256)


def _ridges(region: np.ndarray, ridge_px: int) -> tuple[SideMaps, SideMaps]:
    """Line responses for horizontal and vertical lines of an upright region (h, w) uint8.

    A pixel's response is how much darker it is than the brightest pixel between
    ``RIDGE_NEAR_MM`` and ``ridge_px`` away on a side.  The brightest in a range, not one
    fixed distance, keeps two lines 1.5 mm apart (student-number digits of older sheets) from
    cancelling each other when the photo is blurred.  Each side of a box is judged against its
    inside only: the label printed just above a box, or a neighbour's line, would otherwise eat
    the response of a blurred top or side line.  Divided by the local paper brightness (a max
    filter wider than a line, smoothed), responses read the same in shadow and in full light.
    """
    near = max(2, round(RIDGE_NEAR_MM * REFINE_PX_PER_MM))
    far = max(ridge_px, near + 2)
    if (far - near) % 2:
        far += 1
    d = (near + far) // 2  # centre of the side window
    width = far - near + 1
    k = 2 * far + 1
    # Saturating uint8 arithmetic (OpenCV's SIMD paths) keeps this cheap; only the
    # normalised maps are float.
    paper = cv2.blur(cv2.dilate(region, np.ones((k, k), np.uint8)), (k, k))
    # A side counts as a line if it is darker than the paper on at least one side ("any"):
    # inside a box handwriting may touch its border, outside a label or a neighbour may be
    # close.  "both" (darker than either side) serves for lines seen from nowhere special.
    side_y = cv2.dilate(region, np.ones((width, 1), np.uint8))
    side_x = np.ascontiguousarray(cv2.dilate(region, np.ones((1, width), np.uint8)).T)
    region_t = np.ascontiguousarray(region.T)
    inv_paper = cv2.LUT(paper, _INVERSE_PAPER)
    inv_paper_t = inv_paper.T
    h_any = _darker(region, side_y, d, inv_paper)
    v_any = _darker(region_t, side_x, d, inv_paper_t)
    horizontal = SideMaps(h_any, h_any, lambda: _darker(region, side_y, d, inv_paper, True))
    vertical = SideMaps(v_any, v_any, lambda: _darker(region_t, side_x, d, inv_paper_t, True))
    return horizontal, vertical


@dataclass(frozen=True)
class LinePair:
    """Two parallel lines ``across = first + slope * (along - centre)`` and ``second + ...``.

    In region pixels; for horizontal lines ``across`` is y and ``along`` x.  ``contrast``: the
    weaker line's mean darkening (share of paper brightness).
    """

    first: float
    second: float
    slope: float
    centre: float
    contrast: float

    def at(self, which: int, along: float) -> float:
        base = self.first if which == 0 else self.second
        return base + self.slope * (along - self.centre)


SEGMENT_SEARCH_MM = 5.0


@dataclass(frozen=True)
class Window:
    """How far a box's border is searched from its prediction: shift (mm), turn (degrees) and
    relative size.  Narrow where the neighbours predict the box well (a flat sheet), wide on a
    bent one; a box missed in a narrow window is searched again in the widest."""

    shift_mm: float
    turn_deg: float
    size_tol: float

    @classmethod
    def widest(cls) -> Window:
        return cls(SEARCH_MM, MAX_TURN_DEG, SIZE_TOLERANCE)

    @classmethod
    def for_uncertainty(cls, uncertainty: float) -> Window:
        """A window several times the predicted error, within fixed bounds."""
        u = max(uncertainty, 0.0)
        return cls(min(max(0.8 + 3.0 * u, 1.2), SEARCH_MM),
                   min(max(2.0 + 5.0 * u, 2.0), MAX_TURN_DEG),
                   min(max(0.03 + 0.06 * u, 0.03), SIZE_TOLERANCE))

    @property
    def slopes(self) -> np.ndarray:
        """Slopes (tan) searched, one degree apart, 0 in the middle."""
        n = int(np.ceil(self.turn_deg))
        return np.tan(np.deg2rad(np.arange(-n, n + 1, 1.0)))


def _line_scores(
    ridge: np.ndarray, span: tuple[int, int], slopes: np.ndarray
) -> tuple[np.ndarray, float]:
    """Mean response (n_slopes, n_rows) along lines of every slope in ``slopes`` through
    each row at the span's centre, and that centre (column).

    The response is averaged over column segments, and a slope shifts each segment's profile
    before they are averaged, so a turned box costs a few profile lookups, not another warp.
    """
    xa, xb = span
    capped = np.minimum(ridge[:, xa:xb], LINE_CAP)
    n_seg = max(1, round((xb - xa) / (SEGMENT_SEARCH_MM * REFINE_PX_PER_MM)))
    edges = np.linspace(0, xb - xa, n_seg + 1).round().astype(int)
    profiles = np.stack([capped[:, e0:e1].mean(axis=1)
                         for e0, e1 in pairwise(edges)])
    centre = (xa + xb - 1) / 2.0
    seg_rel = (edges[:-1] + edges[1:] - 1) / 2.0 + xa - centre  # (n_seg,)
    ny = ridge.shape[0]
    offsets = np.rint(slopes[:, None] * seg_rel[None, :]).astype(int)  # (nt, n_seg)
    idx = np.arange(ny)[None, None, :] + offsets[:, :, None]  # (nt, n_seg, ny)
    valid = (idx >= 0) & (idx < ny)
    picked = profiles[np.arange(n_seg)[None, :, None], np.clip(idx, 0, ny - 1)]
    return np.where(valid, picked, 0.0).mean(axis=1).astype(np.float32), centre


def _peaks(lines: np.ndarray) -> np.ndarray:
    """(nt, n) bool: local maxima along each row of ``lines`` within ``PEAK_HALF_MM``."""
    half = max(1, round(PEAK_HALF_MM * REFINE_PX_PER_MM))
    return np.asarray(lines >= cv2.dilate(lines, np.ones((1, 2 * half + 1), np.uint8)))


def _pair_search(
    maps: SideMaps, span: tuple[int, int], expected: tuple[float, float], window: Window,
    others: tuple[float, ...] = (), min_contrast: float = 0.0,
    cross: CornerCheck | None = None, excluded: tuple[LinePair, ...] = (),
) -> LinePair | None:
    """Find a box's two parallel horizontal sides in line-response maps (h, w) float32.

    ``span``: the columns known to lie inside the box; ``expected``: the sides' rows where the
    box is predicted.  Searches the shift, slopes and separation of ``window`` (both sides on
    peaks of the line response, see :func:`_line_scores`).  For vertical sides pass the
    transposed maps.

    ``others``: rows where neighbouring boxes' parallel sides are printed (same frame as
    ``expected``); they move and scale with the pair, and their response adds to the score.
    When a clearly different pair scores nearly as well, the two are settled by the corners
    (``cross``: the other orientation's maps and pair) or the layout, else None is returned.
    Pairs the same as one in ``excluded`` (both lines within ``AMBIGUOUS_MM``) are not
    considered: they were tried and did not make a box.
    """
    xa, xb = span
    if xb - xa < 4:
        return None
    slopes = window.slopes
    search = round(window.shift_mm * REFINE_PX_PER_MM)
    first_lines, centre = _line_scores(maps.first, span, slopes)
    second_lines = first_lines if maps.second is maps.first else \
        _line_scores(maps.second, span, slopes)[0]
    ny = maps.first.shape[0]
    y0, y1 = expected
    gap = y1 - y0
    tol = window.size_tol
    rows = np.arange(round(y0) - search, round(y0) + search + 1)
    gaps = np.arange(round(gap * (1 - tol)), round(gap * (1 + tol)) + 1)
    top_rows = np.clip(rows, 0, ny - 1)
    bottom_rows = np.clip(rows[:, None] + gaps[None, :], 0, ny - 1)  # (nr, ng)
    top = first_lines[:, top_rows][:, :, None]  # (nt, nr, 1)
    bottom = second_lines[:, bottom_rows]  # (nt, nr, ng)
    inside = ((rows >= 0) & (rows < ny))[None, :, None] & \
        ((rows[:, None] + gaps[None, :]) < ny)[None, :, :]
    # Sides may only sit on peaks of the line response: on a blurred photo the flank of a
    # neighbour's line is nearly as dark as a real side and would otherwise pair up with it.
    first_peaks = _peaks(first_lines)
    second_peaks = first_peaks if second_lines is first_lines else _peaks(second_lines)
    inside = inside & first_peaks[:, top_rows][:, :, None] & second_peaks[:, bottom_rows]
    weaker = np.minimum(top, bottom)
    score = (top + bottom) / 2 + weaker
    if others:
        lines, _ = _line_scores(maps.both, span, slopes)
        # Each neighbour line sits at first + (row - y0) * gap / (y1 - y0).
        rel = (np.asarray(others) - y0) / gap  # (no,)
        at = rows[None, :, None, None] + rel[:, None, None, None] * gaps[None, None, :, None]
        at = np.rint(at[..., 0]).astype(int)  # (no, nr, ng)
        ok = (at >= 0) & (at < ny)
        resp = lines[:, np.clip(at, 0, ny - 1)]  # (nt, no, nr, ng)
        resp = np.where(ok[None], resp, 0.0).mean(axis=1)
        score = score + NEIGHBOUR_WEIGHT * resp
    # Small priors for the predicted place, size and angle: they only decide near-ties (a
    # short side is nearly as good at any slope), never against a clearly better border.
    slope_dev = np.abs(np.arange(len(slopes)) - len(slopes) // 2) / max(len(slopes) // 2, 1)
    shift_dev = np.abs(rows - round(y0)) / max(search, 1)
    gap_dev = np.abs(gaps / gap - 1.0) / tol
    score = score - PRIOR_WEIGHT * (slope_dev[:, None, None] + shift_dev[None, :, None]
                                    + gap_dev[None, None, :])
    for pair in excluded:
        inside &= ~_same_pair(rows, gaps, pair.first, pair.second)[None]
    score = np.where(inside, score, -1.0)
    t, r, g = np.unravel_index(int(np.argmax(score)), score.shape)
    if score[t, r, g] <= 0:
        return None
    best = LinePair(float(rows[r]), float(rows[r] + gaps[g]), float(slopes[t]), centre,
                    float(weaker[t, r, g]))
    alt = _rival(score, rows, gaps, int(r), int(g))
    if alt is None:
        # Even unrivalled, a pair must end where the crossing sides end: a long stroke in a
        # box with one faint side could otherwise stand in for that side.
        # Then the next best pair is looked at: the real side may be just behind the stroke.
        if cross is not None and not _corners_ok(best, _NO_PAIR, cross):
            if len(excluded) >= MAX_EXCLUDED_PAIRS:
                return None
            return _pair_search(maps, span, expected, window, others, min_contrast, cross,
                                (*excluded, best))
        return best
    t2, r2, g2 = alt
    rival = LinePair(float(rows[r2]), float(rows[r2] + gaps[g2]), float(slopes[t2]), centre,
                     float(weaker[t2, r2, g2]))
    if cross is not None:
        best_ok = _corners_ok(best, rival, cross)
        rival_ok = _corners_ok(rival, best, cross)
        if best_ok != rival_ok:
            chosen = best if best_ok else rival
            # The side the two share was not looked at: the chosen pair must hold at all
            # four corners (a neighbour's side shared by both would otherwise pass).
            if _corners_ok(chosen, _NO_PAIR, cross):
                return chosen
            best_ok = rival_ok = False
        if not best_ok and len(excluded) + 2 <= MAX_EXCLUDED_PAIRS:
            # Neither ends where the crossing sides end: both take a stroke for a side.
            return _pair_search(maps, span, expected, window, others, min_contrast, cross,
                                (*excluded, best, rival))
    return _settle(best, rival, maps.first, span, min_contrast, (expected, others))


_NO_PAIR = LinePair(-1e9, -1e9, 0.0, 0.0, 0.0)  # shares no side with anything


@dataclass(frozen=True)
class CornerCheck:
    """What a corner test needs: the crossing sides and where to look along them.

    ``maps``, ``lines``: the other orientation's maps (lines horizontal) and found pair.
    ``near``, ``far``: the stretch (px from the side) looked at on each side of a corner,
    beyond the blur of the side itself.  ``clear``: how far (px) beyond the first and the
    second side no other printed side is expected (digit boxes sat 1.5 mm apart on older
    sheets); beyond a side the stretch is cut short there.  ``min_contrast``: the page's least
    contrast of a printed line.
    """

    maps: SideMaps
    lines: LinePair
    near: int
    far: int
    clear: tuple[float, float]
    min_contrast: float = 0.0


def _corners_ok(pair: LinePair, other: LinePair, check: CornerCheck) -> bool:
    """True if the crossing sides stop at this pair's sides that the other pair does not share.

    At a box's corner the crossing side ends.  A long handwritten stroke or a neighbour's side
    taken for a side leaves the crossing sides running on past it, or missing before it,
    which a real corner never does.
    """
    tol = AMBIGUOUS_MM * REFINE_PX_PER_MM
    ridge, lines = check.maps.first, check.lines
    sides = ((pair.first, -1, check.clear[0]), (pair.second, 1, check.clear[1]))
    for pos, outward, clear in sides:
        if abs(pos - other.first) <= tol or abs(pos - other.second) <= tol:
            continue
        inside, strays = _along_response(ridge, lines, pos - outward * check.far,
                                         pos - outward * check.near)
        # A corner: the crossing side is there just inside, and gone just beyond.  There
        # means as strong as a printed line needs to be on this page, or a good share of
        # the side's own contrast: a corner's junction weakens the response of a sharp line.
        if inside < min(CORNER_PRESENT_SHARE * lines.contrast, check.min_contrast):
            return False
        reach = min(check.far, clear - REFINE_PX_PER_MM * LINE_MM * 2)
        if reach - check.near >= 2:
            # A side running on past the corner runs on where it was just inside.
            beyond, _ = _along_response(ridge, lines, pos + outward * check.near,
                                        pos + outward * reach, strays)
            if beyond > CORNER_CONTINUE_SHARE * inside:
                return False
    return True


def _along_response(
    ridge: np.ndarray, lines: LinePair, a: float, b: float,
    strays: tuple[int, int] | None = None,
) -> tuple[float, tuple[int, int]]:
    """Weaker of the two ``lines``' mean response between columns ``a`` and ``b``, and the
    offsets (rows) from their straight course at which each responds most.

    Each line is known to about a pixel where it was fitted, but a bent side strays from its
    straight course towards the corners: each is followed at the offset, within
    ``CORNER_BEND_MM``, where the stretch responds most, or at the given ``strays``.
    """
    lo, hi = sorted((round(a), round(b)))
    lo, hi = max(lo, 0), min(hi, ridge.shape[1] - 1)
    if hi <= lo:
        return 0.0, (0, 0)
    cols = np.arange(lo, hi + 1)
    bend = round(CORNER_BEND_MM * REFINE_PX_PER_MM)
    means: list[float] = []
    offsets: list[int] = []
    for which in (0, 1):
        rows = np.rint([lines.at(which, c) for c in cols]).astype(int)
        tried = range(-bend, bend + 1) if strays is None else (strays[which],)
        # The best of three rows around each offset tried.
        scores = [float(np.max([ridge[np.clip(rows + k + d, 0, ridge.shape[0] - 1), cols]
                                for d in (-1, 0, 1)], axis=0).mean()) for k in tried]
        best = int(np.argmax(scores))
        means.append(scores[best])
        offsets.append(tried[best])
    return min(means), (offsets[0], offsets[1])


def _settle(
    best: LinePair, rival: LinePair, ridge: np.ndarray, span: tuple[int, int],
    min_contrast: float, layout: tuple[tuple[float, float], tuple[float, ...]],
) -> LinePair | None:
    """Choose between two pairs that explain the picture nearly equally well, or neither.

    Typically one is the box and the other pairs a side with a neighbour's side (the
    predicted scale being off on a bent sheet), or with a long handwritten stroke.  A pair
    is kept only if the other's line it leaves out is accounted for: inside the box it must
    not look printed (a box has no printed line inside), outside it must be where the layout
    has a neighbour's side.  ``layout``: the box's expected sides and its neighbours' sides.
    """
    (y0, y1), others = layout
    inset = AMBIGUOUS_MM * REFINE_PX_PER_MM

    def consistent(pair: LinePair, other: LinePair) -> bool:
        lo, hi = sorted((pair.first, pair.second))
        scale = (hi - lo) / (y1 - y0)
        for pos in (other.first, other.second):
            if abs(pos - pair.first) <= inset or abs(pos - pair.second) <= inset:
                continue  # a line both pairs share
            if lo < pos < hi:
                probe = LinePair(pos, pos, other.slope, other.centre, 0.0)
                if _straight_side(ridge, span, probe, min_contrast):
                    return False
            elif not any(abs(pair.first + (o - y0) * scale - pos) <= inset for o in others):
                return False
        return True

    best_ok, rival_ok = consistent(best, rival), consistent(rival, best)
    if best_ok and not rival_ok:
        return best
    if rival_ok and not best_ok:
        return rival
    return None


def _straight_side(
    ridge: np.ndarray, span: tuple[int, int], probe: LinePair, min_contrast: float
) -> bool:
    """True if a line that looks printed (whole length, even, straight) runs along ``probe``."""
    points = _side_points(ridge, (span[0], span[1]), probe, 0, min_contrast)
    if points is None or len(points) < 2:
        return False
    along = np.array([p[0] for p in points])
    across = np.array([p[1] for p in points])
    fit = np.polyfit(along, across, 1)
    resid = across - np.polyval(fit, along)
    return bool(np.sqrt(np.mean(resid**2)) <= MAX_LINE_RESIDUAL_MM * REFINE_PX_PER_MM)


def _rival(
    score: np.ndarray, rows: np.ndarray, gaps: np.ndarray, r: int, g: int
) -> tuple[int, int, int] | None:
    """A clearly different pair of lines scoring nearly as well as the best one, if any.

    On a strongly bent sheet the predicted scale can be off enough for a neighbour's side
    (4 mm away) to pair with this box's far side; then two placements explain the picture and
    neither may be trusted.  Different means either line moved by more than
    ``AMBIGUOUS_MM``.  Returns its (slope, row, gap) indices.
    """
    same = _same_pair(rows, gaps, rows[r], rows[r] + gaps[g])
    others = np.where(same[None, :, :], -1.0, score)
    if others.max() < AMBIGUOUS_SHARE * score.max():
        return None
    t2, r2, g2 = np.unravel_index(int(np.argmax(others)), others.shape)
    return int(t2), int(r2), int(g2)


def _same_pair(rows: np.ndarray, gaps: np.ndarray, first: float, second: float) -> np.ndarray:
    """(n_rows, n_gaps) bool: which pairs of the search have both lines within
    ``AMBIGUOUS_MM`` of ``first`` and ``second``."""
    tol = AMBIGUOUS_MM * REFINE_PX_PER_MM
    ends = rows[:, None] + gaps[None, :]
    return np.asarray((np.abs(rows[:, None] - first) <= tol) & (np.abs(ends - second) <= tol))


def _peaks_subpixel(
    profiles: np.ndarray, centroid_mm: float = PEAK_CENTROID_MM
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peak position and height of each row of ``profiles`` (n, W).

    The position is the centroid of the part above half the peak within ``centroid_mm`` of
    the maximum: a printed line is several pixels wide and its response has a flat top,
    where a parabola is no help.
    """
    n, width = profiles.shape
    i = np.argmax(profiles, axis=1)
    height = profiles[np.arange(n), i]
    j = np.arange(width)[None, :]
    near = np.abs(j - i[:, None]) <= centroid_mm * REFINE_PX_PER_MM
    weights = np.where(near, np.maximum(profiles - 0.5 * height[:, None], 0.0), 0.0)
    total = np.maximum(weights.sum(axis=1), 1e-9)
    return (weights * j).sum(axis=1) / total, height


Points = list[tuple[float, float]]


def _side_points(
    ridge: np.ndarray, along: tuple[float, float], pair: LinePair, which: int,
    min_contrast: float,
) -> Points | None:
    """Sub-pixel positions of one side of ``pair``; see :func:`_pair_points`."""
    return _pair_points(ridge, along, pair, min_contrast, (which,))[0]


def _pair_points(
    ridge: np.ndarray, along: tuple[float, float], pair: LinePair, min_contrast: float,
    which: tuple[int, ...] = (0, 1), centroid_mm: float = PEAK_CENTROID_MM,
) -> list[Points | None]:
    """Sub-pixel positions of the sides ``which`` of ``pair``, one per segment.

    Points are (along, across) in region pixels.  ``ridge`` has the sides horizontal
    (transpose it for vertical sides); ``along``: the sides' extent between the corners.
    A side gives None unless it looks printed along its whole length: a line in every
    segment (one may be lost on long sides) of even darkness.  A handwritten stroke next to
    the border is shorter, and uneven, so it cannot stand in for a side.  Both sides are
    measured in one vectorised pass.
    """
    half = round(SIDE_SEARCH_MM * REFINE_PX_PER_MM)
    inset = CORNER_SKIP_MM * REFINE_PX_PER_MM
    ny, nx = ridge.shape
    a0, a1 = max(round(along[0] + inset), 0), min(round(along[1] - inset), nx)
    if a1 - a0 < 4:
        return [None for _ in which]
    n_seg = max(1, round((a1 - a0) / (SEGMENT_MM * REFINE_PX_PER_MM)))
    seg_len = (a1 - a0) // n_seg
    starts = a0 + np.arange(n_seg) * seg_len
    mids = starts + (seg_len - 1) / 2.0
    bases = np.array([pair.first if w == 0 else pair.second for w in which])
    across = np.rint(bases[:, None] + pair.slope * (mids - pair.centre)[None, :]).astype(int)
    cols = starts[:, None] + np.arange(seg_len)[None, :]  # (n_seg, L), the same for each side
    # Follow the coarse slope inside each segment, so a turned line stays in one row.
    tilt = np.rint(pair.slope * (cols - mids[:, None])).astype(int)
    offsets = np.arange(-half, half + 1)
    valid = ((across - half + tilt.min(axis=1) >= 0)
             & (across + half + tilt.max(axis=1) < ny)).ravel()
    if pair.slope == 0.0 and valid.all():
        profiles = _level_profiles(ridge, across[:, 0], half, a0, n_seg, seg_len)
    else:
        # (n_sides, n_seg, W, L): every side's rows at every offset, broadcast over columns.
        rows = across[:, :, None, None] + offsets[:, None] + tilt[:, None, :]
        profiles = ridge[np.clip(rows, 0, ny - 1), cols[:, None, :]].mean(axis=3)
    profiles = profiles.reshape(-1, len(offsets))  # (n_sides * n_seg, W)
    across = across.ravel()
    pos, height = _peaks_subpixel(profiles, centroid_mm)
    ok = valid & (height >= min_contrast) & (pos > 0) & (pos < 2 * half)
    # A long side may lose a quarter of its segments to a thick stroke, a glare or a shadow edge.
    allowed_missing = max(1, n_seg // 4) if n_seg >= 4 else 0
    out: list[Points | None] = []
    for k in range(len(which)):
        sel = slice(k * n_seg, (k + 1) * n_seg)
        good = ok[sel]
        h = height[sel][good]
        if not good.any() or int(good.sum()) < n_seg - allowed_missing or \
                h.min() < EVEN_LINE_SHARE * _median(h):
            out.append(None)
            continue
        out.append([(float(m), float(a - half + p)) for m, a, p in
                    zip(mids[good], across[sel][good], pos[sel][good], strict=True)])
    return out


def _level_profiles(
    ridge: np.ndarray, rows: np.ndarray, half: int, start: int, n_seg: int, seg_len: int
) -> np.ndarray:
    """(n_sides, n_seg, 2 * half + 1) mean responses per segment of level sides centred on
    ``rows``: what :func:`_pair_points` gathers for any slope, taken as slices of ``ridge``
    (nearly every side is level in its warped region) and averaged in the same order, so
    the same values to the bit."""
    stop = start + n_seg * seg_len
    bands = [ridge[r - half:r + half + 1, start:stop].reshape(2 * half + 1, n_seg, seg_len)
             for r in rows]
    return np.stack(bands).mean(axis=3).transpose(0, 2, 1)


def _median(values: np.ndarray) -> float:
    """``np.median`` of a short 1-D array, the same value to the bit, by partitioning:
    np.median's general machinery costs more than the rest of a side's measurement."""
    n = values.size
    mid = n // 2
    if n % 2:
        return float(np.partition(values, mid)[mid])
    low, high = np.partition(values, (mid - 1, mid))[mid - 1:mid + 1]
    return float((low + high) / 2)


def _fit_pair(
    first: list[tuple[float, float]] | None, second: list[tuple[float, float]] | None,
    max_residual_mm: float = MAX_LINE_RESIDUAL_MM,
) -> tuple[float, float, float] | None:
    """Two parallel lines ``across = a + slope * along`` and ``a2 + slope * along``.

    Returns (a, a2, slope), least squares over both sides' points; None without a point on
    each side.  Parallel is right to well under a pixel over one box, and it lets a side with
    a single clean segment still be placed.
    """
    if not first or not second:
        return None
    rows = [[1.0, 0.0, along] for along, _ in first] + [[0.0, 1.0, along] for along, _ in second]
    rhs = np.array([across for _, across in first + second])
    mat = np.array(rows)
    if len(rows) < 3:
        # Too few points for a slope: assume none (the region is already nearly upright).
        mat = mat[:, :2]
    sol, *_ = np.linalg.lstsq(mat, rhs, rcond=None)
    resid = rhs - mat @ sol
    if float(np.sqrt(np.mean(resid**2))) > max_residual_mm * REFINE_PX_PER_MM:
        return None  # not two straight parallel lines: a bend, or a stroke taken for a side
    slope = float(sol[2]) if len(sol) > 2 else 0.0
    return float(sol[0]), float(sol[1]), slope


def _intersect(vert: tuple[float, float], horiz: tuple[float, float]) -> tuple[float, float]:
    """Crossing of x = a + b*y and y = c + e*x."""
    a, b = vert
    c, e = horiz
    y = (c + e * a) / (1.0 - e * b)
    return a + b * y, y


def _box_homography(rect: Rect, corners_px: np.ndarray) -> np.ndarray:
    return cv2.getPerspectiveTransform(box_corners_mm(rect).astype(np.float32),
                                       corners_px.astype(np.float32)).astype(np.float64)


@dataclass(frozen=True)
class Correction:
    """A local affine correction of the global homography around ``centre`` (page mm).

    A page point p is moved to ``p + offset + jac @ (p - centre)`` before the global
    homography maps it into the photo.  ``uncertainty``: how far (mm) the prediction may be
    off, from the disagreement of the anchors it was fitted to and their distance.
    """

    centre: np.ndarray
    offset: np.ndarray
    jac: np.ndarray
    uncertainty: float = 0.0

    @classmethod
    def none(cls, centre: np.ndarray, uncertainty: float = 0.0) -> Correction:
        """No correction; ``uncertainty``: how far the uncorrected homography may be off."""
        return cls(centre, np.zeros(2), np.zeros((2, 2)), uncertainty)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) page mm -> (N, 2) corrected page mm."""
        return points + self.offset + (points - self.centre) @ self.jac.T

    def matrix(self) -> np.ndarray:
        """The correction as a 3x3 affine matrix on page mm."""
        lin = np.eye(2) + self.jac
        m = np.eye(3)
        m[:2, :2] = lin
        m[:2, 2] = self.offset - self.jac @ self.centre
        return m


def fit_box(
    gray: np.ndarray, h_page: np.ndarray, box: BoxSpec, lines: LineModel,
    correction: Correction | None = None, neighbours: tuple[BoxSpec, ...] = (),
    window: Window | None = None, merge_copies: bool = False,
) -> BoxFit:
    """Find one box's printed border around where the correction predicts it.

    The region around the box is warped through the global homography and the correction,
    so the box appears nearly upright at its printed size wherever it is.  The longer pair of
    sides is searched first over the span surely inside the box, then the other pair over the
    found extent, then the first again over the other's extent; finally each side is refined
    per segment.  When the sides found do not make a box, the search is repeated without
    the second pair found (``PAIR_RETRIES`` times).  Returns a BoxFit with ``found`` False
    (and the predicted placement) when the border is not convincingly there.
    ``merge_copies``: search line responses with a shaken camera's two copies of each line
    merged (see :func:`_merge_copies`).
    """
    corr = correction or Correction.none(np.array(box.centre), float("inf"))
    r = REFINE_PX_PER_MM
    ridge_px = max(2, round(lines.ridge_mm * r))
    win = window or Window.widest()
    margin = win.shift_mm + SIDE_SEARCH_MM + ridge_px / r + 0.3
    region, to_photo = warp_region(gray, h_page @ corr.matrix(), box.rect, margin, r)
    horizontal, vertical = _ridges(region, ridge_px)
    search = round(win.shift_mm * r)
    # Border line centres lie on the rect's edges; pixel u's centre is at (u + 0.5) / r mm.
    x0 = y0 = margin * r - 0.5
    x1, y1 = x0 + box.rect[2] * r, y0 + box.rect[3] * r
    if win.shift_mm <= FAST_SHIFT_MM and not merge_copies:
        # Well predicted (a flat sheet): the border lies within the per-segment search of
        # where it is predicted, so the pair search can be skipped.  (A search with merged
        # copies follows a plain one that has tried this already.)
        guess = (LinePair(y0, y1, 0.0, (x0 + x1) / 2, 1.0),
                 LinePair(x0, x1, 0.0, (y0 + y1) / 2, 1.0))
        fast = _fit_sides(horizontal, vertical, guess, lines, (x0, y0, x1, y1), win)
        if fast is not None:
            return _found(box, h_page, to_photo, fast, 1.0)
    order = ("h", "v") if box.rect[2] >= box.rect[3] else ("v", "h")
    corner_near = max(round(CORNER_GAP_MM[0] * r), ridge_px)
    plan = PairPlan(
        maps={"h": horizontal, "v": vertical}, expected={"h": (y0, y1), "v": (x0, x1)},
        others=_neighbour_lines(box, neighbours, margin),
        inner={"h": _inner(x0, x1, search), "v": _inner(y0, y1, search)},
        order=order, corner_near=corner_near,
        corner_far=corner_near + round((CORNER_GAP_MM[1] - CORNER_GAP_MM[0]) * r),
        window=win, min_contrast=lines.min_contrast)
    if merge_copies:
        merged = {k: _merge_copies(m, lines, plan.expected[k], plan.others[k])
                  for k, m in plan.maps.items()}
        if all(merged[k] is plan.maps[k] for k in merged):
            return _placed(box, h_page, corr, "border not found")
        plan = replace(plan, maps=merged)
    found, note = _search_border(plan, lines, (x0, y0, x1, y1))
    if found is None:
        return _placed(box, h_page, corr, note)
    corners, contrast = found
    return _found(box, h_page, to_photo, corners, contrast)


def _search_border(
    plan: PairPlan, lines: LineModel, expected: tuple[float, float, float, float],
) -> tuple[tuple[np.ndarray, float] | None, str]:
    """A box's corners (region px) and weakest side's contrast, or None and why not: the
    pair search, then the sides refined per segment, retried without the second pair when
    the sides do not make a box (``PAIR_RETRIES`` times)."""
    excluded: list[LinePair] = []
    note = "border not found"
    for _ in range(1 + PAIR_RETRIES):
        pairs, blamed = _search_pairs(plan, tuple(excluded))
        if pairs is not None:
            hpair, vpair = pairs["h"], pairs["v"]
            corners = _fit_sides(plan.maps["h"], plan.maps["v"], (hpair, vpair), lines,
                                 expected, plan.window)
            if corners is not None:
                return (corners, min(hpair.contrast, vpair.contrast)), note
            note = "a side of the border is missing or bent"
            blamed = pairs[plan.order[1]]
        if blamed is None:
            break
        excluded.append(blamed)
    return None, note


def _merge_copies(
    maps: SideMaps, lines: LineModel, expected: tuple[float, float], others: tuple[float, ...],
) -> SideMaps:
    """Line responses averaged across the lines over a blurred line's spread each way, so
    that the two copies of a line a shaken camera draws respond as one.  Left as they are
    where a neighbour's parallel side is printed within twice that of the box's sides
    (student-number digits of older sheets, 1.5 mm apart): merged with it, a side would move
    towards it."""
    reach = round(lines.spread_mm * REFINE_PX_PER_MM)
    if any(abs(o - e) <= 2 * reach for o in others for e in expected):
        return maps
    width = 2 * reach + 1
    first = cv2.blur(maps.first, (1, width))
    second = first if maps.second is maps.first else cv2.blur(maps.second, (1, width))
    return SideMaps(first, second, lambda: cv2.blur(maps.both, (1, width)))


# A box whose sides do not make a box is searched again without the second pair of sides
# found, this many times: a handwritten stroke beside the real side can outscore it.
PAIR_RETRIES = 2
MAX_EXCLUDED_PAIRS = 4  # pairs set aside in one search, by retries or failed corners


@dataclass(frozen=True)
class PairPlan:
    """What the search for a box's sides needs, per orientation ("h", "v"): line-response
    maps, expected sides, neighbours' sides and the span surely inside the box (region px);
    the order the pairs are searched in, the corner check's stretch (px), the window and the
    page's minimum line contrast."""

    maps: dict[str, SideMaps]
    expected: dict[str, tuple[float, float]]
    others: dict[str, tuple[float, ...]]
    inner: dict[str, tuple[int, int]]
    order: tuple[str, str]
    corner_near: int
    corner_far: int
    window: Window
    min_contrast: float


def _search_pairs(
    plan: PairPlan, excluded: tuple[LinePair, ...]
) -> tuple[dict[str, LinePair] | None, LinePair | None]:
    """Both pairs of a box's sides (see :func:`fit_box`), or None and the pair to blame.

    The first pair is searched over the span surely inside the box, the other over the first
    one's extent (never one of ``excluded``), then the first again over the other's extent
    (its first search saw only the middle part), with the other's sides to check its corners
    by.  When that last search fails, the other pair is blamed: its sides do not end where
    the first pair's do.
    """
    first, second = plan.order
    pairs: dict[str, LinePair] = {}
    for step, key in enumerate((first, second, first)):
        other = second if key == first else first
        span = plan.inner[key] if step == 0 else _extent(pairs[other])
        cross = None
        if other in pairs:
            cross = CornerCheck(plan.maps[other], pairs[other], plan.corner_near,
                                plan.corner_far,
                                _clearance(plan.expected[key], plan.others[key]),
                                plan.min_contrast)
        pair = _pair_search(plan.maps[key], span, plan.expected[key], plan.window,
                            plan.others[key], plan.min_contrast, cross,
                            excluded if step == 1 else ())
        if pair is None or pair.contrast < plan.min_contrast:
            return None, pairs[second] if step == 2 else None
        pairs[key] = pair
    return pairs, None


def _fit_sides(
    horizontal: SideMaps, vertical: SideMaps, pairs: tuple[LinePair, LinePair],
    lines: LineModel, expected: tuple[float, float, float, float], win: Window,
) -> np.ndarray | None:
    """The box's corners (4, 2) in region pixels from all four sides refined per segment.

    None if a side is not a whole, even, straight line, or the box is not its printed size
    (within the window's tolerance).
    """
    hpair, vpair = pairs
    lr = _fit_side_pair(vertical.first, _extent(hpair), vpair, lines)
    tb = _fit_side_pair(horizontal.first, _extent(vpair), hpair, lines)
    if lr is None or tb is None:
        return None
    corners = np.array([
        _intersect((lr[0], lr[2]), (tb[0], tb[2])),
        _intersect((lr[1], lr[2]), (tb[0], tb[2])),
        _intersect((lr[1], lr[2]), (tb[1], tb[2])),
        _intersect((lr[0], lr[2]), (tb[1], tb[2])),
    ])
    x0, y0, x1, y1 = expected
    width = float(np.mean([corners[1, 0] - corners[0, 0], corners[2, 0] - corners[3, 0]]))
    height = float(np.mean([corners[3, 1] - corners[0, 1], corners[2, 1] - corners[1, 1]]))
    tol = win.size_tol
    if abs(width / (x1 - x0) - 1) > tol or abs(height / (y1 - y0) - 1) > tol:
        return None
    return corners


def _fit_side_pair(
    ridge: np.ndarray, along: tuple[float, float], pair: LinePair, lines: LineModel
) -> tuple[float, float, float] | None:
    """Two parallel sides fitted to their per-segment positions (see :func:`_fit_pair`).

    Each segment's position is first taken as a sharp line's, around its strongest
    response.  Where the sides then do not look straight, they are measured again over the
    whole spread of a blurred line's response (:attr:`LineModel.spread_mm`): a shaken camera
    splits a line's response into two peaks, and segments of one straight side land on
    alternate peaks (development pages of the hard tier: borders clearly in view refused as
    bent).  Only then, because averaged that widely a side is also pulled towards
    handwriting beside it.
    """
    for centroid in dict.fromkeys((PEAK_CENTROID_MM, lines.spread_mm)):
        sides = _pair_points(ridge, along, pair, lines.min_contrast, centroid_mm=centroid)
        fitted = _fit_pair(sides[0], sides[1], lines.max_residual_mm)
        if fitted is not None:
            return fitted
    return None


def _found(
    box: BoxSpec, h_page: np.ndarray, to_photo: np.ndarray, corners: np.ndarray,
    contrast: float,
) -> BoxFit:
    corners_px = project(to_photo, corners)
    shift = project(np.linalg.inv(h_page), corners_px) - box_corners_mm(box.rect)
    return BoxFit(box, corners_px, _box_homography(box.rect, corners_px), True,
                  shift.mean(axis=0), contrast, corner_shifts_mm=shift, uncertainty_mm=0.0)


def _neighbour_lines(
    box: BoxSpec, boxes: tuple[BoxSpec, ...], margin: float
) -> dict[str, tuple[float, ...]]:
    """Region-pixel positions of other boxes' sides running alongside this box's sides.

    "h": rows of horizontal sides of boxes overlapping this one's columns; "v": columns of
    vertical sides of boxes overlapping its rows; only those within the search reach.
    """
    x, y, w, h = box.rect
    r = REFINE_PX_PER_MM
    reach = margin + SEARCH_MM
    rows: list[float] = []
    cols: list[float] = []
    for other in boxes:
        if other.box_id == box.box_id:
            continue
        ox, oy, ow, oh = other.rect
        if min(x + w, ox + ow) - max(x, ox) > 0.3 * min(w, ow):
            rows += [(v - y + margin) * r - 0.5 for v in (oy, oy + oh)
                     if -reach < v - y < h + reach]
        if min(y + h, oy + oh) - max(y, oy) > 0.3 * min(h, oh):
            cols += [(v - x + margin) * r - 0.5 for v in (ox, ox + ow)
                     if -reach < v - x < w + reach]
    return {"h": tuple(rows), "v": tuple(cols)}


def _clearance(expected: tuple[float, float], others: tuple[float, ...]) -> tuple[float, float]:
    """Pixels before the first and after the second side free of other printed sides."""
    lo, hi = expected
    before = [lo - o for o in others if o < lo - 1]
    after = [o - hi for o in others if o > hi + 1]
    return (min(before) if before else np.inf, min(after) if after else np.inf)


def _inner(lo: float, hi: float, search: int) -> tuple[int, int]:
    """Pixels sure to lie between two sides whatever the shift; at least 2 mm around the middle."""
    a, b = round(lo + search), round(hi - search)
    if b - a < 2 * REFINE_PX_PER_MM:
        mid = (lo + hi) / 2
        a, b = round(mid - REFINE_PX_PER_MM), round(mid + REFINE_PX_PER_MM)
    return a, b


def _extent(pair: LinePair) -> tuple[int, int]:
    """The span between a found pair of sides, less the corners (for the other pair's search)."""
    inset = CORNER_SKIP_MM * REFINE_PX_PER_MM
    return round(min(pair.first, pair.second) + inset), round(max(pair.first, pair.second) - inset)


def _placed(box: BoxSpec, h_page: np.ndarray, corr: Correction, note: str) -> BoxFit:
    """A box placed by a predicted correction of the global homography (as uncertain)."""
    corners_mm = box_corners_mm(box.rect)
    moved = corr.apply(corners_mm)
    corners_px = project(h_page, moved)
    shift = moved - corners_mm
    return BoxFit(box, corners_px, _box_homography(box.rect, corners_px), False,
                  shift.mean(axis=0), 0.0, note, corner_shifts_mm=shift,
                  uncertainty_mm=corr.uncertainty)


@dataclass
class Anchors:
    """Points where the correction to the global homography is known (page mm).

    ``points``: (N, 2) printed positions; ``shifts``: (N, 2) where they really are minus that,
    both in page mm; ``owner``: (N,) which box (index) or marker (-1 - id) each came from.
    """

    points: np.ndarray
    shifts: np.ndarray
    owner: np.ndarray

    @classmethod
    def empty(cls) -> Anchors:
        return cls(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, np.int64))

    def add(self, points: np.ndarray, shifts: np.ndarray, owner: int) -> None:
        self.points = np.vstack([self.points, points])
        self.shifts = np.vstack([self.shifts, shifts])
        self.owner = np.concatenate([self.owner, np.full(len(points), owner, np.int64)])

    def without(self, owner: int) -> Anchors:
        keep = self.owner != owner
        return Anchors(self.points[keep], self.shifts[keep], self.owner[keep])


def marker_anchors(fit: PageFit, layout: dict[int, Rect]) -> Anchors:
    """The markers' corners as anchors: their residual against the global homography."""
    inv = np.linalg.inv(fit.h)
    anchors = Anchors.empty()
    for marker_id, hit in fit.markers.items():
        printed = marker_corners_mm(layout[marker_id])
        anchors.add(printed, project(inv, hit.corners.astype(np.float64)) - printed,
                    -1 - marker_id)
    return anchors


def predict(centre: np.ndarray, anchors: Anchors) -> Correction | None:
    """The correction expected around ``centre`` from the nearest anchors.

    A weighted plane (offset and 2x2 gradient) through the nearest ``PREDICT_NEIGHBOURS``
    anchor points within ``NEIGHBOUR_RADIUS_MM``: a bent sheet's correction changes smoothly,
    so nearby boxes also tell how the page turns and stretches here.  The gradient is shrunk
    towards zero (ridge regression) so that a few close anchors cannot extrapolate a large
    turn or stretch.  None without any anchor in reach.
    """
    if not len(anchors.points):
        return None
    # Called for every box, twice: written out rather than through np.linalg.norm and
    # np.column_stack, whose overhead costs more than the arithmetic here.
    to_anchors = anchors.points - centre
    dist = np.sqrt((to_anchors * to_anchors).sum(axis=1))
    order = np.argsort(dist)[:PREDICT_NEIGHBOURS]
    order = order[dist[order] <= NEIGHBOUR_RADIUS_MM]
    if not len(order):
        return None
    d, rel, shifts = dist[order], to_anchors[order], anchors.shifts[order]
    weights = 1.0 / np.maximum(d, 5.0) ** 2
    wsum = float(weights.sum())
    root_weights = np.sqrt(weights)[:, None]
    design = np.empty((len(d), 3))
    design[:, :1] = root_weights
    design[:, 1:] = rel * root_weights
    sol = np.linalg.solve(design.T @ design + _GRADIENT_PENALTY * wsum,
                          design.T @ (shifts * root_weights))
    offset, jac = sol[0], sol[1:].T
    misfit = shifts - (offset + rel @ jac.T)
    resid = np.sqrt((misfit * misfit).sum(axis=1))
    disagreement = float(np.sqrt((weights * resid**2).sum() / wsum))
    # Calibrated on simulated pages (leave one box out): the plane's error is about twice the
    # anchors' disagreement with it, and grows with the distance to the nearest anchor.
    uncertainty = float(np.hypot(2.0 * disagreement, EXTRAPOLATION_ERROR * float(d.min())))
    return Correction(centre, offset, jac, uncertainty)


# Ridge strength of the gradient, as a length: anchors spread less than this apart only
# partly determine how the correction turns or stretches.
GRADIENT_PRIOR_MM = 10.0
_GRADIENT_PENALTY = np.diag([0.0, 1.0, 1.0]) * GRADIENT_PRIOR_MM**2  # per unit of weight
EXTRAPOLATION_ERROR = 0.005  # mm of possible error per mm from the nearest anchor


def refine_boxes(
    gray: np.ndarray, fit: PageFit, boxes: tuple[BoxSpec, ...], layout: dict[int, Rect],
    lines: LineModel,
) -> list[BoxFit]:
    """Every box's own mapping, in the order of ``boxes``.

    Boxes are visited nearest-first from what is already placed (markers, then found boxes),
    each searched around the correction its placed neighbours predict.  A found box that
    disagrees with neighbours that agree among themselves is not trusted.  A box not found takes
    its neighbours' prediction if that is certain within ``MAX_FALLBACK_UNCERTAINTY_MM``;
    otherwise it keeps the prediction with ``trusted`` False, and the caller must not use it
    (see :func:`untrusted`).
    """
    markers = marker_anchors(fit, layout)
    anchors = Anchors(markers.points.copy(), markers.shifts.copy(), markers.owner.copy())
    fits: dict[int, BoxFit] = {}
    pending = list(range(len(boxes)))
    for sweep in range(2):
        missed: list[int] = []
        while pending:
            index = _nearest_pending(pending, boxes, anchors.points)
            pending.remove(index)
            result = _search_box(gray, fit.h, boxes[index], lines, anchors, boxes)
            fits[index] = result
            if result.found:
                anchors.add(box_corners_mm(boxes[index].rect), result.corner_shifts_mm, index)
            else:
                missed.append(index)
        # A second sweep retries misses with the anchors found after them.
        pending = missed if sweep == 0 else []
    ordered = [fits[i] for i in range(len(boxes))]
    if sum(f.found for f in ordered) < MIN_FOUND_SHARE * len(boxes):
        for f in ordered:
            f.trusted = f.found
        return _measure_found_distance(ordered)  # too little found to judge or place the rest
    scene = Scene(gray, fit.h, lines, boxes)
    _demote_outliers(ordered, anchors, scene)
    _search_rows(ordered, scene)
    for i, f in enumerate(ordered):
        if not f.found:
            anchors = anchors.without(i)
    for i, f in enumerate(ordered):
        if not f.found and f.trusted:
            ordered[i] = _from_neighbours(f, fit.h, anchors)
            if not ordered[i].trusted:
                ordered[i] = _from_row(i, ordered, fit.h)
    return _measure_found_distance(ordered)


def found_distance_mm(box: BoxSpec, fits: list[BoxFit]) -> float:
    """Distance (page mm) from ``box``'s centre to the nearest centre or corner of a found
    box among ``fits`` other than itself; infinite if none was found."""
    points = [np.vstack([box_corners_mm(f.box.rect), f.box.centre]) for f in fits
              if f.found and f.box.box_id != box.box_id]
    if not points:
        return float("inf")
    return float(np.linalg.norm(np.vstack(points) - np.array(box.centre), axis=1).min())


def _measure_found_distance(fits: list[BoxFit]) -> list[BoxFit]:
    """Record on each box its :func:`found_distance_mm` (0 for a found box); returns ``fits``."""
    for f in fits:
        f.found_distance_mm = 0.0 if f.found else found_distance_mm(f.box, fits)
    return fits


# --- review views of unplaced boxes ---------------------------------------------------------

# A box left unplaced is shown to a person in a view this much wider than the box on every
# side, around its estimated place (see grader.extract.review_view) ...
REVIEW_VIEW_MARGIN_MM = 8.0
# ... or wider: this many times the uncertainty of that estimate (placement_uncertainty_mm).
# The neighbours' prediction measures how well they agree; it cannot see a group of boxes
# lying together beyond the border search (under a fold) and predicted from far away, where
# real errors reached ten times it.  Those groups are far from every found box, so the
# estimate is also taken to be off by at least a tenth of the distance from the box to the
# nearest found one.  Calibrated on 900 development pages of the hard tier
# (bench/align_failures.py --pages 900 --unplaced): of 99 unplaced boxes on pages with at
# least half their boxes found, those within 28 mm of a found box (the layout's spacing;
# 8.8-27.6 mm) needed at most 8.9 mm, 3.8 times that uncertainty; groups farther off were
# all 55 mm or more away and needed up to 19 mm, beyond any readable view.  5x holds every
# box near found ones and refuses every page with a box over 40 mm from them.  Boxes on
# the pages used needed at most 4.3 mm.
REVIEW_MARGIN_PER_UNCERTAINTY = 5.0
UNCERTAINTY_PER_FOUND_DISTANCE = 0.1  # mm per mm from the nearest found box
# ... but never wider than this: around a 32 x 12 mm box a 20 mm margin shows a 72 x 52 mm
# patch of the page, in which a person can still find the box and read it.  A box that
# would need more (an uncertainty over 4 mm) refuses the page.
MAX_REVIEW_VIEW_MARGIN_MM = 20.0


def placement_uncertainty_mm(fit: BoxFit) -> float:
    """How far (mm) an unplaced box's estimated place may be off: its prediction's
    uncertainty, or more the farther the box is from any found box."""
    return max(fit.uncertainty_mm, UNCERTAINTY_PER_FOUND_DISTANCE * fit.found_distance_mm)


def review_margin_mm(fit: BoxFit) -> float:
    """Margin (mm) of the view that surely holds an unplaced box, from its uncertainty.

    A refused border's view is centred on the border and must also reach where the
    neighbours put the box, ``disputed_mm`` away, give or take their uncertainty.
    """
    reach = fit.disputed_mm + REVIEW_MARGIN_PER_UNCERTAINTY * placement_uncertainty_mm(fit)
    return max(REVIEW_VIEW_MARGIN_MM, reach)


def untrusted(
    fits: list[BoxFit], source: str, max_unplaced: int = 0
) -> AlignmentUncertain | None:
    """The error to raise if the page cannot be used, else None.

    A page is refused when fewer than ``MIN_FOUND_SHARE`` of its boxes were found, when
    more than ``max_unplaced`` boxes (and at most a quarter of them) could not be placed
    safely, or when one that could not is so uncertain that no readable view surely shows it
    (:func:`review_margin_mm` beyond ``MAX_REVIEW_VIEW_MARGIN_MM``).  Otherwise the caller
    must still not crop the unplaced boxes for reading (see :func:`unplaced`).
    """
    found = sum(f.found for f in fits)
    if fits and found < MIN_FOUND_SHARE * len(fits):
        return AlignmentUncertain(
            f"{source}: only {found} of {len(fits)} answer boxes could be located; "
            "flatten the sheet and photograph it again from straight above, in even light"
        )
    lost = unplaced(fits)
    allowed = min(max_unplaced, len(fits) // 4)
    if len(lost) > allowed:
        return AlignmentUncertain(
            f"{source}: box {lost[0].box.box_id} cannot be placed safely ({lost[0].note}; the "
            "sheet is too bent around it); flatten the sheet, keep it uncovered, and "
            "photograph it again"
        )
    unseen = [f for f in lost if review_margin_mm(f) > MAX_REVIEW_VIEW_MARGIN_MM]
    if unseen:
        return AlignmentUncertain(
            f"{source}: box {unseen[0].box.box_id} cannot be placed safely "
            f"({unseen[0].note}), and its estimated place could be more than "
            f"{MAX_REVIEW_VIEW_MARGIN_MM:.0f} mm off, too far to show it for review; flatten "
            "the sheet, keep it uncovered, and photograph it again from straight above"
        )
    return None


def unplaced(fits: list[BoxFit]) -> list[BoxFit]:
    """The boxes that could be neither found nor placed safely from their neighbours."""
    return [f for f in fits if not f.trusted]


def _search_box(
    gray: np.ndarray, h_page: np.ndarray, box: BoxSpec, lines: LineModel, anchors: Anchors,
    boxes: tuple[BoxSpec, ...],
) -> BoxFit:
    """Fit a box in a window sized by how well it is predicted, then, if missed, the widest;
    then in the first again with a shaken camera's copies of each line merged."""
    guess = predict(np.array(box.centre), anchors)
    window = Window.widest() if guess is None else Window.for_uncertainty(guess.uncertainty)
    windows = (window,) if window == Window.widest() else (window, Window.widest())
    for win in windows:
        fit = fit_box(gray, h_page, box, lines, guess, boxes, win)
        if fit.found:
            return fit
    # A shaken camera draws each line twice, up to a millimetre apart: a pair of sides on
    # one copy each fails its corners, where the crossing sides run on to the other copy.
    # Only a box missed otherwise is searched with the copies merged, and only where it is
    # predicted: merging also smears a hard shadow's edge or a digit's stroke into a line,
    # which the widest window leaves room to take for a side.
    if guess is not None and lines.spread_mm > PEAK_CENTROID_MM:
        merged = fit_box(gray, h_page, box, lines, guess, boxes, window, merge_copies=True)
        if merged.found:
            return merged
    return fit


def _nearest_pending(pending: list[int], boxes: tuple[BoxSpec, ...], points: np.ndarray) -> int:
    centres = np.array([boxes[i].centre for i in pending])
    apart = centres[:, None, :] - points[None, :, :]
    dist = np.sqrt((apart * apart).sum(axis=2)).min(axis=1)  # np.linalg.norm's, cheaper
    return pending[int(np.argmin(dist))]


@dataclass(frozen=True)
class Scene:
    """What a second look at a box needs: the photo (H, W) uint8, the global homography
    (3x3, page mm -> photo px), the line model and every box of the page."""

    gray: np.ndarray
    h_page: np.ndarray
    lines: LineModel
    boxes: tuple[BoxSpec, ...]


def _demote_outliers(fits: list[BoxFit], anchors: Anchors, scene: Scene | None = None) -> None:
    """Refuse a found box whose correction jumps away from consistent neighbours.

    A border locked onto the wrong lines would be millimetres off; a bent sheet's correction
    changes smoothly from box to box.  Such a box is marked neither found nor trusted: the
    neighbours' prediction is no safer than its border (across a fold they disagree with a
    correct border), so the page must be refused rather than the box placed either way.

    Unless the neighbours are the ones that are wrong (a fold between them and the box):
    where they show a bend, a border as clear as the page's other boxes is kept, and a
    fainter one if no border at all is found where they put the box (the printed border is
    always there; see :func:`_beyond_a_fold`).
    """
    contrasts = [f.contrast for f in fits if f.found and f.contrast < 1.0]
    typical = float(np.median(contrasts)) if contrasts else np.inf
    for i, f in enumerate(fits):
        if not f.found:
            continue
        guess = predict(np.array(f.box.centre), anchors.without(i))
        if guess is None or guess.uncertainty > MAX_JUDGE_UNCERTAINTY_MM:
            continue
        off = float(np.linalg.norm(f.shift_mm - guess.offset))
        if off <= MAX_DISAGREEMENT_MM + guess.uncertainty:
            continue
        note = f"its border is {off:.1f} mm from where its neighbours place it"
        if scene is not None and _beyond_a_fold(f, guess, off, typical, scene):
            f.note = f"{note}: kept (a fold between)"
            continue
        f.found = False
        f.trusted = False
        f.note = note
        # It stays where its border is; the box may as well be where the neighbours put it.
        f.uncertainty_mm = guess.uncertainty
        f.disputed_mm = off


# A border this far (mm) from its neighbours' placement may still be a fold's far side...
FOLD_MAX_MM = 2.5
# ... if the neighbours disagree enough among themselves to show a bend (a flat sheet's
# neighbours predict a box to a tenth of a mm, and a border 1 mm off there is refused).
FOLD_MIN_UNCERTAINTY_MM = 0.3
# ... if its weaker side is at least this share of the page's typical box contrast, and a
# second look finds no other border where the neighbours put the box.
FOLD_CONTRAST_SHARE = 0.6
FOLD_CLEAR_MM = 0.6  # the second look stops this short of the border already found
# A border as clear as the page's other boxes (this share of their typical contrast) is kept
# up to FOLD_FAR_MM from its neighbours' placement whatever the second look finds there: on a
# folded sheet that look fits the crease, or the border itself pulled towards the
# placement, about as often as a real second border (see design_notes.md, "Aligning").
FOLD_CLEAR_BORDER_SHARE = 0.85
FOLD_FAR_MM = 3.5


def _beyond_a_fold(
    f: BoxFit, guess: Correction, off: float, typical: float, scene: Scene
) -> bool:
    """True if box ``f``'s border, ``off`` mm from where its neighbours put it, is to be kept:
    they are across a fold or curl from it.  Only a border found by the full search (the
    fast path records no contrast), where the neighbours disagree enough to show a bend."""
    if f.contrast >= 1.0 or guess.uncertainty < FOLD_MIN_UNCERTAINTY_MM:
        return False
    if off <= FOLD_FAR_MM and f.contrast >= FOLD_CLEAR_BORDER_SHARE * typical:
        return True
    return off <= FOLD_MAX_MM and f.contrast >= FOLD_CONTRAST_SHARE * typical and \
        _nothing_where_predicted(f, guess, off, scene)


def _nothing_where_predicted(f: BoxFit, guess: Correction, off: float, scene: Scene) -> bool:
    """True if no border of the box is found around the neighbours' placement.

    Searched as for any box (and again for a blurrier border), in a window around the
    prediction that stops short of the border already found.  The sides' final refinement
    may still reach that border and find it again; that is not a second border.
    """
    wide = Window.for_uncertainty(guess.uncertainty)
    shift = float(np.clip(off - FOLD_CLEAR_MM, 0.6, wide.shift_mm))
    window = Window(shift, wide.turn_deg, wide.size_tol)
    blurred = LineModel.for_blur(scene.lines.edge_mm * LOCAL_BLUR_FACTOR)
    for lines in (scene.lines, blurred):
        other = fit_box(scene.gray, scene.h_page, f.box, lines, guess, scene.boxes, window)
        if other.found and _moved_mm(other, f) > SECOND_BORDER_SHARE * off:
            return False
    return True


# A second border is one found at least this share of the way from the first border to the
# neighbours' placement; one nearer is the first border fitted again, a little pulled.
SECOND_BORDER_SHARE = 0.5


def _moved_mm(a: BoxFit, b: BoxFit) -> float:
    """Mean distance (page mm) between the corners of two fits of one box."""
    return float(np.linalg.norm(a.corner_shifts_mm - b.corner_shifts_mm, axis=1).mean())


def _from_neighbours(f: BoxFit, h_page: np.ndarray, anchors: Anchors) -> BoxFit:
    """Box ``f`` (not found) placed from its neighbours, or left where its search put it,
    untrusted, with that placement's uncertainty."""
    guess = predict(np.array(f.box.centre), anchors)
    if guess is None or guess.uncertainty > MAX_FALLBACK_UNCERTAINTY_MM:
        f.trusted = False
        return f
    return _placed(f.box, h_page, guess, f"{f.note}; placed from neighbours")


# A box lost in a row of equal boxes (student-number digits) is placed between the row's
# found boxes on either side when they are at most ROW_SPAN_MM apart and the row bends evenly
# there: each of those two boxes that has found boxes on both sides (within
# ROW_CHECK_SPAN_MM) is where they put it within ROW_AGREE_MM, and at least ROW_CHECKS do.
# Only the two neighbours are checked: a digit found 0.8 mm off at the far end of the row
# says nothing about the span the lost box is placed in.  Calibrated on development pages
# (hard tier, seeds 7 100 000 + 0-1999, every found digit between found ones taken as lost in
# turn): 618 placements, none more than 0.5 mm off (p99 0.39 mm); checking every box of the
# row, as before, placed 588 (none more than 0.42 mm off).
# The spans reach two and three digits' pitch: 14 mm since student-number digits are printed
# 4 mm apart (on sheets printed before with digits 1.5 mm apart, ROW_SPAN_MM reaches two too).
ROW_SPAN_MM = 29.0
ROW_CHECK_SPAN_MM = 48.0
ROW_AGREE_MM = 0.4
ROW_CHECKS = 1
ROW_PLACED_MM = 0.5  # the uncertainty recorded for a box placed by its row


def _row_between(
    i: int, fits: list[BoxFit], max_span: float
) -> tuple[int, int, float] | None:
    """The found boxes of box ``i``'s row nearest on its left and right, and how far along
    from the left one to the right one it lies (0..1); None unless both are within
    ``max_span`` mm of each other.  A row: boxes of the same top and height."""
    left, right = _row_sides(i, fits)
    if not left or not right:
        return None
    cx = fits[i].box.centre[0]
    a = max(left, key=lambda j: fits[j].box.centre[0])
    b = min(right, key=lambda j: fits[j].box.centre[0])
    xa, xb = fits[a].box.centre[0], fits[b].box.centre[0]
    if xb - xa > max_span:
        return None
    return a, b, (cx - xa) / (xb - xa)


def _row_beyond(
    i: int, fits: list[BoxFit], max_span: float
) -> tuple[int, int, float] | None:
    """For box ``i`` at an end of its row's found boxes: the two found boxes nearest to it
    (``a`` the nearer) and where it lies on the line from ``a`` to ``b`` (negative: beyond
    ``a``); None unless all three lie within ``max_span`` mm."""
    left, right = _row_sides(i, fits)
    if left and right:
        return None
    cx = fits[i].box.centre[0]
    side = sorted(left or right, key=lambda j: abs(fits[j].box.centre[0] - cx))
    if len(side) < 2:
        return None
    a, b = side[0], side[1]
    xa, xb = fits[a].box.centre[0], fits[b].box.centre[0]
    if abs(xb - cx) > max_span:
        return None
    return a, b, (cx - xa) / (xb - xa)


# A lost box in a row of equal boxes is searched for again where its row's found boxes put
# it (between its neighbours, or beyond the two nearest at an end of the row), in a window
# this certain (mm): narrow enough that a neighbour's side 1.5 mm away (older sheets) stays
# outside it.
# Calibrated on development pages (hard tier, seeds 7 100 000 + 0-819), every found digit
# taken as lost in turn: found again 275 of 283 between neighbours (p99 0.52 mm off, worst
# 0.86 mm, a digit found 0.78 mm off at first too) and 128 of 145 at an end of the row (p99
# 0.47, worst 0.51); of 12 digits really lost there, 7 were found, none more than 0.61 mm off.
ROW_SEARCH_MM = 0.3
ROW_NEXT_MM = 14.5  # a row's next box: student-number digits stand 14 mm apart


def _search_rows(fits: list[BoxFit], scene: Scene) -> None:
    """Search every lost box of a row again where its row puts it, until no more is found:
    a digit found next to a found one lets the row's next lost digit be searched for too.
    First, a found box far from where its row puts it is taken as lost (see
    :func:`_refuse_off_their_row`); last, a row that gained a box is checked for lying one
    box off (see :func:`_refuse_row_one_box_off`)."""
    _refuse_off_their_row(fits)
    lost = {i for i, f in enumerate(fits) if not f.found and f.trusted}
    gained: set[int] = set()
    retry = sorted(lost)
    while retry:
        found_now = set()
        for i in retry:
            fits[i] = _search_where_row_puts(i, fits, scene)
            if fits[i].found:
                found_now.add(i)
        gained |= found_now
        lost -= found_now
        # Only a box whose row gained one is placed differently the next time.
        rows = [set(_row_of(i, fits)) for i in found_now]
        retry = sorted(i for i in lost if any(i in row for row in rows))
    for row in {tuple(_row_of(i, fits)) for i in gained}:
        _refuse_row_one_box_off(list(row), fits, scene)


# A found box further than this (mm) from where its row's found boxes put it is searched
# for again: rows of equal boxes move smoothly along a sheet, even a curled one.  Measured on
# development pages (hard tier, seeds 7 100 000 + 0-3999, the student-number rows of 388
# pages): of 2 198 found digits within 0.7 mm of their box, 2 lie 2.5-2.8 mm from their
# row's placement on pages that were aligned, and one 4.5 mm where its neighbour was the
# box found wrong (a page refused); the one digit placed more than 1.5 mm off on an aligned
# page (5.5 mm: its border's top side taken from the text below) lies 4.3 mm from it.
ROW_OFF_MM = 3.0
# Between found neighbours, the check reaches those this far (mm) apart, three digits'
# pitch: a wrong digit's nearest found neighbours are often two digits away on one side when
# the digit between them is lost too (development pages, 2026-12-06: a digit found 5.2 mm off
# passed unchecked with neighbours 34.5 mm apart, and the search placed the digit between
# them from it).  Beyond an end, where the row is extrapolated, only from the two nearest
# within ROW_SPAN_MM: extrapolated from digits 28 and 42 mm away, a rightly found end digit
# was put more than 3 mm off, refused, and searched for 1.34 mm off (development page 554
# of seed 7 300 000); a sheet curls most at its edge.
ROW_OFF_SPAN_MM = 43.0


def _refuse_off_their_row(fits: list[BoxFit]) -> None:
    """Mark lost every found box of a row that stands more than ``ROW_OFF_MM`` from where
    its row's found boxes put it (between its nearest found neighbours, or beyond the two
    nearest at an end), so that it is searched for again there.  One at a time, the rest
    judged again without it, as a wrong box also moves where its row puts its neighbours:
    first the furthest of those judged between neighbours, then of those judged beyond the
    two nearest (a wrong box beside an end moves that end's placement twice as far as its
    own, so the end would go first and the wrong box stay)."""
    while True:
        off = []  # (judged beyond an end, -distance, box): the order in which to refuse
        for i, f in enumerate(fits):
            placement = (_row_placement(i, fits, ROW_OFF_SPAN_MM, ROW_SPAN_MM) if f.found
                         else None)
            if placement is None:
                continue
            shifts, beyond = placement
            moved = float(np.linalg.norm(f.shift_mm - shifts.mean(axis=0)))
            if moved > ROW_OFF_MM:
                off.append((beyond, -moved, i))
        if not off:
            return
        _, moved, worst = min(off)
        fits[worst] = replace(fits[worst], found=False, trusted=True,
                              note=f"its border is {-moved:.1f} mm from where its row puts it")


def _row_placement(
    i: int, fits: list[BoxFit], between_mm: float, beyond_mm: float
) -> tuple[np.ndarray, bool] | None:
    """The corner shifts (4, 2) page mm that box ``i``'s row's found boxes give it: between
    its nearest found neighbours (at most ``between_mm`` apart), or beyond the two nearest at
    an end of the row (within ``beyond_mm`` of it), and whether it is the latter; None where
    neither applies."""
    between = _row_between(i, fits, between_mm)
    placement = between or _row_beyond(i, fits, beyond_mm)
    if placement is None:
        return None
    return _shifts_between(fits, *placement), between is None


def _row_puts(i: int, fits: list[BoxFit]) -> np.ndarray | None:
    """Where box ``i``'s row puts it (see :func:`_row_placement`) within ``ROW_SPAN_MM``."""
    placement = _row_placement(i, fits, ROW_SPAN_MM, ROW_SPAN_MM)
    return None if placement is None else placement[0]


def _shifts_between(fits: list[BoxFit], a: int, b: int, t: float) -> np.ndarray:
    """Corner shifts (4, 2) a share ``t`` of the way from box ``a``'s to box ``b``'s."""
    return (1 - t) * fits[a].corner_shifts_mm + t * fits[b].corner_shifts_mm


def _row_of(i: int, fits: list[BoxFit]) -> list[int]:
    """Box ``i``'s row (boxes of the same top and height, itself included), left to right."""
    _, y, _, h = fits[i].box.rect
    row = [j for j, g in enumerate(fits)
           if abs(g.box.rect[1] - y) < 0.5 and abs(g.box.rect[3] - h) < 0.5]
    return sorted(row, key=lambda j: fits[j].box.centre[0])


def _refuse_row_one_box_off(row: list[int], fits: list[BoxFit], scene: Scene) -> None:
    """Refuse every box of ``row`` if a printed box of the same size stands one step beyond
    an end of it, where the row's end box puts the next one.

    A row of equal boxes looks the same shifted by one box: a border search that locked
    onto a neighbour lets the rest of the row be found one box along, each box agreeing
    with the others.  The printed row has nothing beyond its ends, so a border there means
    the found row is not where it is printed.  Looked for beyond an end whose own box, or
    the box next to it, was found (moved as that box is).
    """
    found = [j for j in row if fits[j].found]
    if len(row) < 3 or len(found) < 2:
        return
    pitch = fits[row[1]].box.centre[0] - fits[row[0]].box.centre[0]
    for end, outer, step in ((row[0], found[0], -pitch), (row[-1], found[-1], pitch)):
        if abs(fits[outer].box.centre[0] - fits[end].box.centre[0]) > ROW_NEXT_MM:
            continue  # too far from the end to tell where the next box would be
        x, y, w, h = fits[end].box.rect
        beyond = BoxSpec(f"{fits[end].box.box_id}.beyond", (x + step, y, w, h))
        guess = _correction_from_corners(beyond, fits[outer].corner_shifts_mm)
        if fit_box(scene.gray, scene.h_page, beyond, scene.lines, guess, scene.boxes,
                   Window.for_uncertainty(ROW_SEARCH_MM)).found:
            for j in row:
                fits[j] = replace(
                    fits[j], found=False, trusted=False,
                    note="its row of boxes was found one box along from where it is printed")
            return


def _row_shifts(i: int, fits: list[BoxFit]) -> tuple[np.ndarray, bool] | None:
    """Where box ``i``'s row puts its corners (shifts, (4, 2) page mm), and whether a box
    found there must be checked against it: between its found neighbours or beyond the two
    nearest at an end of the row (not checked: calibrated without), else fitted along the
    row's found boxes when one stands right next to it (at most ``ROW_NEXT_MM`` away);
    None without any of them."""
    near = _row_puts(i, fits)
    if near is not None:
        return near, False
    left, right = _row_sides(i, fits)
    cx = fits[i].box.centre[0]
    found = left + right
    if not any(abs(fits[j].box.centre[0] - cx) <= ROW_NEXT_MM for j in found):
        return None
    # On a curled sheet the box next to a found one can be moved a millimetre more than it.
    # Between found boxes, a parabola through the row's found boxes follows the bend; beyond
    # them, the straight line through the two nearest (a parabola is not trusted past its
    # points).
    if not left or not right:
        found = sorted(found, key=lambda j: abs(fits[j].box.centre[0] - cx))[:2]
    xs = np.array([fits[j].box.centre[0] - cx for j in found])
    shifts = np.array([fits[j].corner_shifts_mm for j in found]).reshape(len(found), -1)
    design = np.vander(xs, min(len(found) - 1, 2) + 1, increasing=True)
    sol, *_ = np.linalg.lstsq(design, shifts, rcond=None)
    return np.asarray(sol[0]).reshape(4, 2), True


def _search_where_row_puts(i: int, fits: list[BoxFit], scene: Scene) -> BoxFit:
    """Box ``i`` (lost) found by its border where its row puts it, or returned unchanged."""
    f = fits[i]
    placement = _row_shifts(i, fits)
    if placement is None:
        return f
    shifts, checked = placement
    again = fit_box(scene.gray, scene.h_page, f.box, scene.lines,
                    _correction_from_corners(f.box, shifts), scene.boxes,
                    Window.for_uncertainty(ROW_SEARCH_MM))
    if not again.found:
        return f
    # Fitted along a row, the window can still reach a line near its edge: the box found
    # must stand where the row puts it.
    moved = float(np.linalg.norm(again.shift_mm - shifts.mean(axis=0)))
    if checked and moved > MAX_DISAGREEMENT_MM:
        return f
    again.note = "found where its row puts it"
    return again


def _correction_from_corners(box: BoxSpec, shifts: np.ndarray) -> Correction:
    """The affine correction (least squares) moving ``box``'s corners by ``shifts`` (4, 2)."""
    centre = np.array(box.centre)
    design = np.column_stack([np.ones(4), box_corners_mm(box.rect) - centre])
    sol, *_ = np.linalg.lstsq(design, shifts, rcond=None)
    return Correction(centre, sol[0], sol[1:].T, ROW_SEARCH_MM)


def _row_sides(i: int, fits: list[BoxFit]) -> tuple[list[int], list[int]]:
    """The found boxes of box ``i``'s row (boxes of the same top and height) on its left and
    on its right."""
    cx = fits[i].box.centre[0]
    row = [j for j in _row_of(i, fits) if j != i and fits[j].found]
    return ([j for j in row if fits[j].box.centre[0] < cx],
            [j for j in row if fits[j].box.centre[0] > cx])


def _from_row(i: int, fits: list[BoxFit], h_page: np.ndarray) -> BoxFit:
    """Box ``i`` (not found) placed by its row, or returned unchanged (untrusted)."""
    f = fits[i]
    between = _row_between(i, fits, ROW_SPAN_MM)
    if between is None:
        return f
    a, b, t = between
    checks = 0
    for j in (a, b):
        around = _row_between(j, fits, ROW_CHECK_SPAN_MM)
        if around is None:
            continue
        c, d, u = around
        guess = (1 - u) * fits[c].shift_mm + u * fits[d].shift_mm
        if float(np.linalg.norm(guess - fits[j].shift_mm)) > ROW_AGREE_MM:
            return f  # the row bends unevenly here (a fold across it): no safe interpolation
        checks += 1
    if checks < ROW_CHECKS:
        return f
    shift = _shifts_between(fits, a, b, t)
    corners_mm = box_corners_mm(f.box.rect)
    corners_px = project(h_page, corners_mm + shift)
    return BoxFit(f.box, corners_px, _box_homography(f.box.rect, corners_px), False,
                  shift.mean(axis=0), 0.0, f"{f.note}; placed between its row's neighbours",
                  corner_shifts_mm=shift, uncertainty_mm=ROW_PLACED_MM)
