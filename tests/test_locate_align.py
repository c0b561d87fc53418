"""Locate, align, extract: rotations, missing markers, every quality gate, crop centring.

Inputs are the project's own printed worksheet, rasterised with pdftoppm and then turned,
cut, blurred or darkened with known transforms (so the true box positions are exact), or
photographed by the simulator (which reports the true box corners).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from grader import grade as grade_module
from grader import quality, simulate
from grader.align import (
    _INVERSE_PAPER,
    FOLD_FAR_MM,
    MAX_REVIEW_VIEW_MARGIN_MM,
    REVIEW_MARGIN_PER_UNCERTAINTY,
    REVIEW_VIEW_MARGIN_MM,
    ROW_OFF_SPAN_MM,
    ROW_SPAN_MM,
    UNCERTAINTY_PER_FOUND_DISTANCE,
    AlignmentUncertain,
    Anchors,
    BoxFit,
    Correction,
    LineModel,
    LinePair,
    Scene,
    SideMaps,
    Window,
    _beyond_a_fold,
    _from_neighbours,
    _from_row,
    _median,
    _merge_copies,
    _nothing_where_predicted,
    _pair_points,
    _refuse_off_their_row,
    _refuse_row_one_box_off,
    _row_of,
    _row_placement,
    _search_rows,
    _search_where_row_puts,
    fit_box,
    fit_page,
    found_distance_mm,
    review_margin_mm,
    untrusted,
)
from grader.errors import (
    AnswerKeyPage,
    LowResolution,
    MarkersMissing,
    Overexposed,
    QrUnreadable,
    TooBlurred,
    TooDark,
    UnknownWorksheet,
)
from grader.extract import (
    CROP_PX_PER_MM,
    LINE_SEARCH_PX,
    PAPER_TARGET,
    SIDE_WRITING_CORNER_PX,
    CropLine,
    _darkness_along,
    _ink_on_line,
    _line_profile,
    _locate_line,
    _near,
    _percentile,
    crop_size,
    crop_to_photo,
    margins_with_lines,
    remove_lines,
    review_view,
    side_writing_mm,
)
from grader.grade import (
    READABLE_EDGE_MM,
    SIDE_VIEW_MARGIN_MM,
    SIDE_WRITING_REASON,
    UNPLACED_REASON,
    grade_page,
    left_out_side,
    read_all,
    side_views,
)
from grader.keyindex import BoxSpec, KeyIndex, KeyPage
from grader.locate import (
    MarkerHit,
    _upright_marker,
    detect_markers,
    region_size,
    search_missing_markers,
)
from grader.pipeline import (
    GLARE_NOTE,
    AlignedPage,
    AlignOptions,
    AlignTrace,
    align_page,
    check_glare,
    mark_glare,
)
from grader.read import Reader, Reading
from grader.score import KeptReading
from tests.print_support import rasterize
from worker.commands import align_cmd
from worker.commands.grade_cmd import page_line
from worker.jobs import GradeSummary, PageDone
from worksheets.errors import KeyFileError
from worksheets.publish import publish
from worksheets.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
DPI = 150
PPM = DPI / 25.4


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KeyIndex, list, Path]]:
    """Two copies of the example worksheet: key index, 150 dpi page rasters, output folder."""
    folder = tmp_path_factory.mktemp("printed")
    result = publish(load_spec(ROOT / "examples" / "linear-layer.yaml"), folder, None, 2,
                     progress=lambda message: None)
    rasters = rasterize(result.worksheets_pdf, DPI, folder)
    yield KeyIndex.load(result.key_json), rasters, folder


def key_page(index: KeyIndex, pdf_page: int) -> KeyPage:
    return next(p for p in index.pages.values() if p.pdf_page == pdf_page)


def place(raster: np.ndarray, angle_deg: float, scale: float = 1.0,
          canvas: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The raster turned by ``angle_deg`` (counter-clockwise) and scaled, on a grey table.

    Returns the (H, W) uint8 image and the 2x3 affine map from raster to image pixels.
    """
    h, w = raster.shape
    size = canvas or (int(1.25 * max(h, w) * scale),) * 2
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, scale)
    m[:, 2] += np.array(size) / 2 - np.array([w / 2, h / 2])
    out = cv2.warpAffine(raster, m, size, flags=cv2.INTER_AREA, borderValue=90)
    return out, m


def box_span_px(m: np.ndarray, box: BoxSpec, margin_mm: float) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` photo px of ``box`` plus ``margin_mm`` on a page placed by ``m``."""
    x, y, w, h = box.rect
    corners = np.array([[x - margin_mm, y - margin_mm], [x + w + margin_mm, y + h + margin_mm]])
    (x0, y0), (x1, y1) = ((corners * PPM - 0.5) @ m[:, :2].T + m[:, 2]).astype(int)
    return x0, y0, x1, y1


def moved_down(image: np.ndarray, m: np.ndarray, box: BoxSpec, mm: float) -> np.ndarray:
    """A copy of ``image`` with ``box`` (border and all) moved ``mm`` down the page."""
    x0, y0, x1, y1 = box_span_px(m, box, 1.2)
    out = image.copy()
    patch = image[y0:y1, x0:x1].copy()
    shift = round(mm * PPM)
    out[y0:y1, x0:x1] = 255
    out[y0 + shift:y1 + shift, x0:x1] = patch
    return out


def crop_centre_errors_mm(result: AlignedPage, to_image: np.ndarray) -> list[float]:
    """Crop-centre error per box when the page raster was mapped by the affine ``to_image``."""
    errors = []
    for fit in result.box_fits:
        x, y, w, h = fit.box.rect
        corners_mm = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
        raster_px = corners_mm * PPM - 0.5
        image_px = raster_px @ to_image[:, :2].T + to_image[:, 2]
        to_crop = np.linalg.inv(crop_to_photo(fit.h, fit.box.rect))
        in_crop = cv2.perspectiveTransform(image_px.reshape(-1, 1, 2), to_crop).reshape(-1, 2)
        cw, ch = crop_size(fit.box.rect)
        errors.append(float(np.linalg.norm(in_crop.mean(axis=0) - [(cw - 1) / 2, (ch - 1) / 2])))
    return [e / 10.0 for e in errors]


@pytest.mark.parametrize("size", [1, 2, 5, 8, 13])
def test_the_short_median_is_numpys_to_the_bit(size: int) -> None:
    # Side measurements compare against it: a value off in its last bit could flip a side.
    heights = np.random.default_rng(size).random(size) * 0.7
    for values in (heights.astype(np.float32), heights):
        assert _median(values) == float(np.median(values))


def test_the_paper_table_looked_up_by_opencv_is_numpys_indexing() -> None:
    every_grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    looked_up = cv2.LUT(every_grey, _INVERSE_PAPER)
    assert looked_up.dtype == np.float32
    assert np.array_equal(looked_up, _INVERSE_PAPER[0][every_grey])


@pytest.mark.parametrize("seed", range(6))
def test_a_level_sides_profiles_are_the_general_gathers_to_the_bit(seed: int) -> None:
    # Level sides (nearly all) are sliced rather than gathered row by row; a slope too small
    # to move any row gathers the very same pixels the general way, so the sub-pixel side
    # positions must come out identical.
    rng = np.random.default_rng(seed)
    ridge = (rng.random((150, 320)) ** 3).astype(np.float32)
    first = float(rng.integers(12, 60))
    level = LinePair(first, first + float(rng.integers(30, 80)), 0.0, 160.0, 0.3)
    nudged = LinePair(level.first, level.second, 1e-9, level.centre, level.contrast)
    along = (float(rng.uniform(5, 60)), float(rng.uniform(200, 315)))
    for centroid in (0.6, 1.0):
        sides = _pair_points(ridge, along, level, 0.05, centroid_mm=centroid)
        assert sides == _pair_points(ridge, along, nudged, 0.05, centroid_mm=centroid)
        assert all(side is not None for side in sides)


def test_key_index_looks_up_pages(printed) -> None:
    index, rasters, _ = printed
    assert len(index) == len(rasters) == 4
    page = key_page(index, 0)
    assert index.lookup(page.identity) is page
    assert page.fields and len(page.student_number_boxes) == 6
    assert not key_page(index, 1).student_number_boxes  # only a first page asks for it
    assert page.qr_rect == index.geometry.qr_rect


def test_bad_key_file_is_a_key_error(tmp_path: Path) -> None:
    bad = tmp_path / "key.json"
    bad.write_text('{"schema": "papergrade.key/1", "worksheet_id": "X", "pages": [{}]}')
    with pytest.raises(KeyFileError):
        KeyIndex.load(bad)


def test_flat_page_gives_identity_and_centred_crops(printed) -> None:
    index, rasters, _ = printed
    image, m = place(rasters[0], 0.0)
    result = align_page(image, index, AlignOptions(source="flat"))
    page = key_page(index, 0)
    assert result.identity == page.identity
    assert result.key_page is page
    assert set(result.crops) == {f.box_id for f in page.fields}
    assert all(c.shape == (160, 360) and c.dtype == np.uint8 for c in result.crops.values())
    assert [c.shape for c in result.student_number_crops] == [(160, 140)] * 6
    assert result.residual_mm < 0.2
    assert result.boxes_found == len(page.all_boxes)
    assert max(crop_centre_errors_mm(result, m)) < 0.3


@pytest.mark.parametrize("angle", [90.0, 180.0, 270.0, 17.0, 133.0, -61.0, 222.5])
def test_any_rotation_is_aligned(printed, angle: float) -> None:
    index, rasters, _ = printed
    image, m = place(rasters[2], angle)
    result = align_page(image, index)
    assert result.key_page.pdf_page == 2
    assert max(crop_centre_errors_mm(result, m)) < 0.5


def test_exact_quadrant_turns_by_rot90(printed) -> None:
    index, rasters, _ = printed
    for k in range(4):
        result = align_page(np.ascontiguousarray(np.rot90(rasters[1], k)), index)
        assert result.key_page.pdf_page == 1


def marker_rect_px(index: KeyIndex, marker_id: int, m: np.ndarray) -> tuple[int, int, int, int]:
    x, y, w, h = index.geometry.markers[marker_id]
    pts = (np.array([[x, y], [x + w, y + h]]) * PPM - 0.5) @ m[:, :2].T + m[:, 2]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return int(x0) - 4, int(y0) - 4, int(x1) + 4, int(y1) + 4


@pytest.mark.parametrize("hide", ["erased", "thumb"])
def test_one_missing_or_covered_marker_still_aligns(printed, hide: str) -> None:
    index, rasters, _ = printed
    image, m = place(rasters[0], 8.0)
    x0, y0, x1, y1 = marker_rect_px(index, 4, m)
    if hide == "erased":
        image[y0:y1, x0:x1] = 235
    else:  # a thumb: a dark blob over the marker and beyond
        cv2.ellipse(image, ((x0 + x1) // 2, (y0 + y1) // 2), (60, 35), 30, 0, 360, 70, -1)
    trace = AlignTrace()
    result = align_page(image, index, trace=trace)
    assert 4 not in result.markers_used
    assert max(crop_centre_errors_mm(result, m)) < 0.5


def shifted(h: np.ndarray, dx_mm: float, dy_mm: float) -> np.ndarray:
    """``h`` (page mm -> photo px) predicting every point ``(dx_mm, dy_mm)`` off."""
    return h @ np.array([[1.0, 0.0, -dx_mm], [0.0, 1.0, -dy_mm], [0.0, 0.0, 1.0]])


def test_a_missed_marker_is_found_again_far_from_its_predicted_place(printed) -> None:
    """A curled edge puts a marker up to 25 mm from where the other markers' fit predicts
    it; the second search finds it there, at the corners the whole-photo search gives."""
    index, rasters, _ = printed
    gray, _ = place(rasters[0], 8.0)
    hits = detect_markers(gray)
    seen = next(h for h in hits if h.marker_id == 4)
    others = [h for h in hits if h.marker_id != 4]
    fit = fit_page(others, index.geometry.markers)
    assert fit is not None
    extra = search_missing_markers(gray, shifted(fit.h, 14.0, -17.0), index.geometry.markers,
                                   others)
    assert [h.marker_id for h in extra] == [4]
    assert np.abs(extra[0].corners - seen.corners).max() < 1.0


def test_the_second_marker_search_takes_only_the_expected_marker_within_reach(printed) -> None:
    index, rasters, _ = printed
    image, _ = place(rasters[0], 8.0)
    hits = detect_markers(image)
    others = [h for h in hits if h.marker_id != 4]
    fit = fit_page(others, index.geometry.markers)
    assert fit is not None
    assert search_missing_markers(image, shifted(fit.h, 40.0, 0.0), index.geometry.markers,
                                  others) == []
    # The layout puts 4 where 5 is: a marker is found there, but not the one expected.
    layout = dict(index.geometry.markers)
    layout[4] = layout[5]
    assert search_missing_markers(image, fit.h, layout, others) == []


@pytest.mark.parametrize(("quad", "upright"), [
    ([[0, 0], [60, 0], [60, 60], [0, 60]], True),
    ([[0, 0], [60, 8], [55, 40], [-4, 34]], True),  # foreshortened by a curl, turned a little
    ([[60, 0], [60, 60], [0, 60], [0, 0]], False),  # turned a quarter: not the page's marker
    ([[0, 0], [20, 0], [20, 20], [0, 20]], False),  # a third of the printed size
    ([[0, 0], [150, 0], [150, 150], [0, 150]], False),
])
def test_a_marker_found_again_must_look_like_the_printed_one(quad, upright: bool) -> None:
    assert _upright_marker(np.array(quad, np.float64), 10.0) is upright


def test_a_page_uses_the_marker_the_whole_photo_search_missed(printed, monkeypatch) -> None:
    index, rasters, _ = printed
    image, m = place(rasters[0], 8.0)

    def missing_four(gray: np.ndarray) -> list[MarkerHit]:
        return [h for h in detect_markers(gray) if h.marker_id != 4]

    monkeypatch.setattr("grader.pipeline.detect_markers", missing_four)
    trace = AlignTrace()
    result = align_page(image, index, trace=trace)
    assert 4 in result.markers_used
    assert max(crop_centre_errors_mm(result, m)) < 0.5
    # The quality gates judge the page by the markers the whole-photo search found, as they
    # were calibrated: those found again are the small, blurred and shadowed ones.
    first_fit = fit_page(missing_four(image), index.geometry.markers)
    assert first_fit is not None
    size = index.geometry.size_mm
    assert result.quality == quality.measure(image, first_fit, index.geometry.markers,
                                             [(size[0] / 2, size[1] / 2)])


def test_cut_off_edge_names_the_edge(printed) -> None:
    index, rasters, _ = printed
    image, _ = place(rasters[0], 0.0)
    h = image.shape[0]
    # Cut the page just below the middle markers: the whole bottom edge is gone.
    cut = image[: int(h * 0.62)]
    with pytest.raises(MarkersMissing) as info:
        align_page(cut, index, AlignOptions(source="cut.jpg"))
    assert "bottom edge" in info.value.message
    assert info.value.message.startswith("cut.jpg:")


def test_unreadable_markers_of_a_sheet_in_view_are_not_called_cut_off(printed) -> None:
    """Markers the two found put inside the photo are in view: the advice is to take the
    photo closer and steadier, not to bring an edge into the picture."""
    index, rasters, _ = printed
    image, m = place(rasters[0], 8.0)
    for marker_id in (0, 2, 4, 5, 6, 7):  # keep top middle and right middle
        x0, y0, x1, y1 = marker_rect_px(index, marker_id, m)
        image[y0:y1, x0:x1] = 235
    with pytest.raises(MarkersMissing) as info:
        align_page(image, index, AlignOptions(source="far.jpg"))
    assert "only 2 of 8 markers could be read" in info.value.message
    assert "seems to be in the picture" in info.value.message
    assert "cut off" not in info.value.message


def test_markers_on_one_edge_only_are_not_enough(printed) -> None:
    index, rasters, _ = printed
    image, _ = place(rasters[0], 0.0)
    top = image[: int(image.shape[0] * 0.3)]
    with pytest.raises(MarkersMissing):
        align_page(top, index)


def test_blurred_page_is_refused(printed) -> None:
    index, rasters, _ = printed
    image, _ = place(rasters[0], 4.0, scale=2.0)  # 11.8 px/mm
    blurred = cv2.GaussianBlur(image, (0, 0), 18.0)  # sigma 1.5 mm
    with pytest.raises(TooBlurred) as info:
        align_page(blurred, index, AlignOptions(source="blur.jpg"))
    assert "blur" in info.value.message


def test_dark_page_is_refused(printed) -> None:
    index, rasters, _ = printed
    image, _ = place(rasters[0], 4.0)
    dark = (image.astype(np.float32) * 0.18).astype(np.uint8)
    with pytest.raises(TooDark):
        align_page(dark, index)


def test_overexposed_page_is_refused(printed) -> None:
    index, rasters, _ = printed
    image, _ = place(rasters[0], 4.0)
    washed = np.clip(image.astype(np.float32) * 0.35 + 190, 0, 255).astype(np.uint8)
    with pytest.raises(Overexposed):
        align_page(washed, index)


def test_a_page_of_the_answer_key_is_refused_not_graded(printed) -> None:
    """Scanned with the class's sheets, the key would take the student's slot with full marks."""
    index, _, folder = printed
    (folder / "key-rasters").mkdir(exist_ok=True)
    key_rasters = rasterize(folder / "answer-key.pdf", DPI, folder / "key-rasters")
    image, _ = place(key_rasters[1], 12.0)
    with pytest.raises(AnswerKeyPage, match=r"page 2 of the answer key \(copy 1\)"):
        align_page(image, index)
    # A QR too blurred to decode is matched among the payloads the key expects, the answer
    # key's own among them, and is still known for what it is.
    blurred = cv2.GaussianBlur(key_rasters[1], (0, 0), 3.0)
    with pytest.raises(AnswerKeyPage):
        align_page(blurred, index)


def test_a_blank_back_page_of_a_duplex_scan_is_said_to_be_one(printed) -> None:
    """Nearly white with the front's print showing through: no flash to blame, nothing lost."""
    index, _, _ = printed
    rng = np.random.default_rng(0)
    back = np.clip(rng.normal(247, 2, (1754, 1240)), 0, 255).astype(np.uint8)
    for y in range(200, 1500, 60):
        cv2.putText(back, "the front of the sheet, seen through", (100, y), 0, 1.2, 222, 2)
    with pytest.raises(Overexposed) as info:
        align_page(back, index)
    assert "back of a sheet scanned double-sided" in info.value.message
    with pytest.raises(MarkersMissing) as plain:
        align_page(np.full((1754, 1240), 255, np.uint8), index)  # a blank page of a PDF
    assert "no worksheet is visible" in plain.value.message
    assert "back of a sheet scanned double-sided" in plain.value.message


def test_low_resolution_page_is_refused(printed) -> None:
    index, rasters, _ = printed
    image, _ = place(rasters[0], 0.0, scale=1.25 / PPM * 1.0)  # 1.25 px/mm
    with pytest.raises(LowResolution) as info:
        align_page(image, index)
    assert "pixels per mm" in info.value.message or "too small" in info.value.message


@pytest.mark.parametrize(("stretch", "noise"), [(1.0, 40.0), (1.2, 0.0)])
def test_a_shaken_qr_is_still_matched_to_its_page(printed, stretch: float, noise: float) -> None:
    """A QR smeared by a 2.7 mm diagonal shake (with sensor noise, or seen 1.2 times taller
    than the markers say, as on a curled corner) decodes no more and its finder patterns
    correlate less than a sharp symbol's: they are looked for again at a fainter limit and at
    a taller size, and the modules sampled between them still match this page's payload."""
    index, rasters, _ = printed
    image, m = place(rasters[1], 0.0)
    x, y, w, h = index.geometry.qr_rect
    (x0, y0), (x1, y1) = (np.array([[x, y], [x + w, y + h]]) * PPM - 0.5) @ m[:, :2].T + m[:, 2]
    x0, y0, x1, y1 = int(x0) - 2, int(y0) - 2, int(x1) + 2, int(y1) + 2
    symbol = image[y0:y1, x0:x1].copy()
    taller = cv2.resize(symbol, (symbol.shape[1], round(symbol.shape[0] * stretch)))
    image[y0:y0 + taller.shape[0], x0:x1] = taller
    shake = np.eye(16, dtype=np.float32) / 16
    around = (slice(y0 - 20, y0 + taller.shape[0] + 20), slice(x0 - 20, x1 + 20))
    smeared = cv2.filter2D(image[around], cv2.CV_32F, shake).astype(np.float64)
    noisy = smeared + np.random.default_rng(0).normal(0.0, noise, smeared.shape)
    image[around] = np.clip(noisy, 0, 255).astype(np.uint8)
    assert align_page(image, index).key_page.pdf_page == 1


def test_damaged_qr_is_refused(printed) -> None:
    index, rasters, _ = printed
    image, m = place(rasters[0], 0.0)
    x, y, w, h = index.geometry.qr_rect
    (x0, y0), (x1, y1) = (np.array([[x, y], [x + w, y + h]]) * PPM - 0.5) @ m[:, :2].T + m[:, 2]
    rng = np.random.default_rng(1)
    patch = image[int(y0):int(y1), int(x0):int(x1)]
    patch[...] = np.where(rng.random(patch.shape) < 0.5, 0, 255).astype(np.uint8)
    with pytest.raises(QrUnreadable) as info:
        align_page(image, index)
    assert "QR" in info.value.message


def test_page_of_another_worksheet_names_it(printed, tmp_path: Path) -> None:
    index, rasters, _ = printed
    spec = load_spec(ROOT / "examples" / "linear-layer.yaml").model_copy(update={"seed": 77})
    other = publish(spec, tmp_path, None, 1, progress=lambda message: None)
    other_index = KeyIndex.load(other.key_json)
    assert other_index.worksheet_ids != index.worksheet_ids
    image, _ = place(rasters[0], 0.0)
    with pytest.raises(UnknownWorksheet) as info:
        align_page(image, other_index)
    assert index.worksheet_ids[0] in info.value.message


def test_empty_box_crop_is_blank_after_line_removal(printed) -> None:
    index, rasters, _ = printed
    image, _ = place(rasters[0], 3.0)
    result = align_page(image, index)
    for crop in [*result.crops.values(), *result.student_number_crops]:
        inside = crop[12:-12, 12:-12]  # the label above the box sits in the top margin
        assert np.percentile(inside, 0.5) > 200, "box lines left in an empty box"
        assert np.median(crop) >= 240


def test_every_field_of_a_blurred_photo_goes_to_review(printed) -> None:
    index, rasters, _ = printed
    image, _ = place(rasters[0], 3.0)
    aligned = align_page(image, index)
    sharp = read_all(aligned, Reader())
    assert not all(r.needs_review for r in sharp.values())
    blurred = dataclasses.replace(
        aligned, quality=dataclasses.replace(aligned.quality, edge_mm=READABLE_EDGE_MM + 0.3)
    )
    doubted = read_all(blurred, Reader())
    assert doubted.keys() == sharp.keys()
    assert all(isinstance(r, KeptReading) and r.needs_review and "too blurred" in r.review_reason
               for r in doubted.values())
    assert [r.text for r in doubted.values()] == [r.text for r in sharp.values()]


def test_line_removal_keeps_a_stroke_that_crosses_the_border() -> None:
    crop = np.full((160, 360), 250, np.uint8)
    crop[18:22, :] = 20  # the top border line, centred 20 px in
    crop[:, 18:22] = 20
    cv2.line(crop, (120, 5), (135, 80), 30, 5)  # a stroke through the top line
    lines = [CropLine(False, 19.5, 0.0, 359.0), CropLine(True, 19.5, 0.0, 159.0)]
    clean = remove_lines(crop, lines)
    assert clean[19:21, 250:350].min() > 200  # the line is gone away from the stroke
    assert clean[18:22, 40:100].min() > 200
    along = [clean[y, int(120 + (y - 5) * 15 / 75)] for y in range(17, 24)]
    assert max(along) < 120  # the stroke still crosses where the line was


def test_line_removal_keeps_a_stroke_written_along_the_line() -> None:
    crop = np.full((160, 360), 250, np.uint8)
    crop[18:22, :] = 150  # a grey printed top line
    crop[:, 18:22] = 150  # and the left side
    crop[40:140, 17:23] = 30  # a "1" written down the left side, darker than the line
    crop[17:23, 200:260] = 30  # the bar of a "7" along the top line
    lines = [CropLine(False, 19.5, 0.0, 359.0), CropLine(True, 19.5, 0.0, 159.0)]
    clean = remove_lines(crop, lines)
    assert clean[50:130, 18:22].max() < 80 and clean[18:22, 210:250].max() < 80
    assert clean[18:22, 100:180].min() > 200
    assert clean[150:158, 18:22].min() > 200


def test_line_removal_keeps_a_stroke_that_crosses_a_side_at_a_slant() -> None:
    crop = np.full((160, 360), 250, np.uint8)
    crop[:, 18:22] = 110  # the printed left side
    # Pencil strokes lighter than the line, crossing it 45 and about 27 degrees off square.
    cv2.line(crop, (0, 30), (40, 70), 160, 4)
    cv2.line(crop, (0, 100), (40, 120), 160, 4)
    clean = remove_lines(crop, [CropLine(True, 19.5, 0.0, 159.0)])
    assert max(clean[y, y - 30] for y in range(46, 55)) < 200  # joined across the side
    assert max(clean[round(100 + x / 2), x] for x in range(15, 25)) < 200
    assert clean[0:20, 17:23].min() > 200 and clean[140:160, 17:23].min() > 200


def test_line_darkness_percentile_is_numpys_to_the_bit() -> None:
    rng = np.random.default_rng(5)
    for size in (1, 2, 3, 7, 120, 321):
        for values in (rng.random(size).astype(np.float32) * 200,
                       np.round(rng.random(size) * 200).astype(np.float32)):
            for q in (0.0, 15.0, 50.0, 87.5, 100.0):
                assert _percentile(values, q) == float(np.percentile(values, q))


def random_crops() -> Iterator[np.ndarray]:
    """Lit 160 x 360 crops: noise, near-paper noise, and white paper."""
    rng = np.random.default_rng(11)
    yield rng.integers(0, 256, (160, 360)).astype(np.uint8)
    yield rng.integers(230, 256, (160, 360)).astype(np.uint8)
    yield np.full((160, 360), 255, np.uint8)


CROP_LINES = [CropLine(True, 19.5, 0.0, 159.0), CropLine(True, 338.2, 20.0, 140.0),
              CropLine(False, 19.5, 0.0, 359.0), CropLine(False, 141.0, 15.0, 300.0)]


def test_line_profiles_are_numpys_float32_means_to_the_bit() -> None:
    # Summed by OpenCV for speed; a last-bit difference could move a line's found band.
    for crop in random_crops():
        for line in CROP_LINES:
            found = _line_profile(crop, line)
            assert found is not None
            profile, lo = found
            a, b = round(line.start), round(line.end) + 1
            hi = lo + len(profile)
            band = crop[a:b, lo:hi] if line.vertical else crop[lo:hi, a:b].T
            expected = PAPER_TARGET - band.mean(axis=0, dtype=np.float32)
            assert profile.dtype == expected.dtype and np.array_equal(profile, expected)


def test_a_lines_search_window_holds_the_indices_near_its_position() -> None:
    rng = np.random.default_rng(13)
    for _ in range(3000):
        size = int(rng.integers(0, 40))
        centre = float(rng.uniform(-15, 55))
        for position in (centre, float(round(centre)), round(centre * 2) / 2):
            near = np.flatnonzero(np.abs(np.arange(size) - position) <= LINE_SEARCH_PX)
            expected = (int(near[0]), int(near[-1])) if near.size else None
            assert _near(position, size) == expected


def test_side_darkness_is_numpys_float32_sum_to_the_bit() -> None:
    for crop in random_crops():
        for line in CROP_LINES:
            near = round(line.position)
            for reach in ((near - 6, near + 6), (8, 7)):  # the second takes nothing across
                values = _darkness_along(crop, line, (0, 1), reach)
                assert values is not None
                start = round(line.start) + SIDE_WRITING_CORNER_PX
                end = round(line.end) - SIDE_WRITING_CORNER_PX
                first, across = reach[0], reach[1] + 1
                region = (crop[start:end, first:across] if line.vertical
                          else crop[first:across, start:end].T)
                dark = np.clip(PAPER_TARGET - region.astype(np.float32), 0.0, None)
                expected = dark.sum(axis=1)
                assert values.dtype == expected.dtype and np.array_equal(values, expected)


def test_ink_on_a_line_is_judged_as_float32_darkness_would_to_the_bit() -> None:
    rng = np.random.default_rng(12)
    for _ in range(400):
        rows, cols = int(rng.integers(1, 60)), int(rng.integers(1, 12))
        level = float(rng.integers(0, 256))
        band = np.clip(level + rng.normal(0, 60, (rows, cols)), 0, 255).astype(np.uint8)
        start = int(rng.integers(0, rows + 1))
        own = slice(start, int(rng.integers(start, rows + 2)))
        dark = PAPER_TARGET - band.astype(np.float32)
        peaks = dark[own].max(axis=1) if dark[own].size else dark.max(axis=1)
        expected = dark > _percentile(peaks, 15.0) + 45.0
        assert np.array_equal(_ink_on_line(band, own), expected)


def sided_box(*strokes: tuple[int, int, int, int]) -> np.ndarray:
    """A lit 160 x 360 crop of a box with grey printed sides and pencil ``strokes`` (grey 170,
    lighter than the lines, so line removal paints them out where they lie on a side)."""
    lines, pencil = np.ones((160, 360)), np.ones((160, 360))
    for x0, y0, x1, y1 in ((20, 20, 340, 20), (20, 140, 340, 140), (20, 20, 20, 140),
                           (340, 20, 340, 140)):
        cv2.line(lines, (x0, y0), (x1, y1), 120 / 250, 3)
    for x0, y0, x1, y1 in strokes:
        cv2.line(pencil, (x0, y0), (x1, y1), 170 / 250, 6)
    return np.round(250 * lines * pencil).astype(np.uint8)  # inks darken each other


def test_writing_on_a_box_side_is_measured_along_it() -> None:
    border = [CropLine(True, 19.5, 19.5, 139.5), CropLine(True, 339.5, 19.5, 139.5),
              CropLine(False, 19.5, 19.5, 339.5), CropLine(False, 139.5, 19.5, 339.5)]
    left, right = side_writing_mm(sided_box((16, 50, 24, 110)), border)  # a "1" on the left
    assert 5.0 <= left <= 7.0 and right == 0.0
    crossing = sided_box((320, 80, 355, 84))  # the tail of a digit across the right side
    assert side_writing_mm(crossing, border)[1] < 1.5
    assert side_writing_mm(sided_box(), border) == (0.0, 0.0)
    # A "1" down nearly the whole side: the side alone would take its darkness for its own.
    long_one = side_writing_mm(sided_box((342, 36, 345, 126)), border)
    assert long_one[0] == 0.0 and long_one[1] >= 7.0


def test_a_neighbours_side_beside_a_box_side_is_no_writing_on_it() -> None:
    """Student-number digit boxes of older sheets stand 1.5 mm apart: on a blurred page the
    neighbour's side lies within the reach of the measure, which must stop short of it."""
    border = [CropLine(True, 19.5, 19.5, 139.5), CropLine(True, 339.5, 19.5, 139.5),
              CropLine(False, 19.5, 19.5, 339.5), CropLine(False, 139.5, 19.5, 339.5)]
    neighbour = CropLine(True, 350.5, 19.5, 139.5)
    lit = sided_box()
    cv2.line(lit, (350, 20), (350, 140), 120, 3)
    assert side_writing_mm(lit, border)[1] >= 7.0  # taken for its own side's darkness
    bands = {line: _locate_line(lit, line) for line in [*border, neighbour]}
    assert side_writing_mm(lit, border, bands) == (0.0, 0.0)


def test_a_reading_that_leaves_out_writing_on_a_side_is_doubted() -> None:
    def crop_with(x: int) -> np.ndarray:
        crop = np.full((160, 360), 250, np.uint8)
        cv2.ellipse(crop, (x, 80), (18, 30), 0, 0, 360, 40, 6)  # a "0" centred at x
        return crop

    far, touching = crop_with(70), crop_with(42)  # 3.2 mm and 0.4 mm inside the left side
    zero, blank = Reading("0", "number", 0.999), Reading(None, "blank", 0.999)
    assert left_out_side(far, zero, (6.0, 0.0)) == "left"
    assert left_out_side(touching, zero, (6.0, 0.0)) is None  # its own digit on the side
    assert left_out_side(far, zero, (3.0, 0.0)) is None  # too short for a digit
    assert left_out_side(far, zero, (0.0, 6.0)) == "right"  # "01" with its "1" on the side
    assert left_out_side(np.full((160, 360), 250, np.uint8), blank, (0.0, 6.0)) == "right"
    remnant = far.copy()
    cv2.line(remnant, (20, 60), (21, 100), 40, 4)  # what line removal left of the "1"
    assert left_out_side(remnant, zero, (6.0, 0.0)) == "left"
    # What is left of a "1" written over the side can lie in the crop's margin, outside the
    # box, and be framed with the "0": only reading the box without it tells whether the
    # reading made anything of it.
    outside = far.copy()
    cv2.line(outside, (6, 55), (8, 105), 40, 4)
    assert left_out_side(outside, zero, (6.0, 0.0)) is None
    assert left_out_side(outside, zero, (6.0, 0.0), lambda crop: "0") == "left"
    ten = Reading("10", "number", 0.999)  # the "1" read: without it, the box reads "0"
    assert left_out_side(outside, ten, (6.0, 0.0), lambda crop: "0") is None
    assert left_out_side(touching, zero, (6.0, 0.0), lambda crop: "0") is None


def test_margins_with_a_neighbours_side_are_told() -> None:
    # Digits 1.5 mm apart, as older sheets print them: each margin holds the neighbour's side.
    digits = tuple(BoxSpec(f"student_number.{i + 1}", (40.0 + i * 11.5, 44.5, 10.0, 12.0))
                   for i in range(3))
    field = BoxSpec("q1", (40.0, 80.0, 32.0, 12.0))
    boxes = (*digits, field)
    assert [margins_with_lines(box, boxes) for box in boxes] == [
        (False, True), (True, True), (True, False), (False, False)]


def test_a_stroke_beyond_a_side_that_the_reading_leaves_out_is_doubted() -> None:
    # A "1" written just beyond the left side leaves no run on it: only its piece in the
    # crop's margin, framed with the "0", says it is there.
    zero, ten = Reading("0", "number", 0.999), Reading("10", "number", 0.999)
    crop = np.full((160, 360), 250, np.uint8)
    cv2.ellipse(crop, (70, 80), (18, 30), 0, 0, 360, 40, 6)
    plain = crop.copy()
    cv2.line(crop, (6, 55), (8, 105), 40, 4)
    assert left_out_side(crop, zero, (0.0, 0.0), lambda c: "0") == "left"
    assert left_out_side(crop, ten, (0.0, 0.0), lambda c: "0") is None  # the "1" was read
    assert left_out_side(crop, zero, (0.0, 0.0)) is None  # nothing to read it again with
    assert left_out_side(plain, zero, (0.0, 0.0), lambda c: "0") is None
    # Beyond a student-number digit's side lies its neighbour's, and what is left of it.
    assert left_out_side(crop, zero, (0.0, 0.0), lambda c: "0", (True, False)) is None
    # A fold's shadow runs on past the box, out of the crop's bottom or its outer end; a
    # curled edge's lies below the number.
    fold, across, curl = plain.copy(), plain.copy(), plain.copy()
    cv2.line(fold, (4, 60), (12, 159), 40, 4)
    cv2.line(across, (0, 60), (12, 100), 40, 4)
    cv2.line(curl, (6, 115), (8, 150), 40, 4)
    for shadow in (fold, across, curl):
        assert left_out_side(shadow, zero, (0.0, 0.0), lambda c: "0") is None
    mirrored = np.ascontiguousarray(crop[:, ::-1])
    assert left_out_side(mirrored, zero, (0.0, 0.0), lambda c: "0") == "right"


def simulated(printed, tier: str, seed: int, frame: tuple[int, int] | None) -> tuple:
    index, rasters, _ = printed
    rng = np.random.default_rng(seed)
    page = key_page(index, 0)
    boxes = {b.box_id: list(b.rect) for b in page.all_boxes}
    answers = {b: str(int(rng.integers(-99, 999))) for b in boxes}
    cap = simulate.simulate_page(rasters[0], PPM, boxes, answers, tier, rng, frame_size=frame)
    return index, cap


def crop_errors_from_capture(result: AlignedPage, cap: simulate.Capture) -> list[float]:
    errors = []
    for fit in result.box_fits:
        to_crop = np.linalg.inv(crop_to_photo(fit.h, fit.box.rect))
        q = cv2.perspectiveTransform(cap.box_quads[fit.box.box_id].reshape(-1, 1, 2), to_crop)
        cw, ch = crop_size(fit.box.rect)
        errors.append(float(np.linalg.norm(q.reshape(-1, 2).mean(axis=0)
                                           - [(cw - 1) / 2, (ch - 1) / 2])) / 10.0)
    return errors


@pytest.mark.parametrize(("tier", "seed", "frame"), [
    ("scan", 11, None), ("phone", 12, (2048, 1536)), ("hard", 16, (2592, 1944)),
])
def test_simulated_tiers_give_crops_centred_within_a_millimetre(printed, tier, seed, frame):
    index, cap = simulated(printed, tier, seed, frame)
    result = align_page(cap.image, index, AlignOptions(source=f"{tier}.jpg"))
    assert result.key_page.pdf_page == 0
    assert max(crop_centre_errors := crop_errors_from_capture(result, cap)) < 1.0, \
        crop_centre_errors


def test_alignment_uncertain_when_boxes_cannot_be_found(printed) -> None:
    index, rasters, _ = printed
    image, m = place(rasters[0], 0.0)
    page = key_page(index, 0)
    # Wipe every answer box and its border away, markers and QR intact.
    for box in page.all_boxes:
        x, y, w, h = box.rect
        corners = np.array([[x - 1, y - 1], [x + w + 1, y + h + 1]]) * PPM
        (x0, y0), (x1, y1) = corners @ m[:, :2].T + m[:, 2]
        image[int(y0):int(y1), int(x0):int(x1)] = 240
    with pytest.raises(AlignmentUncertain):
        align_page(image, index)


def shifted_box_photo(printed) -> tuple[np.ndarray, BoxSpec]:
    """A flat page photo with one answer box (border and all) moved 1 mm down."""
    index, rasters, _ = printed
    image, m = place(rasters[0], 0.0)
    page = key_page(index, 0)
    box = page.fields[len(page.fields) // 2]
    return moved_down(image, m, box, 1.0), box


def test_box_that_disagrees_with_its_neighbours_is_refused(printed) -> None:
    """A box whose border sits 1 mm from where its flat neighbours put it is not cropped.

    On a flat page every correction is near zero, so the neighbours predict the box to a
    few hundredths of a millimetre; a border found 1 mm away is either the wrong lines or a
    local deformation no neighbour knows about, and neither placement may be trusted.
    """
    index = printed[0]
    image, box = shifted_box_photo(printed)
    trace = AlignTrace()
    with pytest.raises(AlignmentUncertain, match=box.box_id):
        align_page(image, index, AlignOptions(max_unplaced=0), trace=trace)
    refused = next(f for f in trace.box_fits if f.box.box_id == box.box_id)
    assert not refused.trusted and "neighbours" in refused.note


def test_one_unplaced_box_is_sent_to_review_and_the_rest_is_read(printed) -> None:
    """By default the page is kept: the box is left unplaced, shown wider, never read."""
    index = printed[0]
    image, box = shifted_box_photo(printed)
    aligned = align_page(image, index)
    assert list(aligned.unplaced) == [box.box_id] and not aligned.fully_aligned
    view = aligned.crops[box.box_id]
    assert view.shape == aligned_view_shape(fit_of(aligned.box_fits, box))
    readings = read_all(aligned, Reader())
    lost = readings[box.box_id]
    assert lost.needs_review and lost.text is None and lost.confidence == 0.0
    assert "could not be placed safely" in getattr(lost, "review_reason", "")
    others = [r for name, r in readings.items() if name != box.box_id]
    assert others and not any("placed" in getattr(r, "review_reason", "") for r in others)


def test_a_page_with_too_many_unplaced_boxes_is_refused(printed) -> None:
    fits = align_page(place(printed[1][0], 0.0)[0], printed[0]).box_fits
    bent = [dataclasses.replace(f, trusted=i >= 3) for i, f in enumerate(fits)]
    assert untrusted(bent[:3] + fits[3:], "p", max_unplaced=2) is not None
    assert untrusted(bent[:2] + fits[2:], "p", max_unplaced=2) is None
    assert untrusted(bent[:2] + fits[2:], "p", max_unplaced=0) is not None
    small = bent[:2] + fits[2:7]  # 7 boxes: at most a quarter (1) may be unplaced
    assert untrusted(small, "p", max_unplaced=2) is not None


def test_folded_blurred_sheet_is_aligned(printed) -> None:
    """A hard-tier photo (folded, curled, 25 degrees steep, blurred) whose box sides scatter
    more than a sharp photo's: they are still taken as straight, and every crop is centred."""
    index, cap = simulated(printed, "hard", 304, (2592, 1944))
    assert cap.params["fold"] is not None
    result = align_page(cap.image, index, AlignOptions(source="folded.jpg"))
    assert result.key_page.pdf_page == 0
    assert result.boxes_found >= len(result.key_page.all_boxes) - 2
    assert max(errors := crop_errors_from_capture(result, cap)) < 1.0, errors


def test_second_look_tells_an_empty_prediction_from_a_border(printed) -> None:
    """A border the neighbours disagree with is kept only if nothing is where they put it.

    The box (border and all) is moved 1 mm down the page, as on the far side of a fold,
    and its border found there.  Where the page still shows the box at its printed place,
    the second look around the neighbours' placement finds that other border.  Where it
    does not, the second look finds nothing else: at most the moved border again, pulled
    a little towards the prediction, which is not a second border.
    """
    image, m, h, box, lines = flat_scene(printed)
    boxes = key_page(printed[0], 0).all_boxes
    moved = moved_down(image, m, box, 1.0)
    found = fit_box(moved, h, box, lines, window=Window.widest())
    assert found.found
    guess = Correction(np.array(box.centre), np.zeros(2), np.zeros((2, 2)), 0.5)
    both = np.minimum(image, moved)  # darker wins: the border at either place shows
    assert not _nothing_where_predicted(found, guess, 1.0, Scene(both, h, lines, boxes))
    assert _nothing_where_predicted(found, guess, 1.0, Scene(moved, h, lines, boxes))


def test_a_border_as_clear_as_the_others_is_kept_beyond_a_fold(printed) -> None:
    """A border the neighbours disagree with, found by the full search where they show a
    bend, is kept if it is as clear as the page's other boxes (whatever the second look
    finds, up to FOLD_FAR_MM away); a fainter one only if nothing is where they put it."""
    image, m, h, box, lines = flat_scene(printed)
    boxes = key_page(printed[0], 0).all_boxes
    moved = moved_down(image, m, box, 1.0)
    found = fit_box(moved, h, box, lines, window=Window.widest())
    guess = Correction(np.array(box.centre), np.zeros(2), np.zeros((2, 2)), 0.5)
    both = Scene(np.minimum(image, moved), h, lines, boxes)
    alone = Scene(moved, h, lines, boxes)
    typical = 0.3

    def kept(contrast: float, off: float, scene: Scene, uncertainty: float = 0.5) -> bool:
        bent = dataclasses.replace(guess, uncertainty=uncertainty)
        border = dataclasses.replace(found, contrast=contrast)
        return _beyond_a_fold(border, bent, off, typical, scene)

    assert kept(0.3, 1.0, both) and kept(0.3, FOLD_FAR_MM, both)
    assert not kept(0.3, FOLD_FAR_MM + 0.5, alone)
    assert not kept(0.2, 1.0, both) and kept(0.2, 1.0, alone)
    assert not kept(1.0, 1.0, alone)  # the fast path measured no contrast
    assert not kept(0.3, 1.0, alone, uncertainty=0.1)  # neighbours that agree: no bend


def test_lost_digit_is_placed_between_its_rows_neighbours_only_if_the_row_is_even(
    printed,
) -> None:
    """A student-number digit whose border is lost is placed between the found digits on
    either side, within half a millimetre; not if the row bends unevenly next to it, but
    still if it does so only beyond them."""
    index, rasters, _ = printed
    image, m = place(rasters[0], 4.0)
    result = align_page(image, index)
    digits = [i for i, f in enumerate(result.box_fits) if f.box.box_id.startswith("student")]
    assert len(digits) >= 5
    middle = len(digits) // 2
    lost = digits[middle]
    fits = list(result.box_fits)
    fits[lost] = dataclasses.replace(fits[lost], found=False, trusted=False, note="lost")
    placed = _from_row(lost, fits, result.homography)
    assert placed.trusted and "row" in placed.note
    fits[lost] = placed
    result.box_fits[:] = fits
    assert crop_centre_errors_mm(result, m)[lost] < 0.5
    fits[lost] = dataclasses.replace(fits[lost], found=False, trusted=False, note="lost")
    even = list(fits)
    for bent, refused in ((digits[middle + 2], True), (digits[0], False)):
        fits = list(even)
        moved = fits[bent].shift_mm + np.array([0.0, 1.5])
        fits[bent] = dataclasses.replace(fits[bent], shift_mm=moved)
        assert _from_row(lost, fits, result.homography).trusted is not refused


def flat_student_row(printed) -> tuple[np.ndarray, np.ndarray, AlignTrace, AlignedPage, list[int]]:
    """A flat page 1 aligned: image, true mapping, trace, result and the indices of its
    student-number digits among the box fits."""
    index, rasters, _ = printed
    image, m = place(rasters[0], 4.0)
    trace = AlignTrace()
    result = align_page(image, index, trace=trace)
    assert trace.fit is not None
    digits = [i for i, f in enumerate(result.box_fits) if f.box.box_id.startswith("student")]
    assert len(digits) >= 5
    return image, m, trace, result, digits


@pytest.mark.parametrize("which", ["middle", "end"])
def test_a_lost_digit_is_found_again_where_its_row_puts_it(printed, which: str) -> None:
    """A digit whose border the page-wide search missed is searched again in a narrow window
    where its row's found digits put it (between them, or beyond the two nearest at an end of
    the row), and found by its own border; not where its border is gone."""
    image, m, trace, result, digits = flat_student_row(printed)
    assert trace.fit is not None
    lost = digits[len(digits) // 2] if which == "middle" else digits[-1]
    fits = list(result.box_fits)
    fits[lost] = dataclasses.replace(fits[lost], found=False, note="border not found")
    lines = LineModel.for_blur(result.quality.edge_mm)
    boxes = tuple(f.box for f in fits)
    scene = Scene(image, trace.fit.h, lines, boxes)
    again = _search_where_row_puts(lost, fits, scene)
    assert again.found and again.note == "found where its row puts it"
    fits[lost] = again
    result.box_fits[:] = fits
    assert crop_centre_errors_mm(result, m)[lost] < 0.3
    x0, y0, x1, y1 = box_span_px(m, fits[lost].box, 1.0)
    blank = image.copy()
    blank[y0:y1, x0:x1] = 255
    fits[lost] = dataclasses.replace(fits[lost], found=False, note="border not found")
    gone = _search_where_row_puts(lost, fits, Scene(blank, trace.fit.h, lines, boxes))
    assert not gone.found


def test_lost_digits_between_far_apart_found_ones_are_found_one_after_another(printed) -> None:
    """With only the two end digits of the student-number row found, the lost ones between
    are searched for next to a found one, where the row's found digits put them, and each
    digit found lets the next be searched: the whole row is found by its borders."""
    image, m, trace, result, digits = flat_student_row(printed)
    assert trace.fit is not None
    fits = list(result.box_fits)
    for i in digits[1:-1]:
        fits[i] = dataclasses.replace(fits[i], found=False, note="border not found")
    lines = LineModel.for_blur(result.quality.edge_mm)
    _search_rows(fits, Scene(image, trace.fit.h, lines, tuple(f.box for f in fits)))
    assert all(fits[i].found and fits[i].note == "found where its row puts it"
               for i in digits[1:-1])
    result.box_fits[:] = fits
    errors = crop_centre_errors_mm(result, m)
    assert max(errors[i] for i in digits) < 0.3


def test_a_digit_found_far_from_where_its_row_puts_it_is_searched_again(printed) -> None:
    """A found digit whose border stands more than 3 mm from where its row's found digits
    put it is marked lost (to be searched for again there); 1 mm off, it is kept."""
    _, _, _, result, digits = flat_student_row(printed)
    for moved_mm, refused in ((1.0, False), (4.0, True)):
        fits = list(result.box_fits)
        end = digits[-1]
        move = np.array([0.0, moved_mm])
        fits[end] = dataclasses.replace(fits[end], shift_mm=fits[end].shift_mm + move,
                                        corner_shifts_mm=fits[end].corner_shifts_mm + move)
        _refuse_off_their_row(fits)
        assert fits[end].found is not refused
        assert fits[end].trusted
        assert all(fits[i].found for i in digits[:-1])
        assert ("from where its row puts it" in fits[end].note) is refused


def test_an_end_digit_is_judged_only_by_the_two_digits_next_to_it(printed) -> None:
    """Between found neighbours the row check reaches digits three apart, but an end digit,
    where the row is extrapolated, is judged only from the two digits next to it: from
    further along, a sheet's curl puts a rightly found end digit millimetres off."""
    _, _, _, result, digits = flat_student_row(printed)
    fits = list(result.box_fits)
    end, beside = digits[-1], digits[-2]
    assert _row_placement(end, fits, ROW_OFF_SPAN_MM, ROW_SPAN_MM) is not None
    fits[beside] = dataclasses.replace(fits[beside], found=False, note="border not found")
    assert _row_placement(end, fits, ROW_OFF_SPAN_MM, ROW_SPAN_MM) is None
    placement = _row_placement(beside, fits, ROW_OFF_SPAN_MM, ROW_SPAN_MM)
    assert placement is not None and not placement[1]


@pytest.mark.parametrize("pattern", ["lost beside it", "beside an end"])
def test_a_wrong_digit_is_judged_by_found_digits_two_away(printed, pattern: str) -> None:
    """A digit found 4 mm off is refused when its row's nearest found digits stand two
    digits away on one side (the digit between lost); and beside an end digit whose own
    placement the wrong digit moves twice as far, it is the wrong digit that goes, not the
    end digit."""
    _, _, _, result, digits = flat_student_row(printed)
    assert len(digits) == 6
    fits = list(result.box_fits)
    if pattern == "lost beside it":
        lost, wrong, end = digits[2], digits[3], None
    else:
        lost, wrong, end = digits[3], digits[4], digits[5]
    fits[lost] = dataclasses.replace(fits[lost], found=False, note="border not found")
    move = np.array([0.0, 4.0])
    fits[wrong] = dataclasses.replace(fits[wrong], shift_mm=fits[wrong].shift_mm + move,
                                      corner_shifts_mm=fits[wrong].corner_shifts_mm + move)
    _refuse_off_their_row(fits)
    assert not fits[wrong].found and "from where its row puts it" in fits[wrong].note
    assert all(fits[i].found for i in digits if i not in (lost, wrong))
    if end is not None:
        assert fits[end].note == ""


def test_a_row_found_one_box_along_is_refused(printed) -> None:
    """A row of equal boxes found one box along from where it is printed (each digit on its
    neighbour's border) has a printed box beyond its end: every box of the row is refused.
    The row where it is printed is kept."""
    image, _, trace, result, digits = flat_student_row(printed)
    assert trace.fit is not None
    fits = list(result.box_fits)
    row = _row_of(digits[0], fits)
    assert row == digits
    scene = Scene(image, trace.fit.h, LineModel.for_blur(result.quality.edge_mm),
                  tuple(f.box for f in fits))
    kept = list(fits)
    _refuse_row_one_box_off(row, kept, scene)
    assert all(kept[i].found and kept[i].trusted for i in row)
    pitch = fits[row[1]].box.centre[0] - fits[row[0]].box.centre[0]
    along = list(fits)
    for i in row:
        along[i] = dataclasses.replace(fits[i], corner_shifts_mm=fits[i].corner_shifts_mm
                                       + np.array([pitch, 0.0]))
    along[row[-1]] = dataclasses.replace(along[row[-1]], found=False)  # nothing beyond
    _refuse_row_one_box_off(row, along, scene)
    assert not any(along[i].found or along[i].trusted for i in row)
    assert "one box along" in along[row[0]].note


def test_align_command_names_an_unplaced_box(printed, tmp_path: Path, capsys) -> None:
    folder = printed[2]
    image, box = shifted_box_photo(printed)
    photo = tmp_path / "bent.png"
    cv2.imwrite(str(photo), image)
    parser = argparse.ArgumentParser()
    align_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["align", "--key", str(folder / "key.json"), str(photo),
                              "--out", str(tmp_path / "crops")])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert f"box {box.box_id} could not be placed safely" in text
    assert text.strip().splitlines()[-1] == (
        "Aligned 1 of 1 page(s) (1 box(es) left unplaced, to check by eye)")
    written = {p.name for p in (tmp_path / "crops" / "001_bent.png").iterdir()}
    assert f"{box.box_id}.unplaced.png" in written and f"{box.box_id}.png" not in written


def test_grading_sends_an_unplaced_box_to_review_and_says_so(printed) -> None:
    index = printed[0]
    image, box = shifted_box_photo(printed)
    graded = grade_page(image, index, Reader(), "bent.png")
    field = next(f for f in graded.result.fields if f.field_id == box.box_id)
    assert field.verdict == "review" and field.reason.startswith(UNPLACED_REASON)
    assert field.read is None and field.points == 0.0
    unplaced_fit = fit_of(align_page(image, index).box_fits, box)
    assert graded.crops[box.box_id].shape == aligned_view_shape(unplaced_fit)
    line = page_line(PageDone(1, graded.result, None), GradeSummary("w"), 1.0)
    assert "1 box(es) could not be placed" in line


def test_a_box_doubted_for_writing_on_its_side_is_kept_wider_for_review(printed) -> None:
    """Its crop lost the side, and what was written on it, with line removal."""
    index, rasters, _ = printed
    image, _ = place(rasters[0], 0.0)
    aligned = align_page(image, index)
    box = key_page(index, 0).fields[0]
    reason = SIDE_WRITING_REASON.format(side="left") + "; check what is written there"
    readings = {box.box_id: KeptReading("6", "number", 0.99, [], True, reason),
                "other": KeptReading("7", "number", 0.5, [], True, "reader unsure")}
    views = side_views(image, aligned, readings)
    assert list(views) == [box.box_id]
    width, height = region_size(box.rect, SIDE_VIEW_MARGIN_MM, CROP_PX_PER_MM)
    assert views[box.box_id].shape == (height, width)
    margin = round(SIDE_VIEW_MARGIN_MM * CROP_PX_PER_MM)
    side = views[box.box_id][margin + 20 : height - margin - 20, margin - 5 : margin + 6]
    assert side.min(axis=1).max() < 150  # the printed side is still there, all along


def test_grading_stores_the_wider_view_of_a_box_doubted_for_its_side(printed,
                                                                      monkeypatch) -> None:
    index, rasters, _ = printed
    image, _ = place(rasters[0], 0.0)
    box = key_page(index, 0).fields[0]
    reason = SIDE_WRITING_REASON.format(side="right")

    def doubting_one(aligned, reader):
        readings = read_all(aligned, reader)
        readings[box.box_id] = KeptReading("6", "number", 0.99, [], True, reason)
        return readings

    monkeypatch.setattr(grade_module, "read_all", doubting_one)
    graded = grade_page(image, index, Reader(), "side.png")
    width, height = region_size(box.rect, SIDE_VIEW_MARGIN_MM, CROP_PX_PER_MM)
    assert graded.crops[box.box_id].shape == (height, width)
    other = key_page(index, 0).fields[1]  # its usual crop
    assert graded.crops[other.box_id].shape == crop_size(other.rect)[::-1]


def fit_of(fits: list[BoxFit], box: BoxSpec) -> BoxFit:
    return next(f for f in fits if f.box.box_id == box.box_id)


def aligned_view_shape(fit: BoxFit) -> tuple[int, int]:
    """(H, W) of an unplaced box's review view: at least REVIEW_VIEW_MARGIN_MM around it."""
    margin = review_margin_mm(fit)
    assert REVIEW_VIEW_MARGIN_MM <= margin <= MAX_REVIEW_VIEW_MARGIN_MM
    width, height = region_size(fit.box.rect, margin, CROP_PX_PER_MM)
    return height, width


def test_a_refused_border_records_how_far_the_box_may_be_from_its_view(printed) -> None:
    """A border 1 mm from where flat neighbours put it stays where it is, unplaced: the box
    may as well be where the neighbours put it, and its view reaches there."""
    image, box = shifted_box_photo(printed)
    lost = fit_of(align_page(image, printed[0]).box_fits, box)
    assert not lost.trusted and not lost.found
    assert 0.9 <= lost.disputed_mm <= 1.5 and lost.uncertainty_mm < 0.3
    far = dataclasses.replace(lost, disputed_mm=REVIEW_VIEW_MARGIN_MM + 1.0)
    assert review_margin_mm(far) >= far.disputed_mm + REVIEW_MARGIN_PER_UNCERTAINTY * \
        lost.uncertainty_mm


def wiped_box_scene(printed) -> tuple[np.ndarray, AlignTrace, BoxSpec, LineModel]:
    """A flat page with one answer box painted out, aligned: photo, trace, box, line model."""
    index, rasters, _ = printed
    image, m = place(rasters[0], 0.0)
    page = key_page(index, 0)
    box = page.fields[len(page.fields) // 2]
    x0, y0, x1, y1 = box_span_px(m, box, 1.0)
    image[y0:y1, x0:x1] = 250
    trace = AlignTrace()
    result = align_page(image, index, trace=trace)
    return image, trace, box, LineModel.for_blur(result.quality.edge_mm)


def test_a_box_not_found_records_the_uncertainty_of_its_placement(printed) -> None:
    """A box whose border is not found keeps the uncertainty of the prediction that placed
    it, also when its neighbours then cannot place it better; with no prediction, infinity."""
    image, trace, box, lines = wiped_box_scene(printed)
    assert trace.fit is not None
    guess = Correction(np.array(box.centre), np.zeros(2), np.zeros((2, 2)), 1.7)
    missed = fit_box(image, trace.fit.h, box, lines, guess)
    assert not missed.found and missed.uncertainty_mm == pytest.approx(1.7)
    assert fit_box(image, trace.fit.h, box, lines).uncertainty_mm == np.inf
    # Neighbours that disagree by millimetres cannot place it within 0.3 mm.
    centre = np.array(box.centre)
    points = centre + np.array([[-20.0, 0.0], [20.0, 0.0], [0.0, -20.0], [0.0, 20.0]])
    shifts = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    anchors = Anchors(points, shifts, np.arange(4))
    left = _from_neighbours(missed, trace.fit.h, anchors)
    assert not left.trusted and left.uncertainty_mm == pytest.approx(1.7)


def test_the_review_view_widens_with_the_uncertainty(printed) -> None:
    image, box = shifted_box_photo(printed)
    lost = dataclasses.replace(fit_of(align_page(image, printed[0]).box_fits, box),
                               disputed_mm=0.0, found_distance_mm=0.0)
    sure = dataclasses.replace(lost, uncertainty_mm=0.1)
    assert review_margin_mm(sure) == REVIEW_VIEW_MARGIN_MM
    assert review_view(image, sure).shape == aligned_view_shape(sure)
    wide_margin = (REVIEW_VIEW_MARGIN_MM + MAX_REVIEW_VIEW_MARGIN_MM) / 2
    loose = dataclasses.replace(lost, uncertainty_mm=wide_margin / REVIEW_MARGIN_PER_UNCERTAINTY)
    assert review_margin_mm(loose) == pytest.approx(wide_margin)
    view = review_view(image, loose)
    assert view.shape == aligned_view_shape(loose)
    assert view.shape[0] > review_view(image, sure).shape[0]


def test_a_page_whose_unplaced_box_is_too_uncertain_for_any_view_is_refused(printed) -> None:
    """Within the allowance of unplaced boxes, a box that no readable view surely shows
    still refuses the page, naming the box."""
    fits = align_page(place(printed[1][0], 0.0)[0], printed[0]).box_fits
    limit = MAX_REVIEW_VIEW_MARGIN_MM / REVIEW_MARGIN_PER_UNCERTAINTY

    def lost_with(uncertainty: float) -> list[BoxFit]:
        lost = dataclasses.replace(fits[0], found=False, trusted=False, note="border not found",
                                   uncertainty_mm=uncertainty)
        return [lost, *fits[1:]]

    assert untrusted(lost_with(0.9 * limit), "p.jpg", max_unplaced=2) is None
    for too_far in (1.1 * limit, np.inf):
        refusal = untrusted(lost_with(too_far), "p.jpg", max_unplaced=2)
        assert isinstance(refusal, AlignmentUncertain)
        assert fits[0].box.box_id in refusal.message and "photograph it again" in refusal.message
        assert f"more than {MAX_REVIEW_VIEW_MARGIN_MM:.0f} mm off" in refusal.message


def test_a_box_not_found_records_how_far_the_nearest_found_box_is(printed) -> None:
    """From the box's centre to the nearest centre or corner of a box found by its border;
    boxes not found do not count, and with none found the box cannot be placed at all."""
    _, trace, box, _ = wiped_box_scene(printed)
    fits = trace.box_fits
    lost = fit_of(fits, box)
    assert not lost.found and 0.0 < lost.found_distance_mm < 40.0
    assert lost.found_distance_mm == pytest.approx(found_distance_mm(box, fits))
    assert all(f.found_distance_mm == 0.0 for f in fits if f.found)
    centre = np.array(box.centre)
    nearest = min((f for f in fits if f.found),
                  key=lambda f: np.linalg.norm(np.array(f.box.centre) - centre))
    assert lost.found_distance_mm <= np.linalg.norm(np.array(nearest.box.centre) - centre)
    without = [dataclasses.replace(f, found=False) if f is nearest else f for f in fits]
    assert found_distance_mm(box, without) > lost.found_distance_mm
    assert found_distance_mm(box, [dataclasses.replace(f, found=False) for f in fits]) == np.inf


def lost_first_box(printed, uncertainty: float, distance: float) -> list[BoxFit]:
    """A flat page's box fits with the first box left unplaced: its prediction's uncertainty
    and its distance to the nearest found box (mm) as given."""
    fits = align_page(place(printed[1][0], 0.0)[0], printed[0]).box_fits
    lost = dataclasses.replace(fits[0], found=False, trusted=False, note="border not found",
                               uncertainty_mm=uncertainty, found_distance_mm=distance)
    return [lost, *fits[1:]]


def test_a_box_next_to_found_boxes_keeps_a_narrow_view(printed) -> None:
    """Near found boxes the view widens with the prediction's uncertainty only, and a bend
    that makes the neighbours disagree by 3 mm still leaves the page usable."""
    sure = lost_first_box(printed, uncertainty=0.3, distance=8.8)  # a student-number digit
    assert review_margin_mm(sure[0]) == REVIEW_VIEW_MARGIN_MM
    bent = lost_first_box(printed, uncertainty=3.0, distance=20.9)  # the layout's spacing
    assert review_margin_mm(bent[0]) == pytest.approx(REVIEW_MARGIN_PER_UNCERTAINTY * 3.0)
    assert review_margin_mm(bent[0]) <= 15.0
    assert untrusted(bent, "p.jpg", max_unplaced=2) is None


def test_a_box_far_from_every_found_box_widens_its_view_or_refuses_the_page(printed) -> None:
    """A group of boxes lost together far from any found box (under a fold) can be placed
    far off however well the neighbours agree: the distance widens the view, and a box 40
    mm or more from every found box refuses the page."""
    limit = MAX_REVIEW_VIEW_MARGIN_MM / (REVIEW_MARGIN_PER_UNCERTAINTY *
                                         UNCERTAINTY_PER_FOUND_DISTANCE)
    assert limit <= 40.0
    near = lost_first_box(printed, uncertainty=0.3, distance=20.9)
    wider = lost_first_box(printed, uncertainty=0.3, distance=0.9 * limit)
    assert review_margin_mm(wider[0]) > review_margin_mm(near[0])
    assert untrusted(wider, "p.jpg", max_unplaced=2) is None
    for distance in (1.1 * limit, np.inf):
        refusal = untrusted(lost_first_box(printed, 0.3, distance), "p.jpg", max_unplaced=2)
        assert isinstance(refusal, AlignmentUncertain)
        assert f"more than {MAX_REVIEW_VIEW_MARGIN_MM:.0f} mm off" in refusal.message


@pytest.mark.parametrize(("needed", "uncertainty", "distance"), [
    (8.92, 2.13, 23.6),  # the worst box near found ones on development pages
    (6.73, 1.07, 20.9),
    (9.00, 0.95, 80.3),  # two boxes lost together, far from any found box
    (10.13, 1.51, 94.1),
    (19.25, 3.56, 108.8),
])
def test_development_pages_unplaced_boxes_are_in_their_views_or_refused(
    needed: float, uncertainty: float, distance: float
) -> None:
    """Unplaced boxes measured on development pages (bench/align_failures.py --unplaced):
    the margin each needed to be shown whole, its prediction's uncertainty, its distance to
    the nearest found box (mm).  Each view holds its box, or the page is refused."""
    box = BoxSpec("q.a", (50.0, 50.0, 32.0, 12.0))
    fit = BoxFit(box, np.zeros((4, 2)), np.eye(3), False, np.zeros(2), 0.0, trusted=False,
                 uncertainty_mm=uncertainty, found_distance_mm=distance)
    margin = review_margin_mm(fit)
    assert needed <= margin or margin > MAX_REVIEW_VIEW_MARGIN_MM


def test_a_box_washed_out_by_glare_is_left_for_review_unless_too_many_are(printed) -> None:
    """A box whose border is lost in clipped white, on a sheet whose paper is grey elsewhere,
    is left unplaced (the teacher checks the paper); past the allowance the page is refused
    as overexposed, as it is with the strict rule."""
    image = place(printed[1][0], 0.0)[0]
    fits = align_page(image, printed[0]).box_fits
    dim = (image.astype(np.float32) * 0.8).astype(np.uint8)  # paper about 200
    lost = [dataclasses.replace(f, found=False) for f in fits[:3]]
    for f in lost:
        x0, y0 = np.floor(f.corners_px.min(axis=0)).astype(int)
        x1, y1 = np.ceil(f.corners_px.max(axis=0)).astype(int)
        dim[y0 : y1 + 1, x0 : x1 + 1] = 255
    one = lost[:1] + [dataclasses.replace(f) for f in fits[1:]]
    glared = mark_glare(dim, one, paper_level=200.0)
    assert [f.box.box_id for f in glared] == [fits[0].box.box_id]
    assert not one[0].trusted and one[0].note == GLARE_NOTE
    check_glare(glared, one, max_unplaced=2, source="p.jpg")  # left for review
    with pytest.raises(Overexposed, match=r"p\.jpg: glare washes out box"):
        check_glare(glared, one, max_unplaced=0, source="p.jpg")
    three = lost + [dataclasses.replace(f) for f in fits[3:]]
    with pytest.raises(Overexposed):
        check_glare(mark_glare(dim, three, 200.0), three, max_unplaced=2, source="p.jpg")


def flat_scene(printed) -> tuple[np.ndarray, np.ndarray, np.ndarray, BoxSpec, LineModel]:
    """A flat page photo, its raster-to-photo map, page homography, middle box, line model."""
    index, rasters, _ = printed
    image, m = place(rasters[0], 0.0)
    trace = AlignTrace()
    result = align_page(image, index, trace=trace)
    assert trace.fit is not None
    page = key_page(index, 0)
    box = page.fields[len(page.fields) // 2]
    return image, m, trace.fit.h, box, LineModel.for_blur(result.quality.edge_mm)


def found_width_mm(fit: BoxFit, m: np.ndarray) -> float:
    """Mean width of the found border's top and bottom sides, in page mm."""
    top, bottom = fit.corners_px[1] - fit.corners_px[0], fit.corners_px[2] - fit.corners_px[3]
    return float(np.mean([np.linalg.norm(top), np.linalg.norm(bottom)])) / m[0, 0] / PPM


def test_a_box_squeezed_by_a_curl_is_found_at_its_squeezed_size(printed) -> None:
    """A sheet curling away from the camera shortens a box by up to a fifth along the curl:
    its border is still found, at the size it has in the photo."""
    image, m, h, box, lines = flat_scene(printed)
    x0, y0, x1, y1 = box_span_px(m, box, 1.2)
    patch = image[y0:y1, x0:x1].copy()
    narrow = round(0.85 * (x1 - x0))
    image[y0:y1, x0:x1] = 255
    left = x0 + (x1 - x0 - narrow) // 2
    image[y0:y1, left:left + narrow] = cv2.resize(patch, (narrow, y1 - y0),
                                                  interpolation=cv2.INTER_AREA)
    fit = fit_box(image, h, box, lines)
    assert fit.found
    assert found_width_mm(fit, m) == pytest.approx(0.85 * box.rect[2], abs=0.4)


def test_a_dark_stroke_beside_a_faint_side_does_not_hide_the_side(printed) -> None:
    """A handwritten stroke just inside a side that prints faintly (in shadow) scores better
    than the side itself; the corners show it is not one, and the side is found."""
    image, m, h, box, lines = flat_scene(printed)
    x, y, w, bh = box.rect
    right = round((x + w) * PPM * m[0, 0] + m[0, 2])
    top, bottom = (round(v * PPM * m[1, 1] + m[1, 2]) for v in (y, y + bh))
    side = image[top - 4:bottom + 5, right - 3:right + 4]
    image[top - 4:bottom + 5, right - 3:right + 4] = 255 - (255 - side) // 2
    stroke_x = right - round(3.0 * PPM)
    cv2.line(image, (stroke_x, top + round(1.5 * PPM)), (stroke_x, bottom - round(1.5 * PPM)),
             0, 3)
    fit = fit_box(image, h, box, lines)
    assert fit.found
    assert found_width_mm(fit, m) == pytest.approx(w, abs=0.3)


def test_a_box_bowed_by_a_curl_is_found(printed) -> None:
    """On a curled sheet a long box's top and bottom sides bow: towards the corners they
    stray from the straight course fitted to their middle, and the corners are still seen."""
    image, m, h, box, lines = flat_scene(printed)
    x0, y0, x1, y1 = box_span_px(m, box, 1.2)
    patch = image[y0:y1, x0:x1].astype(np.float32)
    ph, pw = patch.shape
    xs, ys = np.meshgrid(np.arange(pw, dtype=np.float32), np.arange(ph, dtype=np.float32))
    bow = 0.7 * PPM * ((xs - pw / 2) / (pw / 2)) ** 2  # 0.7 mm at the box's ends
    image[y0:y1, x0:x1] = cv2.remap(patch, xs, ys - bow, cv2.INTER_LINEAR,
                                    borderValue=255).astype(np.uint8)
    fit = fit_box(image, h, box, lines)
    assert fit.found


def shaken(image: np.ndarray, mm: float, seed: int, level: bool = False) -> np.ndarray:
    """``image`` as a camera shaken ``mm`` along the diagonal (or ``level``, along the rows)
    sees it: two copies that far apart, softened and with sensor noise.  The shake dwells
    unevenly, so which copy is the darker changes every few millimetres across the page."""
    step_x = mm / 2 * PPM / (1.0 if level else np.sqrt(2))
    step_y = 0.0 if level else step_x
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    dwell = 0.5 + 0.1 * np.sign(np.sin(2 * np.pi * (xs + ys) / (7.0 * PPM)))
    both = np.zeros(image.shape, np.float32)
    for sign, weight in ((-1, dwell), (1, 1.0 - dwell)):
        shift = np.array([[1, 0, sign * step_x], [0, 1, sign * step_y]], dtype=np.float32)
        copy = cv2.warpAffine(image, shift, (image.shape[1], image.shape[0]),
                              flags=cv2.INTER_LINEAR, borderValue=255)
        both += (weight * copy).astype(np.float32)
    soft = cv2.GaussianBlur(both, (0, 0), 0.15 * PPM)
    noisy = soft + np.random.default_rng(seed).normal(0.0, 6.0, soft.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_box_seen_double_by_a_shaken_camera_is_found(printed, seed: int) -> None:
    """A shaken camera shows each printed line twice, 1.2 mm apart, the darker copy
    changing along a side.  Taken as a sharp line's, the side's position jumps between the
    copies and the side looks bent; measured over the blurred line's whole spread, the box is
    found, centred between its two images."""
    image, m, h, box, _ = flat_scene(printed)
    fit = fit_box(shaken(image, 1.2, seed), h, box, LineModel.for_blur(0.9))
    assert fit.found, fit.note
    x, y, w, bh = box.rect
    centre_px = (np.array([x + w / 2, y + bh / 2]) * PPM - 0.5) @ m[:, :2].T + m[:, 2]
    off_mm = float(np.linalg.norm(fit.corners_px.mean(axis=0) - centre_px)) / PPM
    assert off_mm < 0.15


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_box_seen_double_across_its_sides_is_found_far_from_its_prediction(
    printed, seed: int
) -> None:
    """Shaken 1 mm along the rows, a box's left and right sides are each seen twice, and
    the top and bottom run on from one copy to the other: a pair of sides on one copy each
    fails at the corners.  Searched over a wide window (neighbours far or unsure) with the
    copies' responses merged, the box is found nearer its centre than either copy."""
    image, m, h, box, _ = flat_scene(printed)
    fit = fit_box(shaken(image, 1.0, seed, level=True), h, box, LineModel.for_blur(0.9),
                  window=Window.widest(), merge_copies=True)
    assert fit.found, fit.note
    x, y, w, bh = box.rect
    centre_px = (np.array([x + w / 2, y + bh / 2]) * PPM - 0.5) @ m[:, :2].T + m[:, 2]
    off_mm = float(np.linalg.norm(fit.corners_px.mean(axis=0) - centre_px)) / PPM
    assert off_mm < 0.3


def test_a_lines_two_copies_merge_into_one_response_unless_a_neighbour_is_near() -> None:
    """Two copies of a line 1.2 mm apart respond as one line midway once merged; beside a
    student-number digit's neighbour, 1.5 mm off, the responses are left as they are."""
    ppm = 8
    rows = np.arange(200, dtype=np.float32)[:, None]
    copies = sum(np.exp(-((rows - c) ** 2) / 8.0) for c in (96 - 5, 96 + 5))  # 10 px apart
    response = np.repeat(0.3 * copies, 60, axis=1).astype(np.float32)
    assert response[96, 30] < 0.5 * response[91, 30]  # two lines, not one
    maps = SideMaps(response, response, lambda: response)
    lines = LineModel.for_blur(1.1)
    merged = _merge_copies(maps, lines, (96.0, 176.0), (300.0,))
    assert merged is not maps
    assert int(np.argmax(merged.first[:, 30])) == 96
    assert merged.both[96, 30] == merged.first[96, 30]
    assert _merge_copies(maps, lines, (96.0, 176.0), (176.0 + 1.5 * ppm,)) is maps
