"""The page pipeline up to reading: locate, align, extract.

``align_page(image, key_index, options) -> AlignedPage`` runs these stages in order, each a
plain function of the previous one's output:

1. ``to_gray``               photo (BGR) -> (H, W) uint8                    grader.locate
2. ``detect_markers``        fiducials, corners refined at full resolution  grader.locate
3. ``fit_page``              global homography page mm -> photo px          grader.align
4. ``quality.measure/check`` resolution, exposure, sharpness gates          grader.quality
5. ``read_identity``         QR warped upright from its known place         grader.locate
6. ``key_index.lookup``      the printed page this photo shows              grader.keyindex
7. ``check_inside``          every box inside the photo (else cut off)      here
8. ``refine_boxes``          per-box mapping from each printed border       grader.align
9. ``mark_glare/untrusted`` boxes lost to glare or unplaceable: at most two grader.align
10. ``extract_field``        one clean 10 px/mm crop per placed box         grader.extract

A page that cannot be used raises a :class:`~grader.errors.PageError` subclass whose message
names the page (``options.source``) and says what to do; a page is never returned if its
alignment could be wrong.  The one exception is a box or two that cannot be placed safely on
an otherwise aligned page (``options.max_unplaced``): the page is returned with those boxes
in ``unplaced``, their crops a wider view for a person to look at, never to be read, wide
enough to hold the box wherever its uncertainty says it may be (else the page is refused).
``trace`` (optional) collects what each stage found, also when a later stage fails, for
debug overlays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from grader import quality
from grader.align import (
    BoxFit,
    LineModel,
    PageFit,
    box_corners_mm,
    fit_page,
    marker_anchors,
    predict,
    project,
    refine_boxes,
    unplaced,
    untrusted,
)
from grader.errors import (
    AnswerKeyPage,
    MarkersMissing,
    Overexposed,
    QrUnreadable,
    UnknownWorksheet,
)
from grader.extract import extract_field, review_view
from grader.keyindex import KeyIndex, KeyPage
from grader.locate import (
    MarkerHit,
    detect_markers,
    read_qr,
    search_missing_markers,
    to_gray,
)
from worksheets.marks import QR_PREFIX, PageIdentity, parse_payload

# A box whose border vanished in a blown-out highlight: paper this bright around it.
GLARE_LEVEL = 248.0
# Boxes of an aligned page that may be left unplaced (sent to a person) rather than refusing
# the page; also never more than a quarter of the page's boxes (see grader.align.untrusted).
MAX_UNPLACED_BOXES = 2


@dataclass(frozen=True)
class AlignOptions:
    """``source``: the page's name in messages.  ``aligned_px_per_mm``: if set, also return
    the whole page warped upright at that scale (for debug and annotated output).
    ``max_unplaced``: boxes that may be left unplaced before the page is refused (0: refuse
    any page with a box that cannot be placed safely)."""

    source: str = "page"
    aligned_px_per_mm: float | None = None
    max_unplaced: int = MAX_UNPLACED_BOXES


@dataclass
class AlignTrace:
    """What the stages found so far (filled in as they run, kept when one fails)."""

    gray_shape: tuple[int, int] | None = None
    markers: list[MarkerHit] = field(default_factory=list)
    fit: PageFit | None = None
    qr_text: str | None = None
    key_page: KeyPage | None = None
    box_fits: list[BoxFit] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def lap(self, stage: str, start: float) -> float:
        """Record the seconds since ``start`` under ``stage``; returns the current time."""
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - start
        return now


@dataclass
class AlignedPage:
    """A located, identified and aligned page with one crop per box.

    ``identity``: from the QR.  ``key_page``: the key's entry for it (``key_page.entry`` is the
    raw key.json page object).  ``homography``: 3x3 float64 page mm -> photo px (global).
    ``box_homographies``: box id -> 3x3 page mm -> photo px refined for that box.
    ``crops``: field id -> (H, W) uint8 crop (see :mod:`grader.extract`); ``student_number_crops``
    in digit order.  ``residual_mm``: RMS of the markers' disagreement with the homography.
    ``boxes_found``: how many boxes were placed by their own border (the rest by neighbours).
    ``unplaced``: box id -> why, for boxes that could not be placed safely; their entries in
    ``crops`` and ``student_number_crops`` are wider views for a person, not for the reader.
    ``side_writing_mm``: box id -> how far writing runs along its left and right side
    (see :class:`grader.extract.FieldCrop`), for placed boxes.
    ``aligned_image``: the page upright, (H, W) uint8, when asked for in the options.
    """

    source: str
    identity: PageIdentity
    key_page: KeyPage
    homography: np.ndarray
    box_homographies: dict[str, np.ndarray]
    crops: dict[str, np.ndarray]
    student_number_crops: list[np.ndarray]
    quality: quality.QualityMetrics
    residual_mm: float
    markers_used: list[int]
    boxes_found: int
    box_fits: list[BoxFit]
    unplaced: dict[str, str] = field(default_factory=dict)
    side_writing_mm: dict[str, tuple[float, float]] = field(default_factory=dict)
    aligned_image: np.ndarray | None = None

    @property
    def fully_aligned(self) -> bool:
        """Every box placed safely."""
        return not self.unplaced


def align_page(
    image: np.ndarray,
    key_index: KeyIndex,
    options: AlignOptions | None = None,
    trace: AlignTrace | None = None,
) -> AlignedPage:
    """Locate, identify, align and crop one page photo ((H, W, 3) BGR or (H, W) uint8)."""
    opts = options or AlignOptions()
    tr = trace if trace is not None else AlignTrace()
    source = opts.source
    geometry = key_index.geometry

    t = time.perf_counter()
    gray = to_gray(image)
    tr.gray_shape = (gray.shape[0], gray.shape[1])
    t = tr.lap("gray", t)
    detected = tr.markers = detect_markers(gray)
    t = tr.lap("markers", t)
    fit = tr.fit = locate_page(gray, detected, geometry.markers, source)
    # Measured on the markers the whole-photo search found, as the gates were calibrated:
    # those found again are the small, blurred and shadowed ones.
    metrics = quality.measure(gray, fit, geometry.markers, [_page_centre(geometry.size_mm)])
    quality.check(metrics, source)
    t = tr.lap("quality", t)
    fit = tr.fit = with_missing_markers(gray, fit, geometry.markers, detected, tr)
    identity, tr.qr_text = read_identity(gray, fit, geometry.qr_rect, key_index, source)
    key_page = lookup_page(key_index, identity, source)
    tr.key_page = key_page
    if key_page.markers != geometry.markers:  # a key mixing paper sizes: refit on this page's
        fit = locate_page(gray, detected, key_page.markers, source)
        fit = tr.fit = with_missing_markers(gray, fit, key_page.markers, detected, tr)
    t = tr.lap("qr", t)
    check_inside(gray, fit, key_page, source)
    lines = LineModel.for_blur(metrics.edge_mm)
    box_fits = refine_boxes(gray, fit, key_page.all_boxes, key_page.markers, lines)
    tr.box_fits = box_fits
    glared = mark_glare(gray, box_fits, metrics.paper_level)
    check_glare(glared, box_fits, opts.max_unplaced, source)
    uncertain = untrusted(box_fits, source, opts.max_unplaced)
    if uncertain is not None:
        raise uncertain
    t = tr.lap("boxes", t)
    extracted = {f.box.box_id: extract_field(gray, f, key_page.all_boxes)
                 for f in box_fits if f.trusted}
    crops = {f.box.box_id: (extracted[f.box.box_id].image if f.trusted
                            else review_view(gray, f)) for f in box_fits}
    tr.lap("crops", t)
    return AlignedPage(
        source=source,
        identity=identity,
        key_page=key_page,
        homography=fit.h,
        box_homographies={f.box.box_id: f.h for f in box_fits},
        crops={b.box_id: crops[b.box_id] for b in key_page.fields},
        student_number_crops=[crops[b.box_id] for b in key_page.student_number_boxes],
        quality=metrics,
        residual_mm=fit.residual_mm,
        markers_used=sorted(fit.markers),
        boxes_found=sum(f.found for f in box_fits),
        box_fits=box_fits,
        unplaced={f.box.box_id: f.note or "not found" for f in unplaced(box_fits)},
        side_writing_mm={box_id: field.side_writing_mm for box_id, field in extracted.items()},
        aligned_image=(aligned_page_image(gray, fit.h, key_page.size_mm, opts.aligned_px_per_mm)
                       if opts.aligned_px_per_mm else None),
    )


def _page_centre(size_mm: tuple[float, float]) -> tuple[float, float]:
    return size_mm[0] / 2, size_mm[1] / 2


def locate_page(
    gray: np.ndarray, hits: list[MarkerHit], layout: dict[int, quality.Rect], source: str
) -> PageFit:
    """The global homography, or the error explaining why the page cannot be located."""
    fit = fit_page(hits, layout)
    if fit is None or quality.one_edge_only(set(fit.markers)):
        raise quality.diagnose_unlocated(gray, hits, source, layout)
    return fit


def with_missing_markers(
    gray: np.ndarray, fit: PageFit, layout: dict[int, quality.Rect], hits: list[MarkerHit],
    trace: AlignTrace,
) -> PageFit:
    """``fit`` again with the markers missing from ``hits`` that a search around where it
    puts them finds (``trace.markers`` becomes ``hits`` and those): on a curled sheet every
    marker anchors the boxes near it."""
    extra = search_missing_markers(gray, fit.h, layout, hits)
    trace.markers = hits + extra
    if not extra:
        return fit
    refit = fit_page(trace.markers, layout)
    return fit if refit is None else refit


def read_identity(
    gray: np.ndarray, fit: PageFit, qr_rect: quality.Rect, key_index: KeyIndex, source: str
) -> tuple[PageIdentity, str | None]:
    """Which worksheet page this is, from the QR; raises QrUnreadable, UnknownWorksheet or
    AnswerKeyPage (the teacher's copy with the answers printed in)."""
    # The markers' residuals say how the sheet bends near the QR; follow them there.
    centre = np.array([qr_rect[0] + qr_rect[2] / 2, qr_rect[1] + qr_rect[3] / 2])
    correction = predict(centre, marker_anchors(fit, key_index.geometry.markers))
    h_qr = fit.h if correction is None else fit.h @ correction.matrix()
    qr = read_qr(gray, h_qr, qr_rect, key_index.qr_modules())
    text = qr.payload
    if text is None:
        where = "found but could not be decoded" if qr.located else "could not be found"
        raise QrUnreadable(
            f"{source}: the sheet's markers are visible but its QR code {where}; make sure the "
            "QR code (top right) is not covered, creased or in shadow, and take the photo again "
            "in good light and focus"
        )
    identity = parse_payload(text)
    if identity is None:
        if text.startswith(QR_PREFIX + ":"):
            raise QrUnreadable(
                f"{source}: the QR code was misread (check character wrong); take the photo "
                "again, sharper and in better light"
            )
        raise UnknownWorksheet(
            f"{source}: the QR code ({text[:40]!r}) is not from a Papergrade worksheet; "
            "grade only sheets printed with 'papergrade print'"
        )
    if identity.answer_key:
        raise AnswerKeyPage(
            f"{source}: this is page {identity.page_number} of the answer key (copy "
            f"{identity.variant + 1}), not a student's sheet; it is not graded, so leave the "
            "answer key out of the uploads"
        )
    return identity, text


def lookup_page(key_index: KeyIndex, identity: PageIdentity, source: str) -> KeyPage:
    page = key_index.lookup(identity)
    if page is not None:
        return page
    if identity.worksheet_id not in key_index.worksheet_ids:
        raise UnknownWorksheet(
            f"{source}: this page belongs to worksheet {identity.worksheet_id}, not to the key "
            f"given ({', '.join(key_index.worksheet_ids)}); grade it with that worksheet's "
            "key.json"
        )
    raise UnknownWorksheet(
        f"{source}: worksheet {identity.worksheet_id} has no variant {identity.variant} page "
        f"{identity.page_number} in this key.json; use the key printed with this class set"
    )


def check_inside(gray: np.ndarray, fit: PageFit, page: KeyPage, source: str) -> None:
    """Refuse a page whose answer boxes are not all inside the photo (the sheet is cut off)."""
    h, w = gray.shape
    corners = np.concatenate([box_corners_mm(b.rect) for b in page.all_boxes]) \
        if page.all_boxes else np.zeros((0, 2))
    px = project(fit.h, corners)
    inside = (px[:, 0] >= 0) & (px[:, 0] <= w - 1) & (px[:, 1] >= 0) & (px[:, 1] <= h - 1)
    if inside.all():
        return
    advice = quality.missing_markers_advice(set(fit.markers))
    raise MarkersMissing(f"{source}: answer boxes are outside the photo; {advice}")


GLARE_NOTE = "washed out by glare; check the paper"


def mark_glare(gray: np.ndarray, box_fits: list[BoxFit], paper_level: float) -> list[BoxFit]:
    """Leave unplaced each box whose border vanished under a blown-out highlight.

    The border is printed black; if it cannot be found and the paper there is clipped white
    while the sheet's paper elsewhere is not, any writing in the box is washed out too, so
    the neighbours' placement would not help: the box goes to a person, who has the paper,
    and counts against the page's allowance of unplaced boxes (see :func:`check_glare`).
    Its review view is centred where the neighbours put it and keeps that placement's
    uncertainty (``BoxFit.uncertainty_mm``, set when it was placed), so it is widened, or the
    page refused, like any unplaced box's.  (A scan's paper is white everywhere: no glare.)
    Returns the boxes so marked.
    """
    level = max(GLARE_LEVEL, paper_level + 15.0)
    glared = [f for f in box_fits if not f.found and _paper_level(gray, f) >= level]
    for f in glared:
        f.trusted = False
        f.note = GLARE_NOTE
    return glared


def check_glare(
    glared: list[BoxFit], box_fits: list[BoxFit], max_unplaced: int, source: str
) -> None:
    """Refuse the page as overexposed when glare leaves more boxes unplaced than allowed,
    or leaves one too uncertain to show for review (see :func:`grader.align.untrusted`)."""
    if glared and untrusted(box_fits, source, max_unplaced) is not None:
        names = ", ".join(f.box.box_id for f in glared[:4])
        raise Overexposed(
            f"{source}: glare washes out box {names}; tilt the sheet or move the light so no "
            "reflection falls on it, and take the photo again"
        )


def _paper_level(gray: np.ndarray, fit: BoxFit) -> float:
    """Median grey in the box's quad, on a coarse sample of photo pixels (0 if outside)."""
    x0, y0 = np.floor(fit.corners_px.min(axis=0)).astype(int)
    x1, y1 = np.ceil(fit.corners_px.max(axis=0)).astype(int)
    h, w = gray.shape
    patch = gray[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]
    return float(np.median(patch[::2, ::2])) if patch.size else 0.0


def aligned_page_image(
    gray: np.ndarray, h: np.ndarray, size_mm: tuple[float, float], px_per_mm: float
) -> np.ndarray:
    """The whole page upright at ``px_per_mm`` through the global homography; (H, W) uint8."""
    scale = np.array([[1 / px_per_mm, 0, 0.5 / px_per_mm], [0, 1 / px_per_mm, 0.5 / px_per_mm],
                      [0, 0, 1]])
    size = (round(size_mm[0] * px_per_mm), round(size_mm[1] * px_per_mm))
    return cv2.warpPerspective(gray, h @ scale, size, flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=255)


def box_outline_px(fit: BoxFit) -> np.ndarray:
    """(4, 2) float64 photo px of a box's fitted corners (for overlays)."""
    return fit.corners_px
