"""Why pages of a simulated tier are not aligned: one line per page, overlays of the failures.

A development tool next to ``bench/align.py``: it uses its own seeds (``--seed``, default
7 100 000, disjoint from the benchmark's 9 000 000 and from the tests' below 100 000), so
that what is tuned on it is measured on pages it never saw.  Per page it prints the outcome
(``aligned`` or the error code), the worst crop error (mm), the boxes not found by their own
border and why; with ``--debug DIR`` it writes the overlay of every page that failed or has
a crop more than ``--flag-mm`` off (see :mod:`grader.debug`).

    .venv/bin/python bench/align_failures.py [--tier hard] [--pages 60] [--seed 7100000]
                                             [--debug /tmp/align-debug] [--flag-mm 0.7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.align import capture, crop_errors_mm, print_class  # noqa: E402
from grader import debug  # noqa: E402
from grader.errors import PageError  # noqa: E402
from grader.pipeline import AlignOptions, AlignTrace, align_page  # noqa: E402

DEV_SEED = 7_100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="hard")
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--seed", type=int, default=DEV_SEED)
    parser.add_argument("--debug", type=Path, default=None)
    parser.add_argument("--flag-mm", type=float, default=0.7)
    args = parser.parse_args()
    if args.seed == 9_000_000:
        parser.error("9 000 000 is the benchmark's seed; pick a development seed")
    outcomes: Counter[str] = Counter()
    worst: list[float] = []
    with tempfile.TemporaryDirectory(prefix="align-failures-") as tmp:
        key_index, pages, rasters = print_class(Path(tmp))
        for i in range(args.first, args.first + args.pages):
            rng = np.random.default_rng([args.seed, i])
            k = int(rng.integers(len(pages)))
            cap = capture(pages[k], rasters[k], args.tier, rng)
            trace = AlignTrace()
            error: PageError | None = None
            result = None
            try:
                result = align_page(cap.image, key_index, AlignOptions(source=f"page {i}"),
                                    trace)
            except PageError as err:
                error = err
            errs = crop_errors_mm(trace.box_fits, cap) if trace.box_fits else []
            placed = [e for f, e in zip(trace.box_fits, errs, strict=False) if f.trusted]
            top = max(placed) if placed else float("nan")
            code = error.code if error is not None else (
                "aligned" if result is None or result.fully_aligned else "partly_aligned")
            if result is not None and result.key_page.pdf_page != pages[k].pdf_page:
                code = "WRONG PAGE"
            outcomes[code] += 1
            if error is None:
                worst.append(top)
            missed = [f"{f.box.box_id}({'placed' if f.trusted else 'LOST'}: {f.note}; "
                      f"{e:.2f})" for f, e in zip(trace.box_fits, errs or [np.nan] * 99,
                                                  strict=False) if not f.found]
            fold = cap.params.get("fold") or {}
            print(f"{i:4d} p{pages[k].pdf_page:02d} {code:20s} worst {top:5.2f} mm  "
                  f"frame {cap.params['frame']} fold {fold.get('angle', 0):+.2f}  "
                  f"{'; '.join(missed)}", flush=True)
            if args.debug and (error is not None or top > args.flag_mm):
                debug.write_debug(args.debug, f"{args.tier}_{args.seed}_{i}", cap.image, trace,
                                  result, error, key_index.geometry.qr_rect,
                                  pages[k].size_mm)
    n = sum(outcomes.values())
    print(f"\n{args.tier}: {outcomes['aligned']}/{n} aligned; " +
          ", ".join(f"{c} {v}" for c, v in outcomes.most_common() if c != "aligned"))
    if worst:
        arr = np.array(worst)
        print(f"worst crop per aligned page: median {np.median(arr):.3f}, max {arr.max():.3f} "
              f"mm; pages over {args.flag_mm} mm: {int((arr > args.flag_mm).sum())}")


if __name__ == "__main__":
    main()
