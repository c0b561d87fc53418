"""Find the page in a photo: its fiducial markers and its QR identity.

Frames: *photo pixels* are OpenCV index coordinates of the full-resolution image (x right,
y down, the centre of pixel (i, j) at (j, i)); *page mm* are millimetres from the printed page's
top-left corner.  A homography ``H`` (3x3 float64) always maps page mm to photo pixels.

Why markers are searched on a downscaled copy: ArUco's adaptive thresholding and contour
search cost grows with the pixel count, while a 10 mm marker is still 30-50 px wide on a
copy of about 1400 px; its corners are then refined on the full-resolution image, so the
accuracy of the full image is kept at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from worksheets.marks import aruco_dictionary

Rect = tuple[float, float, float, float]  # x, y, w, h in page mm

MARKER_IDS = tuple(range(8))
# Long side of the working copy for marker search.  Large enough that a page filling a
# third of a 12 MP frame still has markers of ~15 px; small enough to be a few ms.
WORK_LONG_SIDE = 1300
# A second, finer pass is tried only when the first finds fewer than RETRY_BELOW markers.
RETRY_LONG_SIDE = 2600
RETRY_BELOW = 6
QR_PX_PER_MM = 8.0
QR_MARGIN_MM = 4.0


@dataclass(frozen=True)
class MarkerHit:
    """One detected fiducial.

    ``corners``: (4, 2) float32 photo pixels of the marker's outer corners in the order of the
    printed marker (its top-left, top-right, bottom-right, bottom-left), whatever the photo's
    rotation.  ``side_px``: mean side length in photo pixels.
    """

    marker_id: int
    corners: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        return np.asarray(self.corners.mean(axis=0), dtype=np.float64)

    @property
    def side_px(self) -> float:
        c = self.corners.astype(np.float64)
        return float(np.mean(np.linalg.norm(c - np.roll(c, 1, axis=0), axis=1)))


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grayscale from a (H, W, 3) BGR, (H, W, 4) BGRA or (H, W) uint8 image."""
    if image.ndim == 2:
        return image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def working_copy(
    gray: np.ndarray, long_side: int = WORK_LONG_SIDE
) -> tuple[np.ndarray, float, float]:
    """A copy at most about ``long_side`` long, and (a, b) with ``full = a * small + b``.

    Halved with ``cv2.pyrDown`` (a 5x5 Gaussian then every other pixel: a few ms for 12 MP,
    where an arbitrary-factor area resize costs several times more) while the result stays
    above 0.7 ``long_side``; a copy that is still too long is then resized the rest of the way.
    Coordinates are index coordinates (pixel centres at integers) in both images.
    """
    small = gray
    a, b = 1.0, 0.0
    while max(small.shape) / 2 >= 0.7 * long_side:
        small = cv2.pyrDown(small)
        a *= 2.0  # pyrDown keeps the even pixels: small i sits on full 2i
    h, w = small.shape
    if max(h, w) > long_side * 1.05:
        factor = long_side / max(h, w)
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
        f = size[0] / w
        # Area resize: new i covers old [(i)/f, (i+1)/f), centre (i + 0.5)/f - 0.5.
        b += a * (0.5 / f - 0.5)
        a /= f
    return small, a, b


def _detector(thorough: bool) -> cv2.aruco.ArucoDetector:
    params = cv2.aruco.DetectorParameters()
    # Corners are refined on the full image afterwards, so none here.
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_NONE
    # Read each cell from its centre, finely sampled: a blurred or steeply seen marker's cell
    # edges are grey.
    params.perspectiveRemovePixelPerCell = 8
    params.perspectiveRemoveIgnoredMarginPerCell = 0.3
    if thorough:
        # Accept more bit errors on the second pass; a false id is still caught by its place
        # on the page (see grader.align.fit_page).
        params.errorCorrectionRate = 1.0
    else:
        # Two threshold windows instead of three: markers on the working copy are 20-60 px,
        # and each window costs a full contour search.
        params.adaptiveThreshWinSizeMin = 5
        params.adaptiveThreshWinSizeMax = 15
        params.adaptiveThreshWinSizeStep = 10
    return cv2.aruco.ArucoDetector(aruco_dictionary(), params)


_DETECTOR = _detector(thorough=False)
_THOROUGH = _detector(thorough=True)


def _raw_markers(small: np.ndarray, thorough: bool = False) -> list[tuple[int, np.ndarray]]:
    corners, ids, _rejected = (_THOROUGH if thorough else _DETECTOR).detectMarkers(small)
    if ids is None:
        return []
    found: list[tuple[int, np.ndarray]] = []
    for marker_id, quad in zip(ids.ravel().tolist(), corners, strict=True):
        if marker_id in MARKER_IDS:
            found.append((int(marker_id), np.asarray(quad, np.float32).reshape(4, 2)))
    return found


def refine_corners(gray: np.ndarray, corners: np.ndarray, side_px: float) -> np.ndarray:
    """Sub-pixel marker corners on the full image; (4, 2) float32 in, (4, 2) float32 out.

    The window stays within the marker's one-cell black border so that only the two outer
    edges meeting at the corner pull on it.
    """
    half = int(np.clip(side_px / 6.0 * 0.45, 2, 12))
    h, w = gray.shape
    pts = corners.reshape(-1, 1, 2).astype(np.float32).copy()
    inside = (pts[:, 0, 0] > half + 1) & (pts[:, 0, 0] < w - half - 2) & \
             (pts[:, 0, 1] > half + 1) & (pts[:, 0, 1] < h - half - 2)
    if not inside.all():
        return corners
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.02)
    refined = cv2.cornerSubPix(gray, pts, (half, half), (-1, -1), criteria)
    out = refined.reshape(4, 2)
    # A corner that wandered more than a third of a cell is a bad refinement; keep the coarse.
    moved = np.linalg.norm(out - corners, axis=1) > max(1.5, side_px / 18.0)
    out[moved] = corners[moved]
    return out


def detect_markers(gray: np.ndarray) -> list[MarkerHit]:
    """All page markers (ids 0..7) in a (H, W) uint8 photo, corners in full photo pixels.

    Duplicated ids (a marker-like pattern elsewhere) are all returned; the homography fit
    keeps the consistent ones.
    """
    hits = _detect_at(gray, WORK_LONG_SIDE)
    if len({h.marker_id for h in hits}) < RETRY_BELOW:
        # A small, distant, steep or blurred page: look again at a finer scale, sharpened,
        # accepting more bit errors.  Costly, but only for pages that would fail otherwise.
        finer = _detect_at(gray, RETRY_LONG_SIDE, thorough=True)
        if len({h.marker_id for h in finer}) > len({h.marker_id for h in hits}):
            hits = finer
    return hits


def _detect_at(gray: np.ndarray, long_side: int, thorough: bool = False) -> list[MarkerHit]:
    small, a, b = working_copy(gray, long_side)
    if thorough:
        blurred = cv2.GaussianBlur(small, (0, 0), 3.0)
        small = cv2.addWeighted(small, 2.5, blurred, -1.5, 0)
    hits: list[MarkerHit] = []
    for marker_id, quad in _raw_markers(small, thorough):
        hits.append(_refined_hit(gray, marker_id, (quad * a + b).astype(np.float32)))
    return hits


def _refined_hit(gray: np.ndarray, marker_id: int, corners: np.ndarray) -> MarkerHit:
    """A hit at coarse full-image ``corners`` (4, 2), refined on ``gray``."""
    coarse = MarkerHit(marker_id, corners)
    return MarkerHit(marker_id, refine_corners(gray, corners, coarse.side_px))


# A marker the whole-photo search missed is looked for again around where the page's first
# fit puts it, this far (mm) in every direction: on a curled sheet the fit of the other
# markers puts an edge marker up to 25 mm from where it is.
MISSING_MARKER_REACH_MM = 28.0
# The region is sampled upright at this scale: a 10 mm marker becomes 60 px and square-ish
# whatever the photo's tilt and resolution, which is what the detector reads best.
MISSING_MARKER_PX_PER_MM = 6.0
# A marker found there must look like the page's marker in that upright view: its sides this
# many times its printed size (a curled edge foreshortens it) and its top side turned at most
# this much.  A stray pattern decoded as the expected id (one bit may be corrected) would be
# any size and turned any way.
MISSING_MARKER_SIZE = (0.5, 1.8)
MISSING_MARKER_TURN_DEG = 30.0


def search_missing_markers(
    gray: np.ndarray, h_mm_to_px: np.ndarray, layout: dict[int, Rect], hits: list[MarkerHit]
) -> list[MarkerHit]:
    """The markers of ``layout`` absent from ``hits``, each searched for near its predicted
    place (``h_mm_to_px``, the fit of the markers found); only the expected id is accepted.

    Small, steep or shadowed markers (a page far away, an edge bent away from the camera)
    escape the whole-photo search, whose thresholds suit the typical marker; a small upright
    region around one marker gives the detector a marker of its preferred size.
    """
    present = {hit.marker_id for hit in hits}
    extra: list[MarkerHit] = []
    for marker_id, rect in layout.items():
        if marker_id in present:
            continue
        region, to_photo = warp_region(gray, h_mm_to_px, rect, MISSING_MARKER_REACH_MM,
                                       MISSING_MARKER_PX_PER_MM)
        for found_id, quad in _raw_markers(region, thorough=True):
            if found_id != marker_id or not _upright_marker(quad, rect[2]):
                continue
            full = cv2.perspectiveTransform(quad.reshape(-1, 1, 2).astype(np.float64),
                                            to_photo).reshape(4, 2).astype(np.float32)
            extra.append(_refined_hit(gray, marker_id, full))
    return extra


def _upright_marker(quad: np.ndarray, side_mm: float) -> bool:
    """Whether a (4, 2) quad found in an upright region looks like the printed marker."""
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1) / MISSING_MARKER_PX_PER_MM
    lo, hi = MISSING_MARKER_SIZE
    if sides.min() < lo * side_mm or sides.max() > hi * side_mm:
        return False
    top = quad[1] - quad[0]
    return bool(abs(np.degrees(np.arctan2(top[1], top[0]))) <= MISSING_MARKER_TURN_DEG)


# --- warping a page region ----------------------------------------------------------------


def region_transform(rect: Rect, margin_mm: float, px_per_mm: float) -> np.ndarray:
    """3x3 map from index coordinates of an upright region image to page mm.

    The region is ``rect`` grown by ``margin_mm`` on every side, sampled at ``px_per_mm``;
    pixel (u, v) covers page mm [x0 + u/r, x0 + (u+1)/r), so its centre is at + 0.5/r.
    """
    x0 = rect[0] - margin_mm
    y0 = rect[1] - margin_mm
    inv = 1.0 / px_per_mm
    return np.array([[inv, 0.0, x0 + 0.5 * inv], [0.0, inv, y0 + 0.5 * inv], [0.0, 0.0, 1.0]])


def region_size(rect: Rect, margin_mm: float, px_per_mm: float) -> tuple[int, int]:
    """(width, height) in pixels of the region image of :func:`region_transform`."""
    return (round((rect[2] + 2 * margin_mm) * px_per_mm),
            round((rect[3] + 2 * margin_mm) * px_per_mm))


def warp_region(
    gray: np.ndarray, h_mm_to_px: np.ndarray, rect: Rect, margin_mm: float, px_per_mm: float,
    border_value: int = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """Upright image of a page region, sampled straight from the photo.

    Returns the (h, w) uint8 region and the 3x3 map from its index coordinates to photo pixels.
    Pixels outside the photo are ``border_value`` (paper, so they never look like a line).
    """
    to_photo = h_mm_to_px @ region_transform(rect, margin_mm, px_per_mm)
    size = region_size(rect, margin_mm, px_per_mm)
    region = cv2.warpPerspective(
        gray, to_photo, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=border_value,
    )
    return region, to_photo


# --- QR -----------------------------------------------------------------------------------

_QR = cv2.QRCodeDetector()
QR_BORDER_MODULES = 2  # quiet zone printed inside the QR rectangle (worksheets.render)
# A curled corner moves the QR up to ~8 mm from where the markers' homography puts it.
FINDER_SEARCH_MM = 9.0
FINDER_REGION_MARGIN_MM = FINDER_SEARCH_MM + 1.0
FINDER_PX_PER_MM = 4.0
# The least correlation a finder pattern needs: first at every size, then, where the QR is
# still not located, at every size again with the fainter limit (blur, a hard shadow over
# the symbol).  What is sampled there must still match one payload clearly (MIN_MATCH,
# MAX_RUNNER_UP below); measured in docs/benchmarks.md, "Page alignment" (2026-12-06).
FINDER_SCORE_LIMITS = (0.42, 0.35)
MAX_FINDER_STRETCH = 0.2
MAX_FINDER_COS = 0.35
# Sizes (share of printed) the symbol is looked for at, in turn: a corner curled towards or
# away from the camera is seen larger or smaller than the markers' homography says.
FINDER_SCALES = ((1.0, 1.0), (0.8, 0.8), (1.2, 1.2), (0.8, 1.0), (1.0, 0.8), (0.65, 0.65),
                 (1.2, 1.0), (1.0, 1.2))
# Candidate matching: correlation of the sampled modules with a payload's modules, and the
# largest share of it the next payload may reach.  Two copies' payloads differ in about a
# fifth of their data modules, so the wrong one scores ~0.6 of the right one at any blur.
# Modules sampled where no QR is (finders forced onto a page's text and boxes: 538 samples
# on development pages) scored at most 0.19, their runner-up mostly above 0.8 of it.
MIN_MATCH = 0.2
MAX_RUNNER_UP = 0.8


@dataclass(frozen=True)
class QrRead:
    """What the QR region gave: ``text`` if it was decoded, else ``matched`` if its modules
    matched one of the expected payloads; ``located``: a QR symbol was seen there."""

    text: str | None
    located: bool
    matched: str | None = None
    score: float = 0.0

    @property
    def payload(self) -> str | None:
        return self.text if self.text is not None else self.matched


def _decode(image: np.ndarray) -> str | None:
    try:
        text, _points, _ = _QR.detectAndDecode(image)
    except cv2.error:
        return None
    return str(text) if text else None


def read_qr(
    gray: np.ndarray, h_mm_to_px: np.ndarray, qr_rect: Rect,
    candidates: dict[str, np.ndarray] | None = None,
) -> QrRead:
    """Read the page's QR, warping only its region upright from the photo.

    First OpenCV's decoder on the region (fast, enough for most photos).  If that fails, the
    three finder patterns are located precisely, every module is sampled on that grid, and
    the modules are decoded again after a clean re-rendering; if that fails too they are
    matched against ``candidates`` (payload -> (N, N) bool module matrix from
    :func:`encode_modules`), the payloads this key expects.  A match must be clear: a blurred
    QR that is still far more like one payload than every other one names that page.
    """
    n_modules = _module_count(candidates)
    region, _ = warp_region(gray, h_mm_to_px, qr_rect, QR_MARGIN_MM, QR_PX_PER_MM)
    text = _decode_at_place(region, qr_rect, n_modules) or _decode(region)
    if text:
        return QrRead(text, True)
    soft = sample_modules(gray, h_mm_to_px, qr_rect, n_modules)
    if soft is None:
        return QrRead(None, False)
    text = _decode(render_modules(soft > 0))
    if text:
        return QrRead(text, True)
    if candidates:
        payload, score = match_modules(soft, candidates)
        return QrRead(None, True, payload, score)
    return QrRead(None, True)


def _decode_at_place(region: np.ndarray, qr_rect: Rect, n_modules: int) -> str | None:
    """Decode with the symbol's corners taken from the layout: no search, about 1 ms."""
    w = qr_rect[2]
    border = w * QR_BORDER_MODULES / (n_modules + 2 * QR_BORDER_MODULES)
    lo = (QR_MARGIN_MM + border) * QR_PX_PER_MM - 0.5
    hi = (QR_MARGIN_MM + w - border) * QR_PX_PER_MM - 0.5
    points = np.array([[[lo, lo], [hi, lo], [hi, hi], [lo, hi]]], np.float32)
    try:
        text, _ = _QR.decode(region, points)
    except cv2.error:
        return None
    return str(text) if text else None


def _module_count(candidates: dict[str, np.ndarray] | None) -> int:
    if candidates:
        return int(next(iter(candidates.values())).shape[0])
    return 25  # version 2, what every Papergrade payload needs at level M


def encode_modules(payload: str) -> np.ndarray:
    """The (N, N) bool module matrix (True = dark) of ``payload`` at error correction M."""
    params = cv2.QRCodeEncoder_Params()  # type: ignore[attr-defined]
    params.correction_level = cv2.QRCODE_ENCODER_CORRECT_LEVEL_M
    image = cv2.QRCodeEncoder.create(params).encode(payload)
    dark = np.asarray(image) < 128
    rows = np.nonzero(dark.any(axis=1))[0]
    cols = np.nonzero(dark.any(axis=0))[0]
    return dark[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def render_modules(bits: np.ndarray, px: int = 6) -> np.ndarray:
    """A clean QR image of a (N, N) bool module matrix with a 4-module quiet zone."""
    n = bits.shape[0]
    image = np.full((n + 8, n + 8), 255, np.uint8)
    image[4:4 + n, 4:4 + n][bits] = 0
    return cv2.resize(image, None, fx=px, fy=px, interpolation=cv2.INTER_NEAREST)


def _finder_template(module_px: float, aspect: float = 1.0) -> np.ndarray:
    """A finder pattern (7x7 modules) with its one-module white separator, float32 0..1.

    ``module_px`` is the module's height; its width is ``aspect`` times that.
    """
    height = round(9 * module_px)
    width = round(9 * module_px * aspect)
    yy, xx = np.mgrid[0:height, 0:width]
    ring = np.maximum(np.abs(xx - (width - 1) / 2.0) / aspect,
                      np.abs(yy - (height - 1) / 2.0)) / module_px  # in modules from centre
    dark = (ring <= 1.5) | ((ring > 2.5) & (ring <= 3.5))
    return np.where(dark, 0.0, 1.0).astype(np.float32)


def _locate_finders(
    region: np.ndarray, qr_rect: Rect, n_modules: int, scale: tuple[float, float],
) -> tuple[np.ndarray, float] | None:
    """Page-frame mm (under the global homography) of the TL, TR, BL finder centres, (3, 2),
    and the weakest of their correlations.

    ``region``: the QR's square and ``FINDER_REGION_MARGIN_MM`` around it, upright at
    ``FINDER_PX_PER_MM`` (float32).  Each finder is searched by normalised correlation
    within ``FINDER_SEARCH_MM`` of where the layout puts it, with the symbol taken ``scale``
    (along x, y) times its printed size about its centre; None if the three are not a
    square's corners (then the symbol is damaged or covered, or seen at another scale).
    """
    x, y, w, _ = qr_rect
    module = w / (n_modules + 2 * QR_BORDER_MODULES)
    r = FINDER_PX_PER_MM
    margin = FINDER_REGION_MARGIN_MM
    sx_, sy_ = scale
    template = _finder_template(module * sy_ * r, sx_ / sy_)
    half_x, half_y = (template.shape[1] - 1) / 2.0, (template.shape[0] - 1) / 2.0
    mid = w / 2
    near = (QR_BORDER_MODULES + 3.5) * module - mid
    far = (QR_BORDER_MODULES + n_modules - 3.5) * module - mid
    centres, scores = [], []
    for cx, cy in ((mid + sx_ * near, mid + sy_ * near), (mid + sx_ * far, mid + sy_ * near),
                   (mid + sx_ * near, mid + sy_ * far)):
        # Expected centre in region pixels, then a window of +-search around it.
        ex, ey = (cx + margin) * r - 0.5, (cy + margin) * r - 0.5
        reach = round(FINDER_SEARCH_MM * r)
        x0, y0 = max(round(ex - half_x) - reach, 0), max(round(ey - half_y) - reach, 0)
        x1 = min(x0 + template.shape[1] + 2 * reach, region.shape[1])
        y1 = min(y0 + template.shape[0] + 2 * reach, region.shape[0])
        if x1 - x0 <= template.shape[1] or y1 - y0 <= template.shape[0]:
            return None
        score = cv2.matchTemplate(region[y0:y1, x0:x1], template, cv2.TM_CCOEFF_NORMED)
        iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
        scores.append(float(score[iy, ix]))
        sx = _parabola(score[iy, ix - 1:ix + 2]) if 0 < ix < score.shape[1] - 1 else 0.0
        sy = _parabola(score[iy - 1:iy + 2, ix]) if 0 < iy < score.shape[0] - 1 else 0.0
        px = x0 + ix + sx + half_x
        py = y0 + iy + sy + half_y
        centres.append(((px + 0.5) / r - margin + x, (py + 0.5) / r - margin + y))
    pts = np.array(centres)
    a, b = pts[1] - pts[0], pts[2] - pts[0]
    length_a, length_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if min(length_a, length_b) < 1e-6:
        return None  # two finders on one spot: not a symbol
    na, nb = length_a / (sx_ * (far - near)), length_b / (sy_ * (far - near))
    cos = float(np.dot(a, b)) / (length_a * length_b)
    # A steeply seen, curled corner shears and stretches the symbol; the decoder or the
    # candidate match decides whether what the finders frame is really this page's QR.
    lo, hi = 1.0 - MAX_FINDER_STRETCH, 1.0 + MAX_FINDER_STRETCH
    if not (lo < na < hi and lo < nb < hi and abs(cos) < MAX_FINDER_COS):
        return None
    return pts, min(scores)


def _parabola(values: np.ndarray) -> float:
    a, b, c = (float(v) for v in values)
    denom = a - 2 * b + c
    return 0.5 * (a - c) / denom if denom < 0 else 0.0


def _finders_at_any_size(
    gray: np.ndarray, h_mm_to_px: np.ndarray, qr_rect: Rect, n_modules: int
) -> np.ndarray | None:
    """The finder centres (see :func:`_locate_finders`) at the first size in
    ``FINDER_SCALES`` whose three finders all reach the strict score limit, else the first
    whose finders reach the fainter one; None if no size shows them.  The region is warped
    once, and the sizes after one that passes the strict limit are not searched."""
    strict, fainter = FINDER_SCORE_LIMITS
    region, _ = warp_region(gray, h_mm_to_px, qr_rect, FINDER_REGION_MARGIN_MM,
                            FINDER_PX_PER_MM)
    region_f = region.astype(np.float32)
    faint: np.ndarray | None = None
    for scale in FINDER_SCALES:
        found = _locate_finders(region_f, qr_rect, n_modules, scale)
        if found is None:
            continue
        if found[1] >= strict:
            return found[0]
        if faint is None and found[1] >= fainter:
            faint = found[0]
    return faint


def sample_modules(
    gray: np.ndarray, h_mm_to_px: np.ndarray, qr_rect: Rect, n_modules: int
) -> np.ndarray | None:
    """Soft module values (N, N) float32 in -1 (light) .. 1 (dark), or None if not located.

    The grid comes from the three finder patterns (an affine map from module coordinates),
    so local bending of the sheet around the QR does not shift it.  Each module is the mean
    of its central area, thresholded against the local light and dark levels.
    """
    finders = _finders_at_any_size(gray, h_mm_to_px, qr_rect, n_modules)
    if finders is None:
        return None
    n = n_modules
    module_pts = np.array([[3.5, 3.5], [n - 3.5, 3.5], [3.5, n - 3.5]], np.float32)
    affine = cv2.getAffineTransform(module_pts, finders.astype(np.float32))
    per = 4  # pixels per module in the sampled image
    to_module = np.array([[1 / per, 0, 0.5 / per], [0, 1 / per, 0.5 / per], [0, 0, 1]])
    to_photo = h_mm_to_px @ np.vstack([affine, [0, 0, 1]]) @ to_module
    upright = cv2.warpPerspective(gray, to_photo, (n * per, n * per),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REPLICATE)
    # Central 2x2 of each module: its edges are where blur mixes in the neighbours.
    blocks = upright.reshape(n, per, n, per).astype(np.float32)[:, 1:3, :, 1:3]
    values = blocks.mean(axis=(1, 3))
    kernel = np.ones((7, 7), np.uint8)
    light = cv2.dilate(values, kernel)
    dark = cv2.erode(values, kernel)
    middle = (light + dark) / 2
    spread = np.maximum((light - dark) / 2, 8.0)
    return np.clip((middle - values) / spread, -1.0, 1.0).astype(np.float32)


def _mask_patterns(n: int) -> np.ndarray:
    """The eight QR data masks, (8, N, N) bool (True = flip)."""
    i, j = np.mgrid[0:n, 0:n]
    return np.array([
        (i + j) % 2 == 0,
        i % 2 == 0,
        j % 3 == 0,
        (i + j) % 3 == 0,
        (i // 2 + j // 3) % 2 == 0,
        (i * j) % 2 + (i * j) % 3 == 0,
        ((i * j) % 2 + (i * j) % 3) % 2 == 0,
        ((i + j) % 2 + (i * j) % 3) % 2 == 0,
    ])


def _data_modules(n: int) -> np.ndarray:
    """(N, N) bool: modules that carry data (masked), not finder, timing, alignment, format."""
    data = np.ones((n, n), bool)
    data[:9, :9] = False
    data[:9, n - 8:] = False
    data[n - 8:, :9] = False
    data[6, :] = False
    data[:, 6] = False
    if n > 21:  # versions 2-6 have one alignment pattern, centred 7 modules from the far corner
        c = n - 7
        data[c - 2:c + 3, c - 2:c + 3] = False
    return data


def match_modules(soft: np.ndarray, candidates: dict[str, np.ndarray]) -> tuple[str | None, float]:
    """The candidate payload whose modules the sampled ones match, and its correlation.

    Encoders may choose different data masks for the same payload, so every pair of masks
    is tried (a candidate is scored by its best); only data modules count.  Returns None
    unless the best correlation reaches ``MIN_MATCH`` and the next-best payload stays below
    ``MAX_RUNNER_UP`` of it.
    """
    n = soft.shape[0]
    data = _data_modules(n)
    masks = _mask_patterns(n)
    flips = np.unique((masks[:, None] ^ masks[None, :]).reshape(-1, n * n)[:, data.ravel()],
                      axis=0)  # (k, d) distinct mask differences on data modules
    observed = soft[data]
    scores: list[tuple[float, str]] = []
    for payload, modules in candidates.items():
        if modules.shape != soft.shape:
            continue
        expected = np.where(modules[data][None, :] ^ flips, 1.0, -1.0)  # (k, d)
        scores.append((float((expected @ observed).max() / observed.size), payload))
    if not scores:
        return None, 0.0
    scores.sort(reverse=True)
    best, payload = scores[0]
    runner_up = scores[1][0] if len(scores) > 1 else 0.0
    if best >= MIN_MATCH and runner_up <= MAX_RUNNER_UP * best:
        return payload, best
    return None, best
