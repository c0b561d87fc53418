"""Photometric effects of simulated captures: backgrounds, light, blur, noise, JPEG.

Everything works on ``uint8`` BGR images of the output size with OpenCV's vectorised routines
(a 4032x3024 frame is 36 M samples; a numpy float pass over it costs more than all of these
together). Smooth fields (background colour, illumination, shadows) are drawn at a quarter of
the output resolution and enlarged. All randomness comes from the ``rng`` argument.
"""

from __future__ import annotations

import cv2
import numpy as np

# Light fields are stored as uint8 with 128 meaning "unchanged", so factors 0..2 fit.
LIGHT_UNITY = 128
LOW_RES = 4  # light fields are drawn at 1/LOW_RES of the output size
BACKGROUND_RES = 8  # backgrounds even coarser: their detail drowns in noise and blur anyway
_NOISE_TILE = (521, 523)  # primes: the tiling never lines up with 8x8 JPEG blocks


def low_res_size(out_size: tuple[int, int], factor: int = LOW_RES) -> tuple[int, int]:
    """(width, height) of a canvas ``factor`` times smaller than ``out_size`` (rounded up)."""
    return max(1, -(-out_size[0] // factor)), max(1, -(-out_size[1] // factor))


def smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise, (h, w) float32, about zero mean and unit spread.

    ``size`` is (width, height); ``cells`` is the number of random control values along the
    longer side (more cells, finer blobs).
    """
    width, height = size
    long_side = max(width, height)
    cw = max(2, round(cells * width / long_side))
    ch = max(2, round(cells * height / long_side))
    control = rng.standard_normal((ch, cw)).astype(np.float32)
    return np.asarray(cv2.resize(control, (width, height), interpolation=cv2.INTER_CUBIC))


def table_background(rng: np.random.Generator, out_size: tuple[int, int]) -> np.ndarray:
    """A table top behind the page (wood, plain or speckled laminate), (h, w, 4) uint8 BGRA.

    Four channels because the page is remapped straight onto it (see ``cv2.remap`` with
    ``BORDER_TRANSPARENT``), and OpenCV remaps four channels much faster than three.
    """
    low = low_res_size(out_size, BACKGROUND_RES)
    width, height = low
    kind = rng.choice(["wood", "plain", "speckle"], p=[0.45, 0.35, 0.2])
    if kind == "wood":
        base = np.array([rng.uniform(40, 90), rng.uniform(70, 130), rng.uniform(110, 190)])
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        along = xx * np.cos(angle) + yy * np.sin(angle)
        warp = smooth_noise(rng, low, 6) * rng.uniform(4, 12)
        period = rng.uniform(3, 10)  # low-res pixels between grain lines
        grain = np.sin(2 * np.pi * (along + warp) / period) * 0.5 + 0.5
        shade = 1.0 - rng.uniform(0.1, 0.3) * grain ** rng.uniform(1.5, 4.0)
        img = base[None, None, :] * shade[..., None]
    else:
        # Plain desks from near-black to white, with a colour cast; laminate gets speckles.
        level = rng.uniform(30, 235)
        cast = rng.normal(1.0, 0.08, 3)
        img = np.broadcast_to(level * cast, (height, width, 3)).astype(np.float32)
        if kind == "speckle":
            speck = rng.standard_normal((height, width)).astype(np.float32)
            img = img * (1.0 + 0.12 * speck[..., None])
    img = img * (1.0 + 0.08 * smooth_noise(rng, low, 4)[..., None])
    return _enlarge_bgra(img, out_size)


def _enlarge_bgra(img: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) float BGR at low resolution -> (H, W, 4) uint8 BGRA of ``out_size``."""
    small = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2BGRA)
    return np.asarray(cv2.resize(small, out_size, interpolation=cv2.INTER_LINEAR))


def scanner_background(rng: np.random.Generator, out_size: tuple[int, int]) -> np.ndarray:
    """The scanner lid around the page, (h, w, 4) uint8 BGRA: near white, or black when the
    page was scanned with the lid open."""
    level = rng.uniform(5, 30) if rng.random() < 0.1 else rng.uniform(225, 250)
    field = level * (1.0 + 0.01 * smooth_noise(rng, low_res_size(out_size, BACKGROUND_RES), 3))
    return _enlarge_bgra(np.repeat(field[..., None], 3, axis=2), out_size)


def frame_gradient(
    rng: np.random.Generator, size: tuple[int, int], strength: float, vignette: float
) -> np.ndarray:
    """Uneven illumination factor, (h, w) float32 around 1: a linear fall-off and a vignette."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    nx, ny = 2 * xx / max(width - 1, 1) - 1, 2 * yy / max(height - 1, 1) - 1
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (nx * np.cos(angle) + ny * np.sin(angle)) / np.sqrt(2)
    r2 = (nx**2 + ny**2) / 2
    mottle = 0.04 * strength * smooth_noise(rng, size, 5)
    return np.asarray((1.0 + strength * ramp) * (1.0 - vignette * r2) + mottle, np.float32)


def hard_shadow(rng: np.random.Generator, size: tuple[int, int], blur_px: float) -> np.ndarray:
    """Mask (h, w) float32 0..1 of a shadow cast from outside the frame (a hand, the phone).

    A random polygon enters from one side and reaches 25-60 % into the frame; ``blur_px`` is
    the penumbra width in the same pixels as ``size``.
    """
    width, height = size
    side = int(rng.integers(4))
    depth = rng.uniform(0.25, 0.6)
    # Build the polygon for the top side in unit coordinates, then turn it to ``side``.
    a, b = sorted(rng.uniform(-0.2, 1.2, 2))
    b = max(b, a + 0.3)
    tips = np.sort(rng.uniform(a, b, int(rng.integers(2, 5))))
    reach = depth * rng.uniform(0.6, 1.0, tips.size)
    poly = np.concatenate([[[a, -0.1]], np.stack([tips, reach], 1), [[b, -0.1]]])
    u, v = poly[:, 0], poly[:, 1]
    unit = {0: (u, v), 1: (1 - v, u), 2: (1 - u, 1 - v), 3: (v, 1 - u)}[side]
    points = np.stack([unit[0] * width, unit[1] * height], 1)
    mask = np.zeros((height, width), np.float32)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], (1.0,), cv2.LINE_AA, shift=4)
    if blur_px > 0:
        mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), blur_px), np.float32)
    return mask


def glare(rng: np.random.Generator, size: tuple[int, int], strength: float) -> np.ndarray:
    """A soft bright spot (reflection of a lamp), (h, w) float32 factor >= 1."""
    width, height = size
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    radius = rng.uniform(0.08, 0.25) * max(width, height)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / radius**2
    return np.asarray(1.0 + strength * np.exp(-d2), np.float32)


def drop_shadow(page_mask: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Factor (h, w) float32 darkening the table just beside the page (its thickness, its lift)."""
    h, w = page_mask.shape
    shift = rng.uniform(-1.5, 1.5, 2) * max(h, w) / 400
    moved = cv2.warpAffine(
        page_mask, np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32), (w, h)
    )
    soft = cv2.GaussianBlur(moved, (0, 0), max(h, w) / 300)
    return np.asarray(1.0 - strength * soft * (1.0 - page_mask), np.float32)


def apply_light(image: np.ndarray, light_low: np.ndarray) -> np.ndarray:
    """Multiply ``image`` (h, w, 3) uint8 by a low-resolution factor (lh, lw, 3) float32."""
    height, width = image.shape[:2]
    coded = np.clip(light_low * LIGHT_UNITY + 0.5, 0, 255).astype(np.uint8)
    full = cv2.resize(coded, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(cv2.multiply(image, full, scale=1.0 / LIGHT_UNITY))


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised line kernel (k, k) float32 for a straight camera shake of ``length`` px."""
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size * 4, size * 4), np.float32)
    c = size * 2 - 0.5
    dx, dy = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    half = length * 2  # drawn at 4x and reduced, so the line is anti-aliased
    p0 = (round((c - dx * half) * 16), round((c - dy * half) * 16))
    p1 = (round((c + dx * half) * 16), round((c + dy * half) * 16))
    cv2.line(kernel, p0, p1, (1.0,), 4, cv2.LINE_AA, shift=4)
    small = cv2.resize(kernel, (size, size), interpolation=cv2.INTER_AREA)
    return np.asarray(small / max(float(small.sum()), 1e-6), np.float32)


def blur(image: np.ndarray, defocus_px: float, motion_px: float, motion_deg: float) -> np.ndarray:
    """Defocus (Gaussian, sigma ``defocus_px``) then camera shake (``motion_px`` long line)."""
    out = image
    if defocus_px > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), defocus_px)
    if motion_px >= 1.5:
        out = cv2.filter2D(out, -1, motion_kernel(motion_px, motion_deg))
    return np.asarray(out)


def sharpen(image: np.ndarray, amount: float, radius_px: float) -> np.ndarray:
    """Unsharp masking as phone cameras apply it (halos at edges included)."""
    soft = cv2.GaussianBlur(image, (0, 0), radius_px)
    return np.asarray(cv2.addWeighted(image, 1.0 + amount, soft, -amount, 0))


def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Sensor noise of std ``sigma`` grey levels: mostly shared by the channels, some colour.

    The noise is drawn for one tile of prime size and repeated; drawing 36 M normals for every
    12 MP frame would cost more than the rest of the simulation.
    """
    if sigma <= 0:
        return image
    th, tw = _NOISE_TILE
    luma = rng.standard_normal((th, tw, 1), dtype=np.float32)
    chroma = rng.standard_normal((th, tw, 3), dtype=np.float32)
    tile = 128.0 + sigma * (0.85 * luma + 0.5 * chroma)
    tile_u8 = np.clip(tile + 0.5, 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    oy, ox = int(rng.integers(th)), int(rng.integers(tw))
    reps = (-(-(h + oy) // th), -(-(w + ox) // tw), 1)
    noise = np.tile(tile_u8, reps)[oy : oy + h, ox : ox + w]
    return np.asarray(cv2.addWeighted(image, 1.0, noise, 1.0, -128.0))


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode again, (h, w, 3) uint8 BGR."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR))
