"""One page photo in, one graded :class:`PageResult` out: the engine every door calls.

Stages: align (locate, identify, crop) -> read every crop in one batch -> identify the student
-> score against the key.  A page that cannot be aligned comes back as a PageResult whose
status is the error code; it never becomes a zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from grader.errors import PageError
from grader.extract import (
    CROP_MARGIN_MM,
    CROP_PX_PER_MM,
    margins_with_lines,
    normalise_lighting,
    sample_crop,
)
from grader.identity import match_student
from grader.keyindex import KeyIndex
from grader.locate import to_gray
from grader.pipeline import AlignedPage, AlignOptions, align_page
from grader.read import Capture, framed_span, stroke_beyond
from grader.results import PageResult, StudentRef
from grader.score import KeptReading, PageContext, ReadingLike, score_page

# Beyond this blur (10-90 % rise of the markers' edges) the reader misreads faint, spread
# strokes with high confidence (simulated pages: no confident misreads at up to 0.8 mm on the
# phone tier, one in six accepted fields wrong above 0.9 mm on the hard tier), so every field
# of such a page goes to review instead of being graded on trust.
READABLE_EDGE_MM = 0.85
ANNOTATION_PX_PER_MM = 4.0  # about 100 dpi: enough to see the handwriting on annotated pages
# How the review reason of a box left unplaced by alignment begins (see read_all).
UNPLACED_REASON = "box could not be placed safely"
# Writing found on a box's left or right side before its lines were painted out (see
# grader.extract.SIDE_WRITING_EXCESS) at least this long is a stroke of digit height.  A
# reading that leaves it out goes to review: the stroke may be a "1" that line removal took
# ("12" was read "2").  Left out means no answer, or the ink the reader frames, not counting
# what lies within SIDE_BAND_MM of that side (a remnant of the stroke, which the network
# takes for the side's), stays SIDE_CLEARANCE_MM or more inside it.  Numbers whose own digits
# touch the side reach within 0.75 mm of it (36 simulated phone classes, docs/benchmarks.md).
# Ink framed beyond the side, in the crop's margin, is checked by reading the box without it
# (see reads_the_same_inside).
SIDE_WRITING_MM = 4.0
SIDE_BAND_MM = 0.6
SIDE_CLEARANCE_MM = 1.2
# A "1" written just beyond a side, hardly touching it, leaves no run on the side; line
# removal takes the part on the side and a small piece is left in the crop's margin, framed
# with the number and made nothing of ("16" read "6" at 0.99).  A reading whose framed ink
# holds a stroke centred BEYOND_SIDE_MM or more outside a side, level with the number (see
# grader.read.stroke_beyond), and which reads the same without it, is doubted the same way.
BEYOND_SIDE_MM = 0.4
SIDE_WRITING_REASON = "writing on the box's {side} side that the reading leaves out"
# Such a field is shown for review with this much of the page around its box, lines kept:
# its crop has the side painted out, and with it what was written there, and reaches only
# 2 mm beyond it, so a "16" whose "1" lies on the side would be shown as a "6".
SIDE_VIEW_MARGIN_MM = 6.0


class ReaderLike(Protocol):
    def read_batch(
        self, crops: Sequence[np.ndarray], capture: Capture | None = None
    ) -> Sequence[ReadingLike]: ...


@dataclass
class GradedPage:
    """A page's result plus the images worth keeping (crops for review, the aligned page)."""

    result: PageResult
    crops: dict[str, np.ndarray] = field(default_factory=dict)
    aligned_image: np.ndarray | None = None


def key_for(key_index: KeyIndex, worksheet_id: str) -> Mapping[str, Any]:
    return next(k for k in key_index.keys if k["worksheet_id"] == worksheet_id)


def roster_of(key: Mapping[str, Any]) -> list[StudentRef]:
    return [StudentRef(v["student"]["student_id"], v["student"]["name"])
            for v in key["variants"] if v.get("student")]


def grade_page(
    image: np.ndarray,
    key_index: KeyIndex,
    reader: ReaderLike,
    source: str,
    sha256: str = "",
    roster: Sequence[StudentRef] = (),
) -> GradedPage:
    """Grade one photo or scan ((H, W, 3) BGR or (H, W) uint8)."""
    try:
        aligned = align_page(image, key_index,
                             AlignOptions(source=source, aligned_px_per_mm=ANNOTATION_PX_PER_MM))
    except PageError as exc:
        return GradedPage(PageResult(source=source, status=exc.code, message=exc.message,
                                     sha256=sha256))
    key = key_for(key_index, aligned.identity.worksheet_id)
    readings = read_all(aligned, reader)
    # Stand-in readers without a calibrated key-match threshold never credit doubted readings.
    key_match_threshold = getattr(reader, "key_match_threshold", None)
    result = page_result(aligned, key, readings, source, sha256, roster, key_match_threshold)
    threshold_for = getattr(reader, "threshold_for", None)
    if threshold_for is not None:
        result.review_threshold = float(threshold_for(aligned.quality))
    crops = {**crops_by_name(aligned), **side_views(image, aligned, readings)}
    return GradedPage(result, crops, aligned.aligned_image)


def read_all(aligned: AlignedPage, reader: ReaderLike) -> dict[str, ReadingLike]:
    """Every placed crop of the page read in one batch: field ids, then ``student_number.N``.

    A box that could not be placed is not read: it gets an empty reading in review, with why.
    """
    named = crops_by_name(aligned)
    lost = unplaced_by_name(aligned)
    placed = {name: crop for name, crop in named.items() if name not in lost}
    # The page's measured sharpness and resolution choose the reader's review threshold.
    readings: list[ReadingLike] = (list(reader.read_batch(list(placed.values()), aligned.quality))
                                   if placed else [])
    edge_mm = aligned.quality.edge_mm
    if edge_mm > READABLE_EDGE_MM:
        why = (f"photo too blurred to read safely (edges spread over {edge_mm:.1f} mm); "
               "check the box or photograph the page again in focus")
        readings = [KeptReading(r.text, r.status, r.confidence, list(r.alternatives), True, why)
                    for r in readings]
    read = dict(zip(placed, readings, strict=True))
    read.update(doubt_side_writing(aligned, placed, read, reader))
    for name, note in lost.items():
        why = (f"{UNPLACED_REASON} ({note}); read it on the wider view or the paper, or "
               "photograph the page again flat and without glare")
        read[name] = KeptReading(None, "blank", 0.0, [], True, why)
    return {name: read[name] for name in named}


def doubt_side_writing(
    aligned: AlignedPage, crops: Mapping[str, np.ndarray], readings: Mapping[str, ReadingLike],
    reader: ReaderLike | None = None,
) -> dict[str, ReadingLike]:
    """Accepted readings that leave out writing on their box's side or just beyond it (see
    SIDE_WRITING_MM and BEYOND_SIDE_MM), doubted with why.  ``reader`` reads a crop again
    without what lies beyond the side (see :func:`left_out_side`)."""
    boxes = box_of_name(aligned)
    specs = {box.box_id: box for box in aligned.key_page.all_boxes}
    read_text = None if reader is None else _text_reader(reader, aligned)
    doubted: dict[str, ReadingLike] = {}
    for name, reading in readings.items():
        if reading.needs_review:
            continue
        runs = aligned.side_writing_mm.get(boxes[name], (0.0, 0.0))
        lined = margins_with_lines(specs[boxes[name]], aligned.key_page.all_boxes)
        side = left_out_side(crops[name], reading, runs, read_text, lined)
        if side is not None:
            why = (SIDE_WRITING_REASON.format(side=side)
                   + "; check what is written there on the wider view around the box")
            doubted[name] = KeptReading(reading.text, reading.status, reading.confidence,
                                        list(reading.alternatives), True, why)
    return doubted


# The text a crop is read as (its best reading's): how a rule asks the reader again.
ReadText = Callable[[np.ndarray], str | None]


def _text_reader(reader: ReaderLike, aligned: AlignedPage) -> ReadText:
    return lambda crop: reader.read_batch([crop], aligned.quality)[0].text


def left_out_side(crop: np.ndarray, reading: ReadingLike, runs: tuple[float, float],
                  read_text: ReadText | None = None,
                  lined: tuple[bool, bool] = (False, False)) -> str | None:
    """``"left"`` or ``"right"``: a side holding writing the reading leaves out, if any.

    With ``read_text``, a number whose framed ink reaches beyond the side is also checked
    without what lies there (see :func:`reads_the_same_inside`), and so is one whose framed
    ink holds a stroke beyond a side with no writing along it (see :func:`written_beyond`),
    unless another box's side runs through the crop's margin there (``lined``, left and
    right): what is left of that line is no writing.
    """
    width_mm = crop.shape[1] / CROP_PX_PER_MM
    for side, run, other_line in zip(("left", "right"), runs, lined, strict=True):
        at_mm = CROP_MARGIN_MM if side == "left" else width_mm - CROP_MARGIN_MM
        if run < SIDE_WRITING_MM:
            if (read_text is not None and not other_line
                    and written_beyond(crop, reading, side, at_mm, read_text)):
                return side
            continue
        if reading.text is None:
            return side
        span = framed_span(without_band(crop, at_mm))
        if span is None or _clearance(span, side, at_mm, width_mm) >= SIDE_CLEARANCE_MM:
            return side
        if read_text is not None and reads_the_same_inside(crop, reading, side, at_mm,
                                                           read_text):
            return side
    return None


def written_beyond(crop: np.ndarray, reading: ReadingLike, side: str, at_mm: float,
                   read_text: ReadText) -> bool:
    """Whether ``reading`` leaves out a stroke framed with it beyond ``side`` of its box (at
    ``at_mm`` from the crop's left end; see BEYOND_SIDE_MM)."""
    if reading.text is None:
        return False
    limit_mm = at_mm - BEYOND_SIDE_MM if side == "left" else at_mm + BEYOND_SIDE_MM
    return (stroke_beyond(crop, side, limit_mm * CROP_PX_PER_MM / crop.shape[1])
            and reads_the_same_inside(crop, reading, side, at_mm, read_text))


def reads_the_same_inside(crop: np.ndarray, reading: ReadingLike, side: str, at_mm: float,
                          read_text: ReadText) -> bool:
    """Whether ``reading`` leaves out all that lies beyond ``side`` of its box (at ``at_mm``
    from the crop's left end).

    What line removal leaves of a "1" written over the side can lie in the crop's margin,
    outside the box; framed with the number, it made the number seem to begin at the side,
    and "10.25" read "0.25" was accepted.  Without everything up to SIDE_BAND_MM inside the
    side, the number stands SIDE_CLEARANCE_MM clear of it and is read as the same text: the
    reading made nothing of that ink.  (A reading that took the "1" in reads differently
    without it.)
    """
    inside = without_outside(crop, side, at_mm)
    span = framed_span(inside)
    return (span is not None
            and _clearance(span, side, at_mm, crop.shape[1] / CROP_PX_PER_MM)
            >= SIDE_CLEARANCE_MM
            and read_text(inside) == reading.text)


def _clearance(span: tuple[float, float], side: str, at_mm: float, width_mm: float) -> float:
    """How far (mm) the framed ink ``span`` (shares of the crop's width) stays inside a side
    at ``at_mm`` from the crop's left end."""
    return span[0] * width_mm - at_mm if side == "left" else at_mm - span[1] * width_mm


def without_band(crop: np.ndarray, at_mm: float) -> np.ndarray:
    """A copy of ``crop`` with the columns within SIDE_BAND_MM of ``at_mm`` made paper."""
    return _as_paper(crop, at_mm - SIDE_BAND_MM, at_mm + SIDE_BAND_MM)


def without_outside(crop: np.ndarray, side: str, at_mm: float) -> np.ndarray:
    """A copy of ``crop`` made paper from its ``side`` end to SIDE_BAND_MM inside the box's
    side at ``at_mm``."""
    if side == "left":
        return _as_paper(crop, 0.0, at_mm + SIDE_BAND_MM)
    return _as_paper(crop, at_mm - SIDE_BAND_MM, crop.shape[1] / CROP_PX_PER_MM)


def _as_paper(crop: np.ndarray, from_mm: float, to_mm: float) -> np.ndarray:
    """A copy of ``crop`` with its columns from ``from_mm`` to ``to_mm`` (from its left end)
    made paper."""
    out = crop.copy()
    out[:, max(0, round(from_mm * CROP_PX_PER_MM)) : round(to_mm * CROP_PX_PER_MM)] = 255
    return out


def side_views(image: np.ndarray, aligned: AlignedPage,
               readings: Mapping[str, ReadingLike]) -> dict[str, np.ndarray]:
    """Wider views of the boxes whose readings were doubted for writing on their side, as
    a person needs them (see SIDE_VIEW_MARGIN_MM), by the names of :func:`crops_by_name`."""
    prefix = SIDE_WRITING_REASON.split("{side}")[0]
    doubted = [name for name, reading in readings.items()
               if getattr(reading, "review_reason", "").startswith(prefix)]
    if not doubted:
        return {}
    gray = to_gray(image)
    box_ids = box_of_name(aligned)
    rects = {box.box_id: box.rect for box in aligned.key_page.all_boxes}
    return {name: normalise_lighting(sample_crop(
        gray, aligned.box_homographies[box_ids[name]], rects[box_ids[name]],
        SIDE_VIEW_MARGIN_MM)) for name in doubted}


def crops_by_name(aligned: AlignedPage) -> dict[str, np.ndarray]:
    """The page's crops by field id, then the student-number digits as ``student_number.N``."""
    digits = {f"student_number.{i + 1}": c for i, c in enumerate(aligned.student_number_crops)}
    return {**aligned.crops, **digits}


def box_of_name(aligned: AlignedPage) -> dict[str, str]:
    """The key's box id behind each name :func:`crops_by_name` uses."""
    digit_ids = [b.box_id for b in aligned.key_page.student_number_boxes]
    return {**{field_id: field_id for field_id in aligned.crops},
            **{f"student_number.{i + 1}": box_id for i, box_id in enumerate(digit_ids)}}


def unplaced_by_name(aligned: AlignedPage) -> dict[str, str]:
    """Unplaced boxes under the names :func:`crops_by_name` gives them, with why."""
    return {name: aligned.unplaced[box_id] for name, box_id in box_of_name(aligned).items()
            if box_id in aligned.unplaced}


def page_result(
    aligned: AlignedPage,
    key: Mapping[str, Any],
    readings: Mapping[str, ReadingLike],
    source: str,
    sha256: str,
    roster: Sequence[StudentRef],
    key_match_threshold: float | None = None,
) -> PageResult:
    entry = aligned.key_page.entry
    fields = score_page(PageContext.from_key(key, entry, key_match_threshold), readings)
    result = PageResult(
        source=source, status="graded", sha256=sha256, pdf_page=entry["pdf_page"],
        variant=entry["variant"], page_number=entry["page_number"], fields=fields,
        px_per_mm=float(aligned.quality.px_per_mm), blur_mm=float(aligned.quality.edge_mm),
    )
    identify(result, key, readings, roster or roster_of(key))
    return result


def identify(
    result: PageResult,
    key: Mapping[str, Any],
    readings: Mapping[str, ReadingLike],
    roster: Sequence[StudentRef],
) -> None:
    """Fill in the student: from the key when printed for a roster, else the written number."""
    assert result.variant is not None
    printed_for = key["variants"][result.variant].get("student")
    if printed_for:
        result.student = StudentRef(printed_for["student_id"], printed_for["name"])
        result.identity_source = "qr"
        return
    digits = [readings[k] for k in sorted(readings, key=_digit_order)
              if k.startswith("student_number.")]
    if not digits:
        return  # a later page of a numbered copy: its first page names the student
    match = match_student(digits, roster)
    result.student = match.student
    result.student_number_read = match.number_read
    result.identity_source = "student_number"
    result.identity_review = match.needs_review
    if match.reason:
        result.message = match.reason


def _digit_order(name: str) -> int:
    return int(name.rsplit(".", 1)[1]) if name.startswith("student_number.") else -1


def link_copies(pages: Sequence[PageResult]) -> None:
    """Give later pages of a numbered copy the student found on its first page.

    Pages of one copy share the QR's variant number, so the student number written once on
    page 1 identifies them all.  When different students wrote on pages of one copy (the
    sheets were photocopied), its later pages could be anyone's: they go to review.
    """
    firsts: dict[int, list[PageResult]] = {}
    for page in pages:
        if page.graded and page.identity_source == "student_number" and page.variant is not None:
            firsts.setdefault(page.variant, []).append(page)
    for page in pages:
        if not page.graded or page.student is not None or page.variant is None:
            continue
        named = firsts.get(page.variant, [])
        students = {p.student.student_id for p in named if p.student is not None}
        if len(students) > 1:
            page.identity_review = True
            page.message = PHOTOCOPIED_NOTE
        elif named:
            # The page 1 that names the student, if one does (another may be unreadable).
            link_to(page, next((p for p in named if p.student is not None), named[0]))


PHOTOCOPIED_NOTE = ("different students wrote on pages of this printed copy (photocopied "
                    "sheets?), so whose page this is must be said in review; print one copy "
                    "per student next time")


def link_to(page: PageResult, first: PageResult) -> None:
    """``page`` belongs to the student identified on ``first``, a page of the same copy."""
    page.student = first.student
    page.identity_source = "student_number"
    page.identity_review = first.identity_review


def regrader_for(key: Mapping[str, Any]) -> Callable[[PageResult, dict[str, str | None]],
                                                      PageResult]:
    """The store's re-grade hook: re-score a page with the teacher's readings pinned.

    Doubted readings are judged as when the page was graded, with the packaged reader's
    key-match threshold.
    """
    from grader.read import packaged_key_match_threshold
    from grader.score import regrade_page

    threshold = packaged_key_match_threshold()

    def regrade(page: PageResult, corrections: dict[str, str | None]) -> PageResult:
        assert page.pdf_page is not None
        context = PageContext.from_key(key, key["pages"][page.pdf_page], threshold)
        page.fields = regrade_page(context, page.fields, corrections)
        return page

    return regrade
