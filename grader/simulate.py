"""Realistic phone photos and flatbed scans of filled-in worksheet pages, with exact ground truth.

Used by tests, the demo and benchmarks. Start from a rasterised printed page (grayscale or BGR
uint8 at ``px_per_mm``) and its answer boxes (``[x, y, width, height]`` in mm from the page's
top-left corner):

* :func:`write_answers` writes handwritten answers into the boxes;
* :func:`simulate_capture` photographs or scans the page under a difficulty tier (``scan``,
  ``phone``, ``hard``; see :data:`TIERS`) and returns the image with the box corners in it;
* :func:`simulate_page` does both; :func:`save_jpeg` and :func:`save_heic` write a capture the
  way phones store them (optionally with an EXIF orientation tag) for input tests.

Output images are (H, W, 3) uint8 BGR. Ground truth is in output pixels: x right, y down,
pixel centres at integer coordinates (OpenCV's convention). Everything random is drawn from the
``rng`` argument, so a seed reproduces a capture exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image

from grader import simulate_effects as fx
from grader.simulate_geometry import (
    MAP_GRID_STEP,
    CameraGeometry,
    Curl,
    FlatbedGeometry,
    Fold,
    Geometry,
    page_outline,
    solve_grid,
    upsample_grid,
)

BBoxMm = Sequence[float]  # [x, y, width, height] in mm, page top-left origin
Range = tuple[float, float]

PHONE_FRAMES: tuple[tuple[int, int], ...] = (
    (1600, 1200),
    (2048, 1536),
    (2592, 1944),
    (3264, 2448),
    (4032, 3024),
)
SCAN_DPIS: tuple[int, ...] = (150, 200, 240, 300)


@dataclass(frozen=True)
class TierSpec:
    """Ranges the simulator draws from; ``(lo, hi)`` pairs are uniform ranges.

    Blur and noise are in output pixels / grey levels for a frame 4032 px wide and scale with
    the frame (a 1600 px photo is a smaller image of the same blur). ``coverage`` is the page's
    extent as a fraction of the frame (the larger of width and height ratios).
    """

    name: str
    kind: Literal["scan", "camera"]
    rotation: Literal["scan", "upright", "any"]
    rotation_deg: Range | None = None  # if set, the in-plane turn is drawn from this instead
    tilt_deg: Range = (0.0, 0.0)
    coverage: Range = (0.6, 0.9)
    curl_prob: float = 0.0
    curl_deg: Range = (5.0, 20.0)
    fold_prob: float = 0.0
    fold_deg: Range = (3.0, 10.0)
    shadow_prob: float = 0.0
    shadow_darkness: Range = (0.6, 0.85)
    glare_prob: float = 0.0
    gradient: Range = (0.0, 0.2)
    vignette: Range = (0.0, 0.2)
    exposure: Range = (0.8, 1.05)
    white_balance: float = 0.04
    defocus_px: Range = (0.3, 1.2)
    motion_prob: float = 0.0
    motion_px: Range = (2.0, 6.0)
    sharpen_prob: float = 0.0
    noise: Range = (1.0, 4.0)
    jpeg_quality: Range = (70.0, 95.0)
    gray_prob: float = 0.0
    frames: tuple[tuple[int, int], ...] = PHONE_FRAMES
    dpis: tuple[int, ...] = SCAN_DPIS


TIERS: dict[str, TierSpec] = {
    "scan": TierSpec(
        name="scan",
        kind="scan",
        rotation="scan",
        gradient=(0.0, 0.04),
        vignette=(0.0, 0.0),
        exposure=(0.95, 1.08),
        white_balance=0.01,
        defocus_px=(0.8, 2.0),  # about 0.3-0.8 px at the scan's own resolution
        noise=(0.5, 2.0),
        jpeg_quality=(75.0, 95.0),
        gray_prob=0.4,
    ),
    "phone": TierSpec(
        name="phone",
        kind="camera",
        rotation="upright",
        tilt_deg=(0.0, 20.0),
        coverage=(0.6, 0.92),
        curl_prob=0.4,
        curl_deg=(5.0, 20.0),
        fold_prob=0.25,
        fold_deg=(3.0, 10.0),
        shadow_prob=0.3,
        shadow_darkness=(0.65, 0.85),
        gradient=(0.0, 0.25),
        vignette=(0.0, 0.25),
        exposure=(0.7, 1.05),
        defocus_px=(0.5, 2.0),
        motion_prob=0.2,
        motion_px=(2.0, 6.0),
        sharpen_prob=0.5,
        noise=(1.5, 4.0),
        jpeg_quality=(70.0, 95.0),
    ),
    "hard": TierSpec(
        name="hard",
        kind="camera",
        rotation="any",
        tilt_deg=(20.0, 35.0),
        coverage=(0.5, 0.92),
        curl_prob=1.0,
        curl_deg=(20.0, 45.0),
        fold_prob=1.0,
        fold_deg=(8.0, 20.0),
        shadow_prob=1.0,
        shadow_darkness=(0.4, 0.7),
        glare_prob=0.3,
        gradient=(0.2, 0.45),
        vignette=(0.1, 0.35),
        exposure=(0.55, 1.1),
        white_balance=0.08,
        defocus_px=(1.5, 3.5),
        motion_prob=0.6,
        motion_px=(4.0, 12.0),
        sharpen_prob=0.3,
        noise=(3.0, 7.0),
        jpeg_quality=(60.0, 80.0),
    ),
}


@dataclass(frozen=True, eq=False)
class Capture:
    """A simulated photo or scan and where the page and its boxes are in it.

    ``image``: (H, W, 3) uint8 BGR. ``box_quads``: field id -> (4, 2) float64 output pixels of
    the box's corners in page order TL, TR, BR, BL (on an upside-down photo TL is bottom right).
    ``page_quad``: the page's corners, same order. ``geometry`` maps any page mm to output
    pixels (:meth:`to_photo`). ``params``: what was drawn, for debugging.
    """

    image: np.ndarray
    box_quads: dict[str, np.ndarray]
    page_quad: np.ndarray
    geometry: Geometry
    tier: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_photo(self, points_mm: np.ndarray) -> np.ndarray:
        """(..., 2) page mm -> (..., 2) float64 output pixels."""
        return self.geometry.forward(np.asarray(points_mm, np.float64))


# --- handwriting ---------------------------------------------------------------------------

# Ink colours (BGR) and how much of the paper's light full ink takes away.
_INKS: dict[str, tuple[tuple[float, float, float], Range]] = {
    "pencil": ((70.0, 70.0, 75.0), (0.45, 0.75)),
    "blue pen": ((150.0, 55.0, 25.0), (0.75, 0.95)),
    "black pen": ((35.0, 30.0, 30.0), (0.8, 0.95)),
}


def write_answers(
    page_img: np.ndarray,
    px_per_mm: float,
    boxes_mm: Mapping[str, BBoxMm],
    answers: Mapping[str, str],
    rng: np.random.Generator,
    glyph_source: Any = None,
    pencil_darkness: float | None = None,
) -> np.ndarray:
    """Write each answer string by hand into its box.

    ``page_img``: (H, W) or (H, W, 3) uint8 at ``px_per_mm``; ``boxes_mm``: field id ->
    ``[x, y, w, h]`` mm. Answers use the handwriting alphabet (``0-9 - .``); an empty string
    leaves the box blank. One writer per page: a pencil, blue or black pen. Digits are placed
    at a random spot in the box and sometimes cross its border a little. ``glyph_source`` is a
    :mod:`grader.handwriting` glyph source (default: ``StrokeGlyphs``, which needs no data).
    ``pencil_darkness`` writes in pencil that dark (the writers' pencils are 0.45-0.75).
    Returns a new (H, W, 3) uint8 BGR page.
    """
    from grader import handwriting  # deferred: only pages with answers need it

    source = glyph_source if glyph_source is not None else handwriting.StrokeGlyphs()
    out = _as_bgr(page_img).copy()
    if pencil_darkness is None:
        ink_name = str(rng.choice(list(_INKS), p=[0.45, 0.3, 0.25]))
        colour, darkness_range = _INKS[ink_name]
        darkness = rng.uniform(*darkness_range)
    else:
        ink_name, darkness = "pencil", pencil_darkness
        colour = _INKS[ink_name][0]
    for field_id, text in answers.items():
        if not text:
            continue
        ink = _ink_for_box(text, boxes_mm[field_id], px_per_mm, source, rng, handwriting)
        x, y = _place_in_box(ink.shape, boxes_mm[field_id], px_per_mm, rng)
        _stamp(out, ink, x, y, colour, darkness, rng, grain=ink_name == "pencil")
    return out


def _ink_for_box(
    text: str, box: BBoxMm, ppm: float, source: Any, rng: np.random.Generator, hw: Any
) -> np.ndarray:
    """Ink (h, w) float32 0..1 for ``text`` sized to the box (h a bit under the box height)."""
    box_w, box_h = box[2] * ppm, box[3] * ppm
    height = max(8, round(box_h * rng.uniform(0.75, 1.0)))
    ink = np.asarray(hw.compose_number(text, source, rng, height), np.float32)
    limit = box_w * rng.uniform(0.85, 1.02)
    if ink.shape[1] > limit:  # long answers are written smaller, as people do
        scale = limit / ink.shape[1]
        size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
        ink = np.asarray(cv2.resize(ink, size, interpolation=cv2.INTER_AREA), np.float32)
    return ink


def _place_in_box(
    shape: tuple[int, ...], box: BBoxMm, ppm: float, rng: np.random.Generator
) -> tuple[int, int]:
    """Top-left pixel for ink of ``shape`` inside ``box``; 15 % of writers overshoot a little."""
    x0, y0, bw, bh = (v * ppm for v in box)
    slack = 0.08 if rng.random() < 0.15 else 0.0
    xs = (x0 - slack * bw, x0 + bw * (1 + slack) - shape[1])
    ys = (y0 - slack * bh, y0 + bh * (1 + slack) - shape[0])
    x = rng.uniform(min(xs), max(xs)) if xs[1] > xs[0] else (x0 + (bw - shape[1]) / 2)
    y = rng.uniform(min(ys), max(ys)) if ys[1] > ys[0] else (y0 + (bh - shape[0]) / 2)
    return round(x), round(y)


def _stamp(
    page: np.ndarray,
    ink: np.ndarray,
    x: int,
    y: int,
    colour: tuple[float, float, float],
    darkness: float,
    rng: np.random.Generator,
    grain: bool,
) -> None:
    """Darken ``page`` (H, W, 3) uint8 in place by ``ink`` at (x, y), like ink on paper."""
    ph, pw = page.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + ink.shape[1], pw), min(y + ink.shape[0], ph)
    if x1 <= x0 or y1 <= y0:
        return
    a = ink[y0 - y : y1 - y, x0 - x : x1 - x] * darkness
    if grain:  # graphite leaves an uneven trace
        a = np.asarray(a * (1.0 + rng.normal(0.0, 0.12, a.shape)), np.float32)
    a = np.clip(a, 0.0, 1.0)[..., None]
    # Multiplicative mixing: ink filters the light the paper (or a printed line) reflects.
    filt = 1.0 - a * (1.0 - np.asarray(colour, np.float32) / 255.0)
    region = page[y0:y1, x0:x1]
    region[...] = np.clip(region * filt + 0.5, 0, 255).astype(np.uint8)


# --- capture -------------------------------------------------------------------------------


def simulate_capture(
    page_img: np.ndarray,
    px_per_mm: float,
    boxes_mm: Mapping[str, BBoxMm],
    tier: str | TierSpec,
    rng: np.random.Generator,
    *,
    crop_edge: bool = False,
    frame_size: tuple[int, int] | None = None,
    page_mm: tuple[float, float] | None = None,
) -> Capture:
    """Photograph (``phone``, ``hard``) or scan (``scan``) a printed, filled-in page.

    ``page_img``: (H, W) or (H, W, 3) uint8 of the whole page at ``px_per_mm``: mm point
    (x, y) is at pixel coordinate (x, y) * px_per_mm - 0.5 (pixel centres at integers).
    ``page_mm`` (width, height) is the paper size; by default (W, H) / px_per_mm, but a
    rasteriser rounds the pixel count up, so pass the true size for an exact ``page_quad``.
    ``tier``: a name in :data:`TIERS` or a custom :class:`TierSpec`. The whole page stays in
    the frame unless ``crop_edge``, which pushes 8-25 % of it past one side of the frame.
    ``frame_size`` (width, height) overrides the camera's sensor size (ignored for scans,
    whose size follows from the dpi).
    """
    spec = TIERS[tier] if isinstance(tier, str) else tier
    page = _as_bgr(page_img)
    if page_mm is None:
        page_mm = (page.shape[1] / px_per_mm, page.shape[0] / px_per_mm)
    params: dict[str, Any] = {"tier": spec.name, "crop_edge": crop_edge}
    geometry: Geometry
    if spec.kind == "scan":
        geometry, out_size = _scan_pose(spec, rng, page_mm, crop_edge, params)
        background = fx.scanner_background(rng, out_size)
    else:
        geometry, out_size = _camera_pose(spec, rng, page_mm, crop_edge, frame_size, params)
        background = fx.table_background(rng, out_size)
    grid_mm, _ = solve_grid(geometry, out_size)
    tint = 0.6 * spec.white_balance
    image = _warp_page(page, px_per_mm, grid_mm, geometry, out_size, background, rng, tint, params)
    image = fx.apply_light(image, _light(spec, rng, geometry, grid_mm, out_size, params))
    image = _degrade(image, spec, rng, out_size, params)
    return Capture(
        image=image,
        box_quads={fid: geometry.forward(_corners(box)) for fid, box in boxes_mm.items()},
        page_quad=geometry.forward(_corners((0.0, 0.0, *page_mm))),
        geometry=geometry,
        tier=spec.name,
        params=params,
    )


def simulate_page(
    page_img: np.ndarray,
    px_per_mm: float,
    boxes_mm: Mapping[str, BBoxMm],
    answers: Mapping[str, str],
    tier: str | TierSpec,
    rng: np.random.Generator,
    *,
    glyph_source: Any = None,
    crop_edge: bool = False,
    frame_size: tuple[int, int] | None = None,
    page_mm: tuple[float, float] | None = None,
) -> Capture:
    """:func:`write_answers` then :func:`simulate_capture`; ``params["answers"]`` says what."""
    written = write_answers(page_img, px_per_mm, boxes_mm, answers, rng, glyph_source)
    capture = simulate_capture(
        written,
        px_per_mm,
        boxes_mm,
        tier,
        rng,
        crop_edge=crop_edge,
        frame_size=frame_size,
        page_mm=page_mm,
    )
    capture.params["answers"] = dict(answers)
    return capture


def _as_bgr(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8:
        raise ValueError(f"page image must be uint8, got {img.dtype}")
    if img.ndim == 2:
        return np.asarray(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise ValueError(f"page image must be (H, W) or (H, W, 3), got {img.shape}")


def _corners(box: BBoxMm) -> np.ndarray:
    """(4, 2) corners TL, TR, BR, BL of ``[x, y, w, h]`` mm."""
    x, y, w, h = (float(v) for v in box)
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


# --- poses ---------------------------------------------------------------------------------


def _scan_pose(
    spec: TierSpec,
    rng: np.random.Generator,
    page_mm: tuple[float, float],
    crop_edge: bool,
    params: dict[str, Any],
) -> tuple[FlatbedGeometry, tuple[int, int]]:
    """A page on a flatbed: small skew, sometimes upside down, a few mm of lid around it."""
    dpi = int(rng.choice(spec.dpis))
    ppm = dpi / 25.4
    skew = float(np.clip(rng.normal(0.0, 0.7), -2.0, 2.0))
    rotation = skew + (180.0 if rng.random() < 0.1 else 0.0)
    if spec.rotation_deg is not None:
        rotation = _uniform(rng, spec.rotation_deg)
    stretch = (1.0 + rng.normal(0.0, 0.002), 1.0 + rng.normal(0.0, 0.002))
    probe = FlatbedGeometry(page_mm, rotation, stretch, (0.0, 0.0), ppm)
    pts = probe.forward(page_outline(page_mm, 2))
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    margins = rng.uniform(1.0, 8.0, 4) * ppm  # left, top, right, bottom
    size = (
        int(np.ceil(hi[0] - lo[0] + margins[0] + margins[2])),
        int(np.ceil(hi[1] - lo[1] + margins[1] + margins[3])),
    )
    centre = np.array([margins[0] - lo[0], margins[1] - lo[1]])
    if crop_edge:
        centre = centre + _crop_shift(rng, hi - lo, size, lo + centre, params)
    geometry = FlatbedGeometry(page_mm, rotation, stretch, (centre[0], centre[1]), ppm)
    params.update(dpi=dpi, rotation_deg=rotation, stretch=stretch, frame=size)
    return geometry, size


def _crop_shift(
    rng: np.random.Generator,
    extent: np.ndarray,
    size: tuple[int, int],
    low: np.ndarray,
    params: dict[str, Any],
) -> np.ndarray:
    """Shift (2,) pushing a fraction of the page (bbox ``low``, ``extent``) off one side."""
    side = int(rng.integers(4))
    frac = _uniform(rng, (0.08, 0.25))
    shift = np.zeros(2)
    axis = side % 2
    if side < 2:  # left or top: the page's low edge goes below zero
        shift[axis] = -frac * extent[axis] - low[axis]
    else:  # right or bottom
        shift[axis] = size[axis] - (1 - frac) * extent[axis] - low[axis]
    params.update(crop_side=["left", "top", "right", "bottom"][side], crop_fraction=frac)
    return shift


def _in_plane_rotation(spec: TierSpec, rng: np.random.Generator) -> float:
    if spec.rotation_deg is not None:
        return _uniform(rng, spec.rotation_deg)
    if spec.rotation == "any":
        return _uniform(rng, (0.0, 360.0))
    base = float(rng.choice([0.0, 90.0, 180.0, 270.0], p=[0.55, 0.2, 0.1, 0.15]))
    return base + float(np.clip(rng.normal(0.0, 6.0), -15.0, 15.0))


def _draw_curl(
    spec: TierSpec, rng: np.random.Generator, page_mm: tuple[float, float]
) -> Curl | None:
    if rng.random() >= spec.curl_prob:
        return None
    angle = rng.uniform(0, 2 * np.pi)
    d = (float(np.cos(angle)), float(np.sin(angle)))
    end = (abs(d[0]) * page_mm[0] + abs(d[1]) * page_mm[1]) / 2  # farthest page point along d
    length = 2 * end * rng.uniform(0.15, 0.4)
    theta = np.deg2rad(_uniform(rng, spec.curl_deg))
    return Curl(direction=d, start=end - length, end=end, radius=length / theta)


def _draw_fold(
    spec: TierSpec, rng: np.random.Generator, page_mm: tuple[float, float]
) -> Fold | None:
    if rng.random() >= spec.fold_prob:
        return None
    if rng.random() < 0.7:  # folded in half or in three, then opened
        horizontal = rng.random() < 0.6
        normal = (0.0, 1.0) if horizontal else (1.0, 0.0)
        extent = page_mm[1] if horizontal else page_mm[0]
        offset = float(rng.choice([0.0, -extent / 6, extent / 6])) + rng.normal(0, 3)
    else:
        a = rng.uniform(0, 2 * np.pi)
        normal = (float(np.cos(a)), float(np.sin(a)))
        offset = rng.uniform(-0.25, 0.25) * min(page_mm)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    angle = sign * np.deg2rad(_uniform(rng, spec.fold_deg))
    return Fold(normal=normal, offset=float(offset), angle=float(angle), softness=rng.uniform(2, 6))


def _camera_pose(
    spec: TierSpec,
    rng: np.random.Generator,
    page_mm: tuple[float, float],
    crop_edge: bool,
    frame_size: tuple[int, int] | None,
    params: dict[str, Any],
) -> tuple[CameraGeometry, tuple[int, int]]:
    """A hand-held phone: tilt, turn, distance to fill ``coverage`` of the frame, placement."""
    rotation = _in_plane_rotation(spec, rng)
    tilt = _uniform(rng, spec.tilt_deg)
    axis = _uniform(rng, (0.0, 360.0))
    curl, fold = _draw_curl(spec, rng, page_mm), _draw_fold(spec, rng, page_mm)
    if frame_size is None:
        long_side, short_side = spec.frames[int(rng.integers(len(spec.frames)))]
        # People hold the phone the way the page is turned, most of the time.
        g = np.deg2rad(rotation)
        tall = abs(np.cos(g)) * page_mm[1] + abs(np.sin(g)) * page_mm[0] > (
            abs(np.cos(g)) * page_mm[0] + abs(np.sin(g)) * page_mm[1]
        )
        portrait = tall == (rng.random() < 0.85)
        frame_size = (short_side, long_side) if portrait else (long_side, short_side)
    width, height = frame_size
    focal = max(width, height) * rng.uniform(0.72, 0.95)
    coverage = _uniform(rng, spec.coverage)
    geometry = CameraGeometry(
        page_mm, rotation, tilt, axis, 1.0, focal, ((width - 1) / 2, (height - 1) / 2), curl, fold
    )
    outline = page_outline(page_mm)
    distance = focal * float(np.hypot(*page_mm)) / (coverage * max(width, height))
    for _ in range(4):  # projected size is close to inversely proportional to distance
        geometry = dataclasses.replace(geometry, distance_mm=distance)
        pts = geometry.forward(outline)
        extent = pts.max(axis=0) - pts.min(axis=0)
        distance *= max(extent[0] / width, extent[1] / height) / coverage
    geometry = dataclasses.replace(geometry, distance_mm=distance)
    pts = geometry.forward(outline)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if crop_edge:
        shift = _crop_shift(rng, hi - lo, (width, height), lo, params)
        along = 1 if params["crop_side"] in ("left", "right") else 0  # the uncut axis
        shift[along] = _free_shift(rng, lo[along], hi[along], (width, height)[along])
    else:
        shift = np.array([_free_shift(rng, lo[i], hi[i], (width, height)[i]) for i in (0, 1)])
    principal = (geometry.principal_px[0] + shift[0], geometry.principal_px[1] + shift[1])
    geometry = dataclasses.replace(geometry, principal_px=principal)
    params.update(
        frame=(width, height),
        rotation_deg=rotation,
        tilt_deg=tilt,
        tilt_axis_deg=axis,
        focal_px=focal,
        distance_mm=distance,
        coverage=coverage,
        curl=None if curl is None else dataclasses.asdict(curl),
        fold=None if fold is None else dataclasses.asdict(fold),
    )
    return geometry, (width, height)


def _free_shift(rng: np.random.Generator, lo: float, hi: float, size: int) -> float:
    """Random shift keeping [lo, hi] inside [margin, size - 1 - margin]."""
    margin = 0.01 * size
    a, b = margin - lo, size - 1 - margin - hi
    return _uniform(rng, (a, b)) if b > a else (a + b) / 2


# --- rendering -----------------------------------------------------------------------------


def _warp_page(
    page: np.ndarray,
    ppm: float,
    grid_mm: np.ndarray,
    geometry: Geometry,
    out_size: tuple[int, int],
    background: np.ndarray,
    rng: np.random.Generator,
    tint_spread: float,
    params: dict[str, Any],
) -> np.ndarray:
    """Remap the page into the output frame over ``background`` (BGRA); (h, w, 3) uint8 BGR."""
    src, sx, sy = _source_for_scale(page, ppm, geometry)
    tint = 1.0 - np.abs(rng.normal(0.0, tint_spread, 3))  # paper is never quite neutral
    src = cv2.cvtColor(cv2.transform(src, np.diag(tint)), cv2.COLOR_BGR2BGRA)
    # Scaling the coarse grid before upsampling is exact: both steps are linear.
    dense = upsample_grid(grid_mm * (sx, sy) - 0.5, out_size, MAP_GRID_STEP)
    no_map2: Any = None  # the dense map holds x and y together
    # BORDER_TRANSPARENT keeps the background where the map leaves the page and blends it
    # into the page's edge pixels: compositing for free.
    cv2.remap(
        src, dense, no_map2, cv2.INTER_LINEAR, dst=background, borderMode=cv2.BORDER_TRANSPARENT
    )
    params.update(paper_tint=tuple(float(t) for t in tint), source_px_per_mm=(sx, sy))
    return np.asarray(cv2.cvtColor(background, cv2.COLOR_BGRA2BGR))


def _source_for_scale(
    page: np.ndarray, ppm: float, geometry: Geometry
) -> tuple[np.ndarray, float, float]:
    """The page reduced (area averaging) to about 1.5x the finest output scale.

    Bilinear remapping from a source much finer than the output would alias thin box lines;
    a camera integrates over each pixel instead. Returns the image and its px/mm along x, y.
    """
    w_mm, h_mm = page.shape[1] / ppm, page.shape[0] / ppm
    probes = np.array([[x, y] for x in (0.0, w_mm / 2, w_mm) for y in (0.0, h_mm / 2, h_mm)])
    d = 0.5
    base = geometry.forward(probes)
    fx_ = np.linalg.norm(geometry.forward(probes + np.array([d, 0.0])) - base, axis=1)
    fy_ = np.linalg.norm(geometry.forward(probes + np.array([0.0, d])) - base, axis=1)
    finest = float(max(fx_.max(), fy_.max())) / d  # output px per mm
    target = 1.5 * finest
    if target >= ppm:
        return page, ppm, ppm
    size = (
        max(1, round(page.shape[1] * target / ppm)),
        max(1, round(page.shape[0] * target / ppm)),
    )
    small = cv2.resize(page, size, interpolation=cv2.INTER_AREA)
    return small, size[0] / w_mm, size[1] / h_mm


def _light(
    spec: TierSpec,
    rng: np.random.Generator,
    geometry: Geometry,
    grid_mm: np.ndarray,
    out_size: tuple[int, int],
    params: dict[str, Any],
) -> np.ndarray:
    """Illumination factor at quarter resolution, (lh, lw, 3) float32 around 1."""
    low = fx.low_res_size(out_size)
    scale = max(out_size) / 4032.0
    gradient, vignette = _uniform(rng, spec.gradient), _uniform(rng, spec.vignette)
    exposure = _uniform(rng, spec.exposure)
    light = exposure * fx.frame_gradient(rng, low, gradient, vignette)
    shadow = rng.random() < spec.shadow_prob
    if shadow:
        darkness = _uniform(rng, spec.shadow_darkness)
        penumbra = _uniform(rng, (2.0, 10.0)) * scale / fx.LOW_RES
        light *= 1.0 - (1.0 - darkness) * fx.hard_shadow(rng, low, penumbra)
        params["shadow_darkness"] = darkness
    if rng.random() < spec.glare_prob:
        light *= fx.glare(rng, low, _uniform(rng, (0.15, 0.4)))
        params["glare"] = True
    mask = _page_mask_low(geometry, low)
    if spec.kind == "camera":
        light *= fx.drop_shadow(mask, rng, _uniform(rng, (0.1, 0.35)))
        if isinstance(geometry, CameraGeometry) and (geometry.curl or geometry.fold):
            light *= 1.0 + (_shading(geometry, grid_mm, low, rng) - 1.0) * mask
    balance = rng.normal(1.0, spec.white_balance, 3).astype(np.float32)
    params.update(exposure=exposure, gradient=gradient, vignette=vignette, shadow=shadow)
    params["white_balance"] = tuple(float(b) for b in balance)
    return np.asarray(light[..., None] * balance, np.float32)


def _page_mask_low(geometry: Geometry, low: tuple[int, int]) -> np.ndarray:
    """Page coverage (lh, lw) float32 0..1 on the quarter-resolution canvas."""
    outline = geometry.forward(page_outline(geometry.page_mm))
    pts = (outline + 0.5) / fx.LOW_RES - 0.5
    mask = np.zeros((low[1], low[0]), np.float32)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], (1.0,), cv2.LINE_AA, shift=4)
    return mask


def _shading(
    geometry: CameraGeometry, grid_mm: np.ndarray, low: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Brightness change (lh, lw) float32 of curled or folded paper turning to or from the light."""
    towards = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8), -1.0])
    towards /= np.linalg.norm(towards)
    normals = geometry.surface_normals(grid_mm)
    flat = -geometry.rotation()[:, 2]  # a flat page's normal, facing the camera
    ambient = 0.55
    lit = ambient + (1 - ambient) * np.clip(normals @ towards, 0.0, None)
    factor = (lit / (ambient + (1 - ambient) * max(float(flat @ towards), 0.0))).astype(np.float32)
    step = MAP_GRID_STEP // fx.LOW_RES
    return upsample_grid(factor[..., None], low, step).reshape(low[1], low[0])


def _degrade(
    image: np.ndarray,
    spec: TierSpec,
    rng: np.random.Generator,
    out_size: tuple[int, int],
    params: dict[str, Any],
) -> np.ndarray:
    """Optics, sensor and encoder: blur, shake, sharpening, noise, grey scans, JPEG."""
    scale = max(out_size) / 4032.0
    defocus = _uniform(rng, spec.defocus_px) * scale
    motion = _uniform(rng, spec.motion_px) * scale if rng.random() < spec.motion_prob else 0.0
    motion_deg = _uniform(rng, (0.0, 180.0))
    image = fx.blur(image, defocus, motion, motion_deg)
    if rng.random() < spec.sharpen_prob:
        image = fx.sharpen(image, _uniform(rng, (0.3, 0.8)), max(1.0, 2.0 * scale))
    noise = _uniform(rng, spec.noise)
    image = fx.add_noise(image, rng, noise)
    gray = rng.random() < spec.gray_prob
    if gray:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    quality = round(_uniform(rng, spec.jpeg_quality))
    params.update(defocus_px=defocus, motion_px=motion, noise=noise, gray=gray, jpeg=quality)
    return fx.jpeg_roundtrip(image, quality)


# --- saving --------------------------------------------------------------------------------

# Transpose that, applied to the upright picture, gives the pixels a camera stores with each
# EXIF orientation tag (the inverse of what ImageOps.exif_transpose does on reading).
_STORE_FOR_ORIENTATION: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _stored_pil(image: np.ndarray, exif_orientation: int) -> tuple[Image.Image, bytes]:
    if exif_orientation not in _STORE_FOR_ORIENTATION:
        raise ValueError(f"EXIF orientation must be 1..8, got {exif_orientation}")
    pil = Image.fromarray(cv2.cvtColor(_as_bgr(image), cv2.COLOR_BGR2RGB))
    op = _STORE_FOR_ORIENTATION[exif_orientation]
    if op is not None:
        pil = pil.transpose(op)
    exif = Image.Exif()
    exif[0x0112] = exif_orientation
    return pil, exif.tobytes()


def save_jpeg(
    image: np.ndarray, path: str | Path, quality: int = 90, exif_orientation: int = 1
) -> Path:
    """Write ``image`` (H, W, 3) BGR as a JPEG that displays upright.

    With ``exif_orientation`` other than 1 the pixels are stored turned, as phones do, and the
    tag says how to turn them back.
    """
    pil, exif = _stored_pil(image, exif_orientation)
    pil.save(path, format="JPEG", quality=int(quality), exif=exif)
    return Path(path)


def save_heic(
    image: np.ndarray, path: str | Path, quality: int = 80, exif_orientation: int = 1
) -> Path:
    """Write ``image`` (H, W, 3) BGR as HEIC (as iPhones do); see :func:`save_jpeg`."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    pil, exif = _stored_pil(image, exif_orientation)
    pil.save(path, format="HEIF", quality=int(quality), exif=exif)
    return Path(path)
