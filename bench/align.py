"""Locate, align and extract: accuracy per simulated capture tier, and speed on one core.

Prints, for each tier of the photo simulator (``scan``, ``phone``, ``hard``): how many pages
were aligned with every box placed, how many were usable (also those with a box or two left
unplaced: sent to review with a wider view, never read; ``partly_aligned``), the errors by
code, and how far each placed crop's centre is from the true box centre (mm; the simulator's
exact box corners mapped into the crop frame), with the count of placed boxes more than
1.5 mm off (a crop that could be misread; should be 0).  Then the speed table
on one core: OpenCV decoding a 4032 x 3024 JPEG (the floor) and ``align_page`` on the decoded
image, measured interleaved, medians, their ratio, time per stage and peak memory.

The pages are a two-copy class set holding every exercise family (20 pages, 4 to 18 boxes
each), filled in with synthetic handwriting.  Seeds start at 9 000 000, far from those used
by tests (below 100 000), by threshold calibration (20 000 - 50 000) and by the development
loop of ``bench/align_failures.py`` (7 100 000).

    .venv/bin/python bench/align.py [--pages-per-tier 300] [--tiers scan,phone,hard]
                                    [--speed-repeats 15] [--no-speed | --speed-only]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from grader import handwriting, simulate  # noqa: E402
from grader.align import BoxFit, review_margin_mm  # noqa: E402
from grader.errors import PageError  # noqa: E402
from grader.extract import crop_size, crop_to_photo  # noqa: E402
from grader.keyindex import KeyIndex, KeyPage  # noqa: E402
from grader.pipeline import AlignOptions, AlignTrace, align_page  # noqa: E402
from worksheets.exercises.registry import FAMILIES  # noqa: E402
from worksheets.publish import publish  # noqa: E402
from worksheets.spec import parse_spec  # noqa: E402

SEED = 9_000_000
RASTER_DPI = 300
MISPLACED_MM = 1.5
SPEED_FRAME = (4032, 3024)


@dataclass
class TierResult:
    pages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors_mm: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    # How far the neighbours' placement of each unplaced box is off: its wider view must
    # still show the box.  Per box: centre error, the margin a view needs to hold the whole
    # true box, and the margin its view has (grader.align.review_margin_mm); all mm.
    unplaced_mm: list[float] = field(default_factory=list)
    unplaced_needed_mm: list[float] = field(default_factory=list)
    unplaced_view_mm: list[float] = field(default_factory=list)

    @property
    def aligned(self) -> int:
        return self.outcomes["aligned"]

    @property
    def usable(self) -> int:
        return self.outcomes["aligned"] + self.outcomes["partly_aligned"]


def print_class(folder: Path) -> tuple[KeyIndex, list[KeyPage], list[np.ndarray]]:
    """Two copies of a sheet with every exercise family; key index, pages and 300 dpi rasters."""
    spec = parse_spec({
        "title": "Every family", "class_name": "Bench", "paper": "A4", "seed": 11,
        "exercises": [{"family": name} for name in FAMILIES],
    })
    printed = publish(spec, folder, None, 2, progress=lambda message: None)
    key_index = KeyIndex.load(printed.key_json)
    prefix = folder / "page"
    subprocess.run(["pdftoppm", "-r", str(RASTER_DPI), "-gray", "-png",
                    str(printed.worksheets_pdf), str(prefix)], check=True)
    files = sorted(folder.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[-1]))
    rasters = [np.asarray(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)) for f in files]
    pages = sorted(key_index.pages.values(), key=lambda p: p.pdf_page)
    return key_index, pages, rasters


def capture(
    page: KeyPage, raster: np.ndarray, tier: str, rng: np.random.Generator,
    frame_size: tuple[int, int] | None = None,
) -> simulate.Capture:
    """One filled-in page (80 % of boxes answered) photographed or scanned in ``tier``."""
    boxes = {b.box_id: list(b.rect) for b in page.all_boxes}
    answers = {b: handwriting.random_answer(rng) if rng.random() < 0.8 else "" for b in boxes}
    return simulate.simulate_page(raster, RASTER_DPI / 25.4, boxes, answers, tier, rng,
                                  frame_size=frame_size)


def crop_errors_mm(result_fits: list, cap: simulate.Capture) -> list[float]:
    """Distance (mm) between each crop's centre and where the true box centre lands in it."""
    errors = []
    for fit in result_fits:
        quad = cap.box_quads[fit.box.box_id].reshape(-1, 1, 2)
        to_crop = np.linalg.inv(crop_to_photo(fit.h, fit.box.rect))
        in_crop = cv2.perspectiveTransform(quad, to_crop).reshape(-1, 2)
        width, height = crop_size(fit.box.rect)
        centre = np.array([(width - 1) / 2, (height - 1) / 2])
        errors.append(float(np.linalg.norm(in_crop.mean(axis=0) - centre)) / 10.0)
    return errors


def needed_margin_mm(fit: BoxFit, cap: simulate.Capture) -> float:
    """How far (mm, in the box's own frame) the true box reaches beyond its estimated place:
    the smallest margin of a view around the estimate that holds the whole true box."""
    quad = cap.box_quads[fit.box.box_id].reshape(-1, 1, 2).astype(np.float64)
    in_mm = cv2.perspectiveTransform(quad, np.linalg.inv(fit.h)).reshape(-1, 2)
    x, y, w, h = fit.box.rect
    beyond = [x - in_mm[:, 0].min(), in_mm[:, 0].max() - (x + w),
              y - in_mm[:, 1].min(), in_mm[:, 1].max() - (y + h)]
    return float(max(0.0, *beyond))


def run_tier(tier: str, count: int, index: int, key_index: KeyIndex, pages: list[KeyPage],
             rasters: list[np.ndarray]) -> TierResult:
    result = TierResult()
    for i in range(count):
        rng = np.random.default_rng([SEED, index, i])
        k = int(rng.integers(len(pages)))
        cap = capture(pages[k], rasters[k], tier, rng)
        trace = AlignTrace()
        start = time.perf_counter()
        try:
            aligned = align_page(cap.image, key_index, AlignOptions(source=f"{tier} {i}"), trace)
        except PageError as err:
            result.outcomes[err.code] += 1
        else:
            result.outcomes["aligned" if aligned.fully_aligned else "partly_aligned"] += 1
            placed = [f for f in aligned.box_fits if f.trusted]
            result.errors_mm.extend(crop_errors_mm(placed, cap))
            lost = [f for f in aligned.box_fits if not f.trusted]
            result.unplaced_mm.extend(crop_errors_mm(lost, cap))
            result.unplaced_needed_mm.extend(needed_margin_mm(f, cap) for f in lost)
            result.unplaced_view_mm.extend(review_margin_mm(f) for f in lost)
            if aligned.key_page.pdf_page != pages[k].pdf_page:
                result.outcomes["WRONG PAGE"] += 1
        result.seconds.append(time.perf_counter() - start)
        result.pages += 1
    return result


def print_accuracy(results: dict[str, TierResult]) -> None:
    print(f"{'tier':6} {'pages':>5} {'aligned':>8} {'usable':>7} {'median mm':>10} {'p99 mm':>8} "
          f"{'max mm':>7} {'>1.5mm':>6} {'s/page':>7}  errors")
    hidden = ("aligned", "partly_aligned")
    for tier, r in results.items():
        errs = np.array(r.errors_mm) if r.errors_mm else np.array([np.nan])
        off = int((errs > MISPLACED_MM).sum())
        codes = ", ".join(f"{c} {n}" for c, n in sorted(r.outcomes.items()) if c not in hidden)
        print(f"{tier:6} {r.pages:5d} {100.0 * r.aligned / max(r.pages, 1):7.1f}% "
              f"{100.0 * r.usable / max(r.pages, 1):6.1f}% "
              f"{np.nanmedian(errs):10.3f} {np.nanpercentile(errs, 99):8.3f} "
              f"{np.nanmax(errs):7.3f} {off:6d} {statistics.median(r.seconds):7.3f}  "
              f"{codes or '-'}")
    for tier, r in results.items():
        if r.unplaced_mm:
            outside = sum(n > v for n, v in zip(r.unplaced_needed_mm, r.unplaced_view_mm,
                                                strict=True))
            print(f"{tier}: {r.outcomes['partly_aligned']} page(s) usable with "
                  f"{len(r.unplaced_mm)} box(es) left unplaced for review; their estimated "
                  f"place was off by at most {max(r.unplaced_mm):.1f} mm (centre); review "
                  f"views {min(r.unplaced_view_mm):.1f}-{max(r.unplaced_view_mm):.1f} mm "
                  f"around the box, {outside} too narrow to hold the whole box")


def speed(key_index: KeyIndex, pages: list[KeyPage], rasters: list[np.ndarray], repeats: int,
          folder: Path) -> None:
    """Decode floor vs locate-align-extract on one core, for three phone photos."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    by_boxes = sorted(range(len(pages)), key=lambda k: len(pages[k].all_boxes))
    chosen = [by_boxes[-1], by_boxes[len(by_boxes) // 2], by_boxes[0]]  # most, median, fewest
    print(f"\nspeed, one core, {SPEED_FRAME[0]}x{SPEED_FRAME[1]} phone JPEGs (quality 90), "
          f"median of {repeats}")
    print(f"{'boxes':>5} {'JPEG KB':>7} {'decode ms':>9} {'align ms':>8} {'ratio':>6}  stages (ms)")
    ratios = []
    for n, k in enumerate(chosen):
        rng = np.random.default_rng([SEED, 99, n])
        cap = capture(pages[k], rasters[k], "phone", rng, frame_size=SPEED_FRAME)
        path = simulate.save_jpeg(cap.image, folder / f"speed{n}.jpg", quality=90)
        data = np.frombuffer(path.read_bytes(), np.uint8)
        image = np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR))
        align_page(image, key_index)  # warm-up: imports, caches
        decode_s, align_s, stages = [], [], Counter[str]()
        for _ in range(repeats):
            start = time.perf_counter()
            cv2.imdecode(data, cv2.IMREAD_COLOR)
            decode_s.append(time.perf_counter() - start)
            trace = AlignTrace()
            start = time.perf_counter()
            align_page(image, key_index, trace=trace)
            align_s.append(time.perf_counter() - start)
            stages.update({s: v / repeats for s, v in trace.timings.items()})
        dec, ali = statistics.median(decode_s), statistics.median(align_s)
        ratios.append(ali / dec)
        stage_text = " ".join(f"{s} {1000 * v:.1f}" for s, v in stages.items())
        print(f"{len(pages[k].all_boxes):5d} {len(data) // 1024:7d} {1000 * dec:9.1f} "
              f"{1000 * ali:8.1f} {ali / dec:6.2f}  {stage_text}")
    print(f"ratio locate+align+extract / decode: median {statistics.median(ratios):.2f} "
          f"(target 1.5)")
    tracemalloc.start()
    align_page(image, key_index)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory per page: {peak / 2**20:.1f} MiB allocated by align_page "
          f"(tracemalloc; the decoded photo itself is {image.nbytes / 2**20:.1f} MiB); "
          f"process peak RSS {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages-per-tier", type=int, default=300)
    parser.add_argument("--tiers", default="scan,phone,hard")
    parser.add_argument("--speed-repeats", type=int, default=15)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()
    tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-align-") as tmp:
        folder = Path(tmp)
        key_index, pages, rasters = print_class(folder)
        if args.speed_only:
            speed(key_index, pages, rasters, args.speed_repeats, folder)
            return
        results = {}
        for index, tier in enumerate(tiers):
            results[tier] = run_tier(tier, args.pages_per_tier, index, key_index, pages, rasters)
            print(f"  {tier}: done", file=sys.stderr)
        print(f"locate-align-extract accuracy, {args.pages_per_tier} simulated pages per tier")
        print_accuracy(results)
        if not args.no_speed:
            speed(key_index, pages, rasters, args.speed_repeats, folder)


if __name__ == "__main__":
    main()
