"""``papergrade read``: read handwritten numbers from field crops, one line per image.

Each line is ``path<TAB>value<TAB>confidence<TAB>alternatives``: the value is the number as
written, or ``blank``, ``smudge`` or ``crossed-out`` when there is no answer, followed by
``review`` when the confidence is below the model's threshold.  A crop alone says nothing of
the photo it came from, so it is held to the model's default threshold, never to the lower one
grading uses for pages measured sharp and well resolved.  An image that cannot be read gets an
``error`` line with the reason, and the other images are still read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from grader.read import Reader, Reading

_NO_ANSWER = {"blank": "blank", "smudge": "smudge", "crossed_out": "crossed-out"}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "read",
        help="read handwritten numbers from field crop images",
        description="Read each crop (PNG, JPEG, ...; grayscale or colour) and print one line "
        "per crop: path, value, confidence and the next-best readings.",
    )
    parser.add_argument("crops", nargs="+", type=Path, help="field crop images")
    parser.add_argument("--model-dir", type=Path, default=None, help="reader.onnx + reader.json")
    parser.add_argument("--threshold", type=float, default=None, help="review below this")
    parser.add_argument("--alternatives", type=int, default=3, help="how many to show")
    parser.set_defaults(func=run)


def describe(reading: Reading, alternatives: int = 3) -> str:
    """The value, confidence and alternatives of one reading, tab-separated."""
    value = reading.text if reading.text is not None else _NO_ANSWER.get(reading.status, "blank")
    if reading.needs_review:
        value += " review"
    alts = ", ".join(
        f"{t if t is not None else 'blank'} {p:.3f}" for t, p in reading.alternatives[:alternatives]
    )
    return f"{value}\t{reading.confidence:.3f}\t{alts or '-'}"


def load_crop(path: Path) -> np.ndarray:
    """A crop file as ``uint8`` grayscale ``(H, W)``; raises ValueError when unreadable."""
    if not path.is_file():
        raise ValueError("no such file")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise ValueError("not an image OpenCV can decode")
    return image


def run(args: argparse.Namespace) -> int:
    reader = Reader(args.model_dir, threshold=args.threshold)  # a model error stops everything
    paths: list[Path] = []
    crops: list[np.ndarray] = []
    failures = 0
    for path in args.crops:
        try:
            crops.append(load_crop(path))
            paths.append(path)
        except ValueError as exc:
            failures += 1
            print(f"{path}\terror\t{exc}", file=sys.stderr)
    for path, reading in zip(paths, reader.read_batch(crops), strict=True):
        print(f"{path}\t{describe(reading, args.alternatives)}")
    return 1 if failures else 0
