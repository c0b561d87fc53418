"""Opt-in debug output of the page pipeline: overlays and crops written to a folder.

Nothing here opens a window or runs unless asked for (``papergrade align --debug DIR``).
Per page it writes ``<name>.overlay.png``: the photo (downscaled) with the detected markers
and their ids, the QR's region, the page outline under the global homography, every box as
fitted (green: its own border was found; orange: placed from its neighbours; red: could not
be placed safely, so not read) and, for a page that failed, the error code and message.
With crops, ``<name>.crops.png`` shows them all.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from grader.align import project
from grader.errors import PageError
from grader.keyindex import Rect
from grader.pipeline import AlignedPage, AlignTrace

OVERLAY_LONG_SIDE = 1600
GREEN = (60, 170, 40)
ORANGE = (0, 140, 255)
RED = (40, 40, 220)
BLUE = (200, 120, 0)
MAGENTA = (200, 60, 200)


def safe_name(source: str) -> str:
    """A file name for a page's source string (``scans/a.pdf page 3`` -> ``a.pdf_page_3``)."""
    tail = source.replace("\\", "/").split("/")[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tail).strip("_") or "page"


def overlay(
    image: np.ndarray,
    trace: AlignTrace,
    qr_rect: Rect | None = None,
    size_mm: tuple[float, float] | None = None,
    error: PageError | None = None,
) -> np.ndarray:
    """The annotated, downscaled photo: (h, w, 3) uint8 BGR, long side ``OVERLAY_LONG_SIDE``."""
    base = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    scale = min(1.0, OVERLAY_LONG_SIDE / max(base.shape[:2]))
    canvas = cv2.resize(base, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)

    def pts(photo_px: np.ndarray) -> np.ndarray:
        # Photo index coordinates to canvas index coordinates.
        return np.round((np.asarray(photo_px) + 0.5) * scale - 0.5).astype(np.int32)

    for hit in trace.markers:
        used = trace.fit is not None and trace.fit.markers.get(hit.marker_id) is hit
        colour = BLUE if used else RED
        cv2.polylines(canvas, [pts(hit.corners)], True, colour, 2, cv2.LINE_AA)
        x, y = pts(hit.corners[0])
        cv2.putText(canvas, str(hit.marker_id), (int(x), int(y) - 4), cv2.FONT_HERSHEY_SIMPLEX,
                    0.6, colour, 2, cv2.LINE_AA)
    if trace.fit is not None:
        h = trace.fit.h
        if size_mm is not None:
            w, hh = size_mm
            page = project(h, np.array([[0, 0], [w, 0], [w, hh], [0, hh]], np.float64))
            cv2.polylines(canvas, [pts(page)], True, BLUE, 1, cv2.LINE_AA)
        if qr_rect is not None:
            x, y, w, hh = qr_rect
            quad = project(h, np.array([[x, y], [x + w, y], [x + w, y + hh], [x, y + hh]]))
            cv2.polylines(canvas, [pts(quad)], True, MAGENTA, 2, cv2.LINE_AA)
            if trace.qr_text:
                cx, cy = pts(quad[3])
                cv2.putText(canvas, trace.qr_text, (int(cx), int(cy) + 16),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.45, MAGENTA, 1, cv2.LINE_AA)
    for fit in trace.box_fits:
        colour = RED if not fit.trusted else GREEN if fit.found else ORANGE
        cv2.polylines(canvas, [pts(fit.corners_px)], True, colour, 2, cv2.LINE_AA)
        x, y = pts(fit.corners_px[0])
        cv2.putText(canvas, fit.box.box_id, (int(x), int(y) - 3), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, colour, 1, cv2.LINE_AA)
    if error is not None:
        _banner(canvas, f"ERROR [{error.code}]: {error.message}")
    return canvas


def _banner(canvas: np.ndarray, text: str) -> None:
    """Write ``text`` in red on a white band at the top, wrapped to the canvas width."""
    width = canvas.shape[1]
    chars = max(20, width // 9)
    lines = [text[i:i + chars] for i in range(0, len(text), chars)][:4]
    cv2.rectangle(canvas, (0, 0), (width, 8 + 20 * len(lines)), (255, 255, 255), -1)
    for k, line in enumerate(lines):
        cv2.putText(canvas, line, (6, 20 + 20 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, RED, 1,
                    cv2.LINE_AA)


def crop_sheet(result: AlignedPage) -> np.ndarray:
    """All crops of a page stacked in one (H, W) uint8 image, student number first."""
    tiles = [*result.student_number_crops, *result.crops.values()]
    if not tiles:
        return np.full((10, 10), 255, np.uint8)
    width = max(t.shape[1] for t in tiles)
    rows = [np.pad(t, ((2, 2), (0, width - t.shape[1])), constant_values=128) for t in tiles]
    return np.vstack(rows)


def write_debug(
    folder: Path,
    name: str,
    image: np.ndarray,
    trace: AlignTrace,
    result: AlignedPage | None = None,
    error: PageError | None = None,
    qr_rect: Rect | None = None,
    size_mm: tuple[float, float] | None = None,
) -> list[Path]:
    """Write the overlay (and, for an aligned page, the crop sheet); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    path = folder / f"{name}.overlay.png"
    cv2.imwrite(str(path), overlay(image, trace, qr_rect, size_mm, error))
    written.append(path)
    if result is not None:
        path = folder / f"{name}.crops.png"
        cv2.imwrite(str(path), crop_sheet(result))
        written.append(path)
    return written
