"""Photo simulator: ground truth matches the pixels, captures are reproducible and well-formed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from grader.io import PageInput, iter_pages
from grader.simulate import (
    PHONE_FRAMES,
    SCAN_DPIS,
    TIERS,
    Capture,
    TierSpec,
    save_heic,
    save_jpeg,
    simulate_capture,
    simulate_page,
    write_answers,
)
from grader.simulate_geometry import CameraGeometry, Curl, FlatbedGeometry, Fold, page_outline

PPM = 6.0  # px per mm of the synthetic page (about 150 dpi keeps the tests quick)
PAGE_MM = (210.0, 297.0)
# Solid "boxes" spread over the page, two of them near corners where curl bends the paper most.
BOXES = {
    "near_tl": (12.0, 14.0, 40.0, 22.0),
    "middle": (85.0, 130.0, 45.0, 26.0),
    "right": (150.0, 70.0, 42.0, 24.0),
    "near_br": (158.0, 262.0, 40.0, 22.0),
    "low_left": (20.0, 220.0, 44.0, 24.0),
}


def blank_page() -> np.ndarray:
    """White A4 page (H, W) uint8 at PPM px/mm."""
    return np.full((round(PAGE_MM[1] * PPM), round(PAGE_MM[0] * PPM)), 255, np.uint8)


def page_with_solid_boxes() -> np.ndarray:
    """The blank page with every box of BOXES filled black (pixels whose centre is inside)."""
    page = blank_page()
    for x, y, w, h in BOXES.values():
        page[round(y * PPM) : round((y + h) * PPM), round(x * PPM) : round((x + w) * PPM)] = 0
    return page


def capture(
    page: np.ndarray,
    tier: str | TierSpec,
    seed: int,
    crop_edge: bool = False,
    frame_size: tuple[int, int] | None = None,
) -> Capture:
    rng = np.random.default_rng(seed)
    return simulate_capture(page, PPM, BOXES, tier, rng, crop_edge=crop_edge, frame_size=frame_size)


def quad_mask(quad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(quad * 16).astype(np.int32)], (1,), cv2.LINE_8, shift=4)
    return mask.astype(bool)


def box_outline_px(cap: Capture, box: tuple[float, float, float, float]) -> np.ndarray:
    """(200, 2) photo pixels along the box's edges: curved where the paper is curled."""
    x, y, w, h = box
    t = np.linspace(0.0, 1.0, 50, endpoint=False)
    edges = [
        np.stack([x + t * w, np.full_like(t, y)], 1),
        np.stack([np.full_like(t, x + w), y + t * h], 1),
        np.stack([x + w - t * w, np.full_like(t, y + h)], 1),
        np.stack([np.full_like(t, x), y + h - t * h], 1),
    ]
    return cap.to_photo(np.concatenate(edges))


def dark_blob(ratio: np.ndarray, seed_point: np.ndarray) -> np.ndarray:
    """Connected region of ``ratio < 0.5`` containing ``seed_point`` (x, y)."""
    dark = (ratio < 0.5).astype(np.uint8)
    _, labels = cv2.connectedComponents(dark)
    x, y = np.round(seed_point).astype(int)
    label = labels[y, x]
    assert label != 0, "the predicted box centre is not dark"
    return np.asarray(labels == label)


def assert_quads_match_pixels(tier: str | TierSpec, seed: int) -> Capture:
    """Simulate the boxed page and a blank page with the same seed (same light, noise and
    pose, as no random draw depends on the content); where their ratio is dark is where the
    boxes really are. Compare with the ground-truth quads."""
    boxed = capture(page_with_solid_boxes(), tier, seed)
    blank = capture(blank_page(), tier, seed)
    assert all(np.array_equal(boxed.box_quads[k], blank.box_quads[k]) for k in BOXES)
    gray_boxed = cv2.cvtColor(boxed.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gray_blank = cv2.cvtColor(blank.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    ratio = gray_boxed / np.maximum(gray_blank, 1.0)
    for field_id, quad in boxed.box_quads.items():
        centre = quad.mean(axis=0)
        inner = centre + 0.5 * (quad - centre)
        assert ratio[quad_mask(inner, ratio.shape)].mean() < 0.3, field_id
        # The raw photo too: the box centre is much darker than the paper just around it.
        ring = quad_mask(centre + 1.5 * (quad - centre), ratio.shape) & ~quad_mask(
            centre + 1.2 * (quad - centre), ratio.shape
        )
        assert gray_boxed[quad_mask(inner, ratio.shape)].mean() < 0.5 * gray_boxed[ring].mean()
        blob = dark_blob(ratio, centre)
        truth = quad_mask(quad, ratio.shape)
        iou = (blob & truth).sum() / (blob | truth).sum()
        assert iou > 0.9, (field_id, iou, boxed.params)
        # Sub-pixel agreement: the blob's centroid is the centroid of the exactly mapped box.
        exact = quad_mask(box_outline_px(boxed, BOXES[field_id]), ratio.shape)
        ys, xs = np.nonzero(blob)
        ey, ex = np.nonzero(exact)
        offset = np.hypot(xs.mean() - ex.mean(), ys.mean() - ey.mean())
        assert offset < 0.75, (field_id, offset, boxed.params)
    return boxed


@pytest.mark.parametrize("tier", ["scan", "phone", "hard"])
@pytest.mark.parametrize("seed", [0, 1])
def test_box_quads_match_the_photo(tier: str, seed: int) -> None:
    assert_quads_match_pixels(tier, seed)


def test_box_quads_match_upside_down_with_curl_and_fold() -> None:
    spec = dataclasses.replace(TIERS["hard"], rotation_deg=(175.0, 185.0))
    cap = assert_quads_match_pixels(spec, 7)
    assert cap.params["curl"] is not None and cap.params["fold"] is not None
    # Upside down: the page's top-left corner is at the bottom right of the photo.
    tl, _, br, _ = cap.page_quad
    assert tl[0] > br[0] and tl[1] > br[1]


def test_box_quads_match_upside_down_scan() -> None:
    spec = dataclasses.replace(TIERS["scan"], rotation_deg=(179.0, 181.0))
    assert_quads_match_pixels(spec, 3)


def test_same_seed_same_capture_other_seed_other_capture() -> None:
    page = page_with_solid_boxes()
    answers = {"middle": "42"}
    a = simulate_page(page, PPM, BOXES, answers, "phone", np.random.default_rng(5))
    b = simulate_page(page, PPM, BOXES, answers, "phone", np.random.default_rng(5))
    c = simulate_page(page, PPM, BOXES, answers, "phone", np.random.default_rng(6))
    assert np.array_equal(a.image, b.image)
    assert all(np.array_equal(a.box_quads[k], b.box_quads[k]) for k in BOXES)
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("seed", range(4))
def test_frame_sizes_and_page_inside_the_frame(seed: int) -> None:
    page = blank_page()
    for tier in ("phone", "hard"):
        cap = capture(page, tier, seed)
        h, w = cap.image.shape[:2]
        assert (w, h) in PHONE_FRAMES or (h, w) in PHONE_FRAMES
        assert_outline_inside(cap)
    scan = capture(page, "scan", seed)
    h, w = scan.image.shape[:2]
    dpi = scan.params["dpi"]
    assert dpi in SCAN_DPIS
    # The page plus 2-16 mm of lid, at the scan's resolution (skew adds a little).
    margin_w, margin_h = w / dpi * 25.4 - PAGE_MM[0], h / dpi * 25.4 - PAGE_MM[1]
    assert 1.5 < margin_w < 26 and 1.5 < margin_h < 26
    assert_outline_inside(scan)


def assert_outline_inside(cap: Capture) -> None:
    h, w = cap.image.shape[:2]
    pts = cap.to_photo(page_outline(PAGE_MM))
    assert pts.min() >= 0 and (pts[:, 0] <= w - 1).all() and (pts[:, 1] <= h - 1).all()


@pytest.mark.parametrize("tier", ["scan", "phone", "hard"])
def test_crop_edge_pushes_part_of_the_page_out(tier: str) -> None:
    cap = capture(blank_page(), tier, 11, crop_edge=True)
    h, w = cap.image.shape[:2]
    pts = cap.to_photo(page_outline(PAGE_MM, 64))
    outside = (pts[:, 0] < 0) | (pts[:, 0] > w - 1) | (pts[:, 1] < 0) | (pts[:, 1] > h - 1)
    assert 0 < outside.mean() < 0.6


def test_frame_size_override_and_tier_character() -> None:
    page = blank_page()
    phone = capture(page, "phone", 2, frame_size=(1600, 1200))
    hard = capture(page, "hard", 2, frame_size=(1600, 1200))
    assert phone.image.shape == hard.image.shape == (1200, 1600, 3)
    assert TIERS["phone"].tilt_deg[0] <= phone.params["tilt_deg"] <= TIERS["phone"].tilt_deg[1]
    assert 20.0 <= hard.params["tilt_deg"] <= 35.0
    assert hard.params["shadow"] and hard.params["curl"] and hard.params["fold"]
    json.dumps(hard.params)  # params go into truth files as they are


def test_page_size_can_be_given_exactly() -> None:
    # A rasteriser rounds 210 mm at 6 px/mm up to 1261 px; the paper is still 210 mm wide.
    page = np.full((1783, 1261), 255, np.uint8)
    rng = np.random.default_rng(1)
    cap = simulate_capture(page, PPM, {}, "phone", rng, page_mm=PAGE_MM)
    corners = np.array([[0, 0], [210, 0], [210, 297], [0, 297]], np.float64)
    assert np.allclose(cap.page_quad, cap.to_photo(corners))


def test_geometry_inverse_undoes_forward() -> None:
    pts = np.random.default_rng(0).uniform((0, 0), PAGE_MM, (500, 2))
    camera = CameraGeometry(
        PAGE_MM, 200.0, 33.0, 70.0, 700.0, 3000.0, (2000.0, 1500.0),
        Curl((0.6, 0.8), 80.0, 170.0, 90.0), Fold((0.0, 1.0), 10.0, -0.3, 4.0),
    )  # fmt: skip
    flatbed = FlatbedGeometry(PAGE_MM, 181.0, (1.002, 0.998), (900.0, 1300.0), 300 / 25.4)
    for geometry in (camera, flatbed):
        assert np.abs(geometry.inverse(geometry.forward(pts)) - pts).max() < 1e-3


def test_write_answers_puts_ink_in_the_boxes_only() -> None:
    page = blank_page()
    answers = {"near_tl": "12", "middle": "-3.5", "right": "", "near_br": "7"}
    written = write_answers(page, PPM, BOXES, answers, np.random.default_rng(3))
    assert written.shape == (*page.shape, 3) and written.dtype == np.uint8
    ink = written.min(axis=2) < 200
    for field_id, (x, y, w, h) in BOXES.items():
        # Writers overshoot the border a little at most: look 10 % around the box.
        x0, x1 = round((x - 0.1 * w) * PPM), round((x + 1.1 * w) * PPM)
        y0, y1 = round((y - 0.1 * h) * PPM), round((y + 1.1 * h) * PPM)
        inside = ink[y0:y1, x0:x1].sum()
        assert (inside > 20) == bool(answers.get(field_id)), field_id
        ink[y0:y1, x0:x1] = False
    assert not ink.any()  # nothing written anywhere else


@pytest.mark.parametrize("orientation", [1, 6, 3, 8])
def test_saved_photos_decode_upright(tmp_path: Path, orientation: int) -> None:
    # HEVC encoding is slow: a reduced photo tells as much about orientation handling.
    photo = capture(page_with_solid_boxes(), "phone", 4, frame_size=(1600, 1200)).image
    image = cv2.resize(photo, (400, 300), interpolation=cv2.INTER_AREA)
    jpeg = save_jpeg(image, tmp_path / f"o{orientation}.jpg", 92, orientation)
    heic = save_heic(image, tmp_path / f"o{orientation}.heic", 80, orientation)
    for page in iter_pages([jpeg, heic]):
        assert isinstance(page, PageInput), page
        assert page.image.shape == image.shape
        diff = np.abs(page.image.astype(int) - image.astype(int))
        assert np.median(diff) <= 4 and np.percentile(diff, 99) < 60


@pytest.mark.slow
def test_full_size_phone_photo() -> None:
    ppm = 300 / 25.4
    page = np.full((round(297 * ppm), round(210 * ppm)), 255, np.uint8)
    cap = simulate_capture(
        page, ppm, BOXES, "hard", np.random.default_rng(0), frame_size=(4032, 3024)
    )
    assert cap.image.shape == (3024, 4032, 3)
