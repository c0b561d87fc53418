"""Geometry of simulated captures: where each point of a page lands in a photo or scan.

A geometry is a *forward* mapping from page millimetres (x right, y down, origin at the page's
top-left corner) to output pixels (x right, y down, pixel centres at integer coordinates, the
OpenCV convention). Ground truth (box corners, page corners) is the forward mapping of points;
the image is drawn with ``cv2.remap`` from the *inverse* mapping, solved numerically on a
coarse grid of output pixels and interpolated. Both come from the same function, so the ground
truth matches the image to a small fraction of a pixel.

Two kinds: :class:`FlatbedGeometry` (a rigid similarity with a tiny scanner stretch) and
:class:`CameraGeometry` (a page surface with curl and fold, posed in 3D and seen by a pinhole
camera).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

# Grid spacing (output pixels) of the solved inverse map; bilinear interpolation between grid
# nodes is accurate to well under 0.1 px for the smooth warps simulated here.
MAP_GRID_STEP = 16
_NEWTON_ITERATIONS = 12
_NEWTON_TOLERANCE_PX = 1e-3
_JACOBIAN_STEP_MM = 1e-3
_EX, _EY = np.array([1.0, 0.0]), np.array([0.0, 1.0])


class Geometry(Protocol):
    """Anything that maps page millimetres to output pixels and back."""

    @property
    def page_mm(self) -> tuple[float, float]:
        """Page (width, height) in mm."""
        ...

    def forward(self, points_mm: np.ndarray) -> np.ndarray:
        """(..., 2) page mm -> (..., 2) float64 output pixels."""
        ...

    def inverse(self, points_px: np.ndarray) -> np.ndarray:
        """(..., 2) output pixels -> (..., 2) float64 page mm (outside the page too)."""
        ...


@dataclass(frozen=True)
class FlatbedGeometry:
    """A page lying flat on a scanner: rotation about the page centre, then a placement.

    ``rotation_deg`` turns the page clockwise as seen in the scan (180 = upside down);
    ``stretch`` is the scan's (x, y) scale error; ``centre_px`` is where the page centre lands;
    ``px_per_mm`` is the scan resolution (dpi / 25.4).
    """

    page_mm: tuple[float, float]
    rotation_deg: float
    stretch: tuple[float, float]
    centre_px: tuple[float, float]
    px_per_mm: float

    def _matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """Affine ``A`` (2x2) and offset ``b`` with ``px = A @ mm + b``."""
        t = np.deg2rad(self.rotation_deg)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        a = self.px_per_mm * np.diag(self.stretch) @ rot
        centre_mm = np.array(self.page_mm) / 2.0
        b = np.array(self.centre_px) - a @ centre_mm
        return a, b

    def forward(self, points_mm: np.ndarray) -> np.ndarray:
        a, b = self._matrix()
        return np.asarray(points_mm, np.float64) @ a.T + b

    def inverse(self, points_px: np.ndarray) -> np.ndarray:
        a, b = self._matrix()
        return (np.asarray(points_px, np.float64) - b) @ np.linalg.inv(a).T


@dataclass(frozen=True)
class Curl:
    """Paper lifting into a cylinder near one edge (isometric: lengths along the page kept).

    ``direction``: unit vector in the page plane pointing towards the curling edge. With
    ``u = direction . (p - page centre)`` in mm, the page is flat for ``u <= start`` and bends
    with ``radius`` mm beyond, up to the page edge at ``u = end``; past the edge the surface
    continues straight, so points off the page still map one-to-one.
    """

    direction: tuple[float, float]
    start: float
    end: float
    radius: float

    def displace(self, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """In-plane shift along ``direction`` (mm) and lift (mm) at page-centred points ``rel``."""
        d = np.asarray(self.direction)
        t = rel @ d - self.start
        length = self.end - self.start
        tc = np.clip(t, 0.0, length)
        theta = tc / self.radius
        theta_end = length / self.radius
        beyond = np.maximum(t - length, 0.0)
        shift = self.radius * np.sin(theta) - tc + beyond * (np.cos(theta_end) - 1.0)
        lift = self.radius * (1.0 - np.cos(theta)) + beyond * np.sin(theta_end)
        return shift, lift


@dataclass(frozen=True)
class Fold:
    """A crease line: the page beyond it is turned by ``angle`` (rad) about the crease.

    The crease is where ``normal . (p - page centre) = offset`` (mm); ``softness`` (mm) rounds
    the crease the way paper does after being unfolded. A positive angle lifts the far side.
    """

    normal: tuple[float, float]
    offset: float
    angle: float
    softness: float

    def displace(self, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """In-plane shift along ``normal`` (mm) and lift (mm) at page-centred points ``rel``."""
        s = rel @ np.asarray(self.normal) - self.offset
        # softplus is a rounded max(s, 0): flat before the crease, turned after it.
        ramp = self.softness * np.logaddexp(0.0, s / self.softness)
        return -(1.0 - np.cos(self.angle)) * ramp, np.sin(self.angle) * ramp


@dataclass(frozen=True)
class CameraGeometry:
    """A possibly curled and folded page posed in front of a pinhole camera.

    Page point -> 3D surface point (mm, page frame centred on the page, z away from the camera)
    -> camera frame ``R @ X + (0, 0, distance)`` -> pixels ``f * (x, y) / z + principal``.
    ``rotation_deg`` is the in-plane turn (clockwise in the photo), ``tilt_deg`` the angle
    between the page normal and the optical axis, tilting about the in-plane axis at
    ``tilt_axis_deg``.
    """

    page_mm: tuple[float, float]
    rotation_deg: float
    tilt_deg: float
    tilt_axis_deg: float
    distance_mm: float
    focal_px: float
    principal_px: tuple[float, float]
    curl: Curl | None = None
    fold: Fold | None = None

    def rotation(self) -> np.ndarray:
        """3x3 rotation from the page frame to the camera frame."""
        g = np.deg2rad(self.rotation_deg)
        in_plane = np.array([[np.cos(g), -np.sin(g), 0.0], [np.sin(g), np.cos(g), 0.0], [0, 0, 1]])
        b, t = np.deg2rad(self.tilt_axis_deg), np.deg2rad(self.tilt_deg)
        axis = np.array([np.cos(b), np.sin(b), 0.0])
        tilt, _ = cv2.Rodrigues(axis * t)
        return np.asarray(tilt @ in_plane)

    def surface(self, points_mm: np.ndarray) -> np.ndarray:
        """(..., 2) page mm -> (..., 3) surface points in mm, page-centred, z away from camera."""
        rel = np.asarray(points_mm, np.float64) - np.array(self.page_mm) / 2.0
        xyz = np.concatenate([rel, np.zeros((*rel.shape[:-1], 1))], axis=-1)
        for warp in (self.curl, self.fold):
            if warp is None:
                continue
            shift, lift = warp.displace(rel)
            axis = np.asarray(warp.direction if isinstance(warp, Curl) else warp.normal)
            xyz[..., :2] += shift[..., None] * axis
            xyz[..., 2] -= lift  # lifted paper comes towards the camera: smaller z
        return xyz

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """(..., 3) page-frame mm -> (..., 2) pixels."""
        cam = xyz @ self.rotation().T
        z = cam[..., 2] + self.distance_mm
        return self.focal_px * cam[..., :2] / z[..., None] + np.asarray(self.principal_px)

    def forward(self, points_mm: np.ndarray) -> np.ndarray:
        return self.project(self.surface(points_mm))

    def flat_homography(self) -> np.ndarray:
        """3x3 homography page mm -> pixels of the same pose without curl and fold."""
        w, h = self.page_mm
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
        flat = CameraGeometry(
            self.page_mm,
            self.rotation_deg,
            self.tilt_deg,
            self.tilt_axis_deg,
            self.distance_mm,
            self.focal_px,
            self.principal_px,
        )
        dst = flat.forward(corners)
        return np.asarray(
            cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32)),
            np.float64,
        )

    def inverse(self, points_px: np.ndarray) -> np.ndarray:
        """Solve ``forward(q) = p`` by Newton's method, starting from the flat page's answer."""
        target = np.asarray(points_px, np.float64)
        shape = target.shape
        target = target.reshape(-1, 2)
        q = cv2.perspectiveTransform(target[None], np.linalg.inv(self.flat_homography()))[0]
        if self.curl is None and self.fold is None:
            return q.reshape(shape)
        step = _JACOBIAN_STEP_MM
        for _ in range(_NEWTON_ITERATIONS):
            f = self.forward(q)
            residual = f - target
            if np.abs(residual).max() < _NEWTON_TOLERANCE_PX:
                break
            fx = (self.forward(q + _EX * step) - f) / step
            fy = (self.forward(q + _EY * step) - f) / step
            det = fx[:, 0] * fy[:, 1] - fy[:, 0] * fx[:, 1]
            det = np.where(np.abs(det) < 1e-12, 1e-12, det)
            dx = (fy[:, 1] * residual[:, 0] - fy[:, 0] * residual[:, 1]) / det
            dy = (fx[:, 0] * residual[:, 1] - fx[:, 1] * residual[:, 0]) / det
            q = q - np.stack([dx, dy], axis=1)
        return q.reshape(shape)

    def surface_normals(self, points_mm: np.ndarray) -> np.ndarray:
        """(..., 2) page mm -> (..., 3) unit normals in the camera frame, facing the camera."""
        step = 0.5
        p = np.asarray(points_mm, np.float64)
        dx = self.surface(p + _EX * step) - self.surface(p - _EX * step)
        dy = self.surface(p + _EY * step) - self.surface(p - _EY * step)
        n = np.cross(dx, dy) @ self.rotation().T
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        # x cross y of the page points along +z, away from the camera; turn it round.
        return -n


def page_outline(page_mm: tuple[float, float], per_edge: int = 16) -> np.ndarray:
    """(4 * per_edge, 2) points along the page border in mm, clockwise from the top-left."""
    w, h = page_mm
    t = np.linspace(0.0, 1.0, per_edge, endpoint=False)
    top = np.stack([t * w, np.zeros_like(t)], 1)
    right = np.stack([np.full_like(t, w), t * h], 1)
    bottom = np.stack([(1 - t) * w, np.full_like(t, h)], 1)
    left = np.stack([np.zeros_like(t), (1 - t) * h], 1)
    return np.concatenate([top, right, bottom, left])


def grid_positions(size: int, step: int) -> np.ndarray:
    """Output coordinates of coarse grid nodes that ``cv2.resize`` by ``step`` lands exactly on.

    ``cv2.resize`` from n to n * step samples source node j at output coordinate
    ``(j + 0.5) * step - 0.5``. One extra node before and after (cropped later) keeps the
    interpolation from clamping near the borders. Returns the node coordinates (float64).
    """
    n = int(np.ceil(size / step)) + 2
    return (np.arange(n) - 1 + 0.5) * step - 0.5


def solve_grid(
    geometry: Geometry, out_size: tuple[int, int], step: int = MAP_GRID_STEP
) -> tuple[np.ndarray, np.ndarray]:
    """Page mm of the coarse grid nodes covering an output image of ``out_size`` (w, h).

    Returns ``(grid_mm, grid_px)``, both (gh, gw, 2) float64: the page point seen at each node
    and the node's output pixel coordinates. Upsample with :func:`upsample_grid`.
    """
    width, height = out_size
    xs = grid_positions(width, step)
    ys = grid_positions(height, step)
    grid_px = np.stack(np.meshgrid(xs, ys), axis=-1)
    return geometry.inverse(grid_px), grid_px


def upsample_grid(grid: np.ndarray, out_size: tuple[int, int], step: int) -> np.ndarray:
    """Bilinearly upsample a node grid from :func:`solve_grid` to (height, width, C) float32.

    Returns a view into a slightly larger array (OpenCV takes strided arrays as they are).
    """
    width, height = out_size
    gh, gw = grid.shape[:2]
    big = cv2.resize(
        grid.astype(np.float32), (gw * step, gh * step), interpolation=cv2.INTER_LINEAR
    )
    # The first node sits one step before the image (see grid_positions).
    return np.asarray(big)[step : step + height, step : step + width]
