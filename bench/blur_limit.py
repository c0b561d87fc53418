"""How the reader's accepted error grows with photo blur: evidence for the grading blur limit.

Also, for pages within that limit, how it depends on the page's resolution (px per mm).

Grading sends every field of a page whose marker edges spread over
``grader.grade.READABLE_EDGE_MM`` to review, because the reader misreads spread strokes with
confidence.  This development tool measures, on the validation glyphs (MNIST training images
held out from training, never the test split) and its own seeds, the reader's exact-reading
rate and accepted error at its threshold per band of page blur, over simulated `phone` and
`hard` photos of numbered class sets.

    .venv/bin/python bench/blur_limit.py [--copies 30] [--seed 7200000] [--tiers phone,hard]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from grader import handwriting as hw  # noqa: E402
from grader.errors import PageError  # noqa: E402
from grader.grade import (  # noqa: E402
    READABLE_EDGE_MM,
    box_of_name,
    crops_by_name,
    unplaced_by_name,
)
from grader.io import PageInput, iter_pages  # noqa: E402
from grader.keyindex import KeyIndex  # noqa: E402
from grader.pipeline import AlignOptions, align_page  # noqa: E402
from grader.read import Reader  # noqa: E402
from grader.simulate_class import simulate_class  # noqa: E402
from worksheets.publish import publish  # noqa: E402
from worksheets.spec import load_spec  # noqa: E402

DEV_SEED = 7_200_000
BANDS_MM = (0.0, 0.6, 0.85, 1.0, 1.15, 1.3, 1.5, 2.0, 9.0)
BANDS_PX_PER_MM = (0.0, 2.5, 3.0, 3.5, 4.5, 6.0, 99.0)
Row = tuple[float, float, bool, float]  # page blur mm, page px per mm, read exactly, confidence


def fields_with_blur(
    reader: Reader, tier: str, copies: int, seed: int, glyphs: hw.MnistGlyphs
) -> list[Row]:
    """A :data:`Row` for every placed field of a simulated class."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        printed = publish(load_spec(ROOT / "examples" / "linear-layer.yaml"), out / "print",
                          None, copies, progress=lambda message: None)
        key = json.loads(printed.key_json.read_text())
        truths = simulate_class(key, printed.worksheets_pdf, out / "photos", tier, seed,
                                glyph_source=glyphs)
        index = KeyIndex([key])
        for truth in truths:
            page = next(p for p in iter_pages([out / "photos" / truth.photo])
                        if isinstance(p, PageInput))
            try:
                aligned = align_page(page.image, index, AlignOptions(source=truth.photo))
            except PageError:
                continue
            boxes, lost = box_of_name(aligned), unplaced_by_name(aligned)
            crops = {n: c for n, c in crops_by_name(aligned).items() if n not in lost}
            readings = reader.read_batch(list(crops.values()))
            for name, reading in zip(crops, readings, strict=True):
                written = truth.written.get(boxes[name]) or None
                rows.append((aligned.quality.edge_mm, aligned.quality.px_per_mm,
                             reading.text == written, reading.confidence))
    return rows


class PageCapture(NamedTuple):
    px_per_mm: float
    edge_mm: float


def print_bands(rows: list[Row], reader: Reader) -> None:
    """Fields by page blur, then pages within grading's limit by resolution; a field counts as
    accepted at its page's threshold (see Reader.threshold_for)."""
    blur = np.array([r[0] for r in rows])
    scale = np.array([r[1] for r in rows])
    right = np.array([r[2] for r in rows])
    accepted = np.array([r[3] >= reader.threshold_for(PageCapture(r[1], r[0])) for r in rows])
    print_table("page blur mm", blur, np.ones_like(right), right, accepted, BANDS_MM)
    print(f"(grading's limit now: {READABLE_EDGE_MM} mm)\n\npages within that limit:")
    print_table("page px/mm", scale, blur <= READABLE_EDGE_MM, right, accepted, BANDS_PX_PER_MM)


def print_table(name: str, value: np.ndarray, within: np.ndarray, right: np.ndarray,
                accepted: np.ndarray, bands: tuple[float, ...]) -> None:
    print(f"{name:>14} {'fields':>7} {'exact':>7} {'accepted':>9} {'wrong':>6} "
          f"{'accepted error':>15}")
    for lo, hi in itertools.pairwise(bands):
        band = within.astype(bool) & (value >= lo) & (value < hi)
        if not band.any():
            continue
        acc = band & accepted
        wrong = int((acc & ~right).sum())
        error = wrong / acc.sum() if acc.any() else 0.0
        print(f"{lo:6.2f} - {hi:5.2f} {int(band.sum()):7d} {100 * right[band].mean():6.1f}% "
              f"{int(acc.sum()):9d} {wrong:6d} {100 * error:14.2f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=30, help="numbered copies per tier")
    parser.add_argument("--seed", type=int, default=DEV_SEED)
    parser.add_argument("--tiers", default="phone,hard")
    parser.add_argument("--data-dir", type=Path, default=hw.default_data_dir())
    args = parser.parse_args()
    if not (args.data_dir / "mnist").is_dir():
        print(f"no data at {args.data_dir}: this needs MNIST (set --data-dir)")
        return 2
    reader = Reader(threads=1)
    glyphs = hw.MnistGlyphs(args.data_dir, "val")
    rows: list[Row] = []
    for n, tier in enumerate(args.tiers.split(",")):
        print(f"simulating and reading {args.copies} copies, {tier} tier ...", flush=True)
        rows += fields_with_blur(reader, tier, args.copies, args.seed + n, glyphs)
    print_bands(rows, reader)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
