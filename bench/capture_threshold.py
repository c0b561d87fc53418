"""Calibrating the reader's threshold for sharp, well-resolved photos.

The reader's own threshold is chosen on validation fields a fifth of which are poor captures
(heavy blur, 2-4.5 px/mm), whose wrong readings are confident; it is stricter than a sharp
phone photo or scan needs.  Grading knows each page's measured blur (marker edge 10-90 %
rise, mm) and resolution (px per mm at the boxes), so it can hold a page that is measurably
sharp and well resolved to a threshold calibrated on such pages alone.

This tool simulates numbered class sets written with the validation glyphs (MNIST training
images held out from training, never the test split) in the ``scan``, ``phone`` and ``hard``
tiers, on its own seeds, reads every placed field through the real pipeline and keeps, per
field, the page's blur and resolution, whether the reading was exact and its confidence
(cached in ``--cache``).  For each candidate gate (resolution at least P px/mm, blur at most
E mm) it prints how many fields pass it, from which tiers, and the lowest threshold at which
the fields that pass are wrong at most 1 time in 500 once accepted, with the share of them
then sent to review.  ``--write P E`` stores that gate and its threshold in the model's
``reader.json`` (``calibration.sharp_capture``).

    .venv/bin/python bench/capture_threshold.py [--copies 40] [--seeds 5] [--seed 7400000 ...]
                                                [--tiers scan,phone,hard] [--write 6 0.6]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.blur_limit import Row, fields_with_blur  # noqa: E402
from grader import handwriting as hw  # noqa: E402
from grader.read import MODEL_DIR, Reader, load_config  # noqa: E402

DEV_SEED = 7_400_000
TARGET_ERROR = 0.002
MIN_PX_PER_MM = (4.0, 5.0, 6.0, 7.0)
MAX_EDGE_MM = (0.45, 0.6, 0.75, 0.85)
# Fewer fields than this behind a gate cannot show an error rate of 1 in 500 with any
# confidence (at least ~1500 accepted readings for three errors to count).
MIN_FIELDS = 2000


def collect(job: tuple[str, int, int, Path, Path]) -> tuple[str, list[Row]]:
    """One simulated class of ``tier``: a :data:`Row` for every placed field."""
    tier, copies, seed, data_dir, model_dir = job
    reader = Reader(model_dir, threads=1)
    glyphs = hw.MnistGlyphs(data_dir, "val")
    return tier, fields_with_blur(reader, tier, copies, seed, glyphs)


def load_rows(args: argparse.Namespace, model_version: str) -> dict[str, np.ndarray]:
    """Every field of every sample in ``--seed``, pooled."""
    samples = [load_sample(args, model_version, seed) for seed in args.seed]
    return {k: np.concatenate([s[k] for s in samples]) for k in samples[0]}


def load_sample(args: argparse.Namespace, model_version: str, base: int) -> dict[str, np.ndarray]:
    """Every field's (tier, blur, px/mm, exact, confidence) of the classes from seed ``base``,
    simulated now or from the cache."""
    cache = args.cache / f"{model_version}-{base}-{args.copies}x{args.seeds}-{args.tiers}.npz"
    if cache.is_file():
        print(f"fields from {cache}")
        with np.load(cache) as stored:
            return {k: stored[k] for k in stored.files}
    tiers = args.tiers.split(",")
    jobs = [(tier, args.copies, base + 100 * t + s, args.data_dir, args.model_dir)
            for s in range(args.seeds) for t, tier in enumerate(tiers)]
    names, rows = [], []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for done, (tier, found) in enumerate(pool.map(collect, jobs), start=1):
            print(f"  class {done} of {len(jobs)} ({tier}): {len(found)} fields", flush=True)
            names += [tier] * len(found)
            rows += found
    table = {
        "tier": np.array(names),
        "blur_mm": np.array([r[0] for r in rows]),
        "px_per_mm": np.array([r[1] for r in rows]),
        "exact": np.array([r[2] for r in rows]),
        "confidence": np.array([r[3] for r in rows]),
    }
    args.cache.mkdir(parents=True, exist_ok=True)
    np.savez(cache, tier=table["tier"], blur_mm=table["blur_mm"],
             px_per_mm=table["px_per_mm"], exact=table["exact"],
             confidence=table["confidence"])
    return table


def lowest_safe_threshold(confidence: np.ndarray, exact: np.ndarray, target: float) -> float:
    """The lowest confidence threshold at which accepted readings are wrong at most ``target``
    of the time (1.0 when none is)."""
    order = np.argsort(-confidence)
    wrong = np.cumsum(~exact[order])
    accepted = np.arange(1, len(order) + 1)
    ok = wrong <= target * accepted
    # Only thresholds that accept every field of equal confidence are real choices.
    distinct = np.append(confidence[order][1:] != confidence[order][:-1], True)
    usable = np.nonzero(ok & distinct)[0]
    return float(confidence[order][usable.max()]) if usable.size else 1.0


@dataclass(frozen=True)
class Gate:
    """The fields that pass one gate and the threshold their 1 in 500 allows."""

    fields: int
    threshold: float
    review_share: float
    accepted_errors: int
    default_review_share: float
    default_accepted_errors: int


def gate(table: dict[str, np.ndarray], min_px: float, max_edge: float,
         default_threshold: float) -> tuple[np.ndarray, Gate]:
    """Which fields pass the gate (page at least ``min_px`` px/mm, blur at most ``max_edge``
    mm), and its figures."""
    inside = (table["px_per_mm"] >= min_px) & (table["blur_mm"] <= max_edge)
    conf, exact = table["confidence"][inside], table["exact"][inside]
    threshold = lowest_safe_threshold(conf, exact, TARGET_ERROR)
    return inside, Gate(
        fields=int(inside.sum()),
        threshold=threshold,
        review_share=float((conf < threshold).mean()),
        accepted_errors=int((~exact[conf >= threshold]).sum()),
        default_review_share=float((conf < default_threshold).mean()),
        default_accepted_errors=int((~exact[conf >= default_threshold]).sum()),
    )


def print_gates(table: dict[str, np.ndarray], default_threshold: float) -> None:
    tiers = sorted(set(table["tier"].tolist()))
    print(f"{'px/mm >=':>8} {'blur <=':>7} {'fields':>7} "
          + " ".join(f"{t:>6}" for t in tiers)
          + f" {'threshold':>9} {'reviewed':>9} {'wrong':>6}  at default: reviewed, wrong")
    for min_px, max_edge in itertools.product(MIN_PX_PER_MM, MAX_EDGE_MM):
        inside, g = gate(table, min_px, max_edge, default_threshold)
        by_tier = " ".join(f"{int((inside & (table['tier'] == t)).sum()):6d}" for t in tiers)
        if g.fields < MIN_FIELDS:
            print(f"{min_px:8.1f} {max_edge:7.2f} {g.fields:7d} {by_tier}  too few")
            continue
        print(f"{min_px:8.1f} {max_edge:7.2f} {g.fields:7d} {by_tier} "
              f"{g.threshold:9.4f} {100 * g.review_share:8.1f}% {g.accepted_errors:6d}  "
              f"{100 * g.default_review_share:.1f}%, {g.default_accepted_errors}")


def write_gate(table: dict[str, np.ndarray], args: argparse.Namespace,
               default_threshold: float) -> None:
    min_px, max_edge = args.write
    _, g = gate(table, min_px, max_edge, default_threshold)
    path = args.model_dir / "reader.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["calibration"]["sharp_capture"] = {
        "min_px_per_mm": min_px,
        "max_edge_mm": max_edge,
        "threshold": g.threshold,
        "fields": g.fields,
        "review_share": g.review_share,
        "accepted_errors": g.accepted_errors,
        "split": "val",
        "tiers": args.tiers,
        "seeds": args.seed,
    }
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"wrote sharp-capture threshold {g.threshold:.4f} for pages of at least {min_px} "
          f"px/mm and at most {max_edge} mm blur into {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40, help="numbered copies per class")
    parser.add_argument("--seeds", type=int, default=3, help="classes per tier")
    parser.add_argument("--seed", type=int, nargs="+", default=[DEV_SEED],
                        help="first seed of each sample of classes; samples are pooled")
    parser.add_argument("--tiers", default="scan,phone,hard")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=hw.default_data_dir())
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "capture-threshold")
    parser.add_argument("--write", type=float, nargs=2, metavar=("MIN_PX_PER_MM", "MAX_EDGE_MM"))
    args = parser.parse_args()
    if not (args.data_dir / "mnist").is_dir():
        print(f"no data at {args.data_dir}: this needs MNIST (set --data-dir)")
        return 2
    config = load_config(args.model_dir / "reader.json")
    table = load_rows(args, str(config["model_version"]))
    default_threshold = float(config["calibration"]["threshold"])
    print_gates(table, default_threshold)
    if args.write:
        write_gate(table, args, default_threshold)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
