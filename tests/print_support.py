"""Shared helpers for tests that print worksheets and look at the pixels."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from worksheets.exercises.registry import FAMILIES
from worksheets.spec import WorksheetSpec, parse_spec


def spec_with_every_family(seed: int = 7, paper: str = "A4") -> WorksheetSpec:
    """A spec holding one exercise of every registered family, so layout covers them all."""
    return parse_spec({
        "title": "Every family",
        "class_name": "Test class",
        "paper": paper,
        "seed": seed,
        "exercises": [{"family": name} for name in FAMILIES],
    })


def rasterize(pdf: Path, dpi: int, out_dir: Path) -> list[np.ndarray]:
    """Every page of the PDF as a grayscale uint8 image (H, W) at ``dpi``, via pdftoppm."""
    prefix = out_dir / f"page-{dpi}"
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-png", str(pdf), str(prefix)],
                   check=True)
    files = sorted(out_dir.glob(f"page-{dpi}-*.png"), key=lambda p: int(p.stem.split("-")[-1]))
    images = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    return [img for img in images if img is not None]


def edge_offsets_mm(gray: np.ndarray, bbox_mm: list[float], px_per_mm: float) -> list[float]:
    """How far each printed edge of a box lies from where key.json says (mm): left, right,
    top, bottom.  Each edge is found as the darkness peak of the projection profile near it.
    """
    x, y, w, h = bbox_mm
    ink = 255.0 - gray.astype(np.float64)
    search = 2.0  # mm either side of the predicted edge

    def peak(profile_axis: str, edge: float, span: tuple[float, float]) -> float:
        lo, hi = edge - search, edge + search
        if profile_axis == "x":
            rows = slice(int((span[0]) * px_per_mm), int((span[1]) * px_per_mm))
            cols = slice(int(lo * px_per_mm), int(hi * px_per_mm) + 1)
            profile = ink[rows, cols].sum(axis=0)
        else:
            cols = slice(int(span[0] * px_per_mm), int(span[1] * px_per_mm))
            rows = slice(int(lo * px_per_mm), int(hi * px_per_mm) + 1)
            profile = ink[rows, cols].sum(axis=1)
        start = int(lo * px_per_mm)
        centre_px = nearest_line_centre(profile, edge * px_per_mm - 0.5 - start) + start
        # Pixel i covers [i, i+1) in page coordinates; its centre is i + 0.5.
        return (centre_px + 0.5) / px_per_mm

    inner_y = (y + h * 0.3, y + h * 0.7)
    inner_x = (x + w * 0.3, x + w * 0.7)
    return [
        peak("x", x, inner_y) - x,
        peak("x", x + w, inner_y) - (x + w),
        peak("y", y, inner_x) - y,
        peak("y", y + h, inner_x) - (y + h),
    ]


def nearest_line_centre(profile: np.ndarray, predicted: float) -> float:
    """Centre (in profile indices) of the dark run closest to ``predicted``.

    Runs are stretches above half the profile's maximum; a neighbouring box's line a little
    further away is a separate run and is ignored.
    """
    dark = profile > profile.max() * 0.5
    runs: list[tuple[int, int]] = []
    start = None
    for index, value in enumerate([*dark, False]):
        if value and start is None:
            start = index
        elif not value and start is not None:
            runs.append((start, index))
            start = None
    centres = []
    for lo, hi in runs:
        weights = profile[lo:hi]
        centres.append(float((np.arange(lo, hi) * weights).sum() / weights.sum()))
    return min(centres, key=lambda c: abs(c - predicted))


def all_boxes(page: dict[str, Any]) -> list[tuple[str, list[float]]]:
    boxes = [(f["id"], f["bbox_mm"]) for f in page["fields"]]
    boxes += [(b["id"], b["bbox_mm"]) for b in page["student_number_boxes"]]
    return boxes
