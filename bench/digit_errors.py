"""What the reader gets wrong on lone validation digits, by kind of error.

A development tool next to ``bench/reader.py``: it reads the same lone digits as that
benchmark's first tier (each MNIST digit alone in a clean box), but from the validation
glyphs (MNIST training images held out from training), so that what is learnt from its
output is never learnt from the test split.  It prints the share read right, the errors by
kind (another digit, no value with the status given, extra characters) and the most common
confusions; with ``--save DIR`` it writes each wrong digit's network input, one image per
kind, for a look.

    .venv/bin/python bench/digit_errors.py [--count 5000] [--model-dir DIR] [--save DIR]
        [--bar-sevens] [--thin-ones]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.reader import lone_digit_crops, read_all  # noqa: E402
from grader import handwriting as hw  # noqa: E402
from grader.read import Reader, Reading, preprocess  # noqa: E402
from training.synth import bar_seven, thin_stroke  # noqa: E402


@dataclass(frozen=True)
class Miss:
    truth: str
    reading: Reading
    crop: np.ndarray


def error_kind(truth: str, reading: Reading) -> str:
    """How a reading of the lone digit ``truth`` is wrong ('' when it is right)."""
    if reading.text == truth:
        return ""
    if reading.text is None:
        return f"no value ({reading.status})"
    if len(reading.text) == 1 and reading.text.isdigit():
        return "another digit"
    return "extra or other characters"


Edit = Callable[[str, np.ndarray, int], np.ndarray]


def glyph_edits(seed: int, bar_sevens: bool, thin_ones: bool) -> Edit | None:
    """An edit for :func:`lone_digit_crops` that draws every seven with a bar and every one
    thinner, as asked (seeded), or None when neither is."""
    if not (bar_sevens or thin_ones):
        return None

    def edit(digit: str, image: np.ndarray, n: int) -> np.ndarray:
        if digit == "7" and bar_sevens:
            return bar_seven(image, np.random.default_rng([seed, 7, n]))
        if digit == "1" and thin_ones:
            return thin_stroke(image, np.random.default_rng([seed, 1, n]))
        return image

    return edit


def digit_summary(
    labels: list[str], kinds: list[str], digit: str, name: str, status: str
) -> str:
    """One line on the lone ``digit``s: how many, the share read right, and how many were
    called ``status`` (the no-value status its known misses take)."""
    own = [kind for truth, kind in zip(labels, kinds, strict=True) if truth == digit]
    return (f"  {name}: {len(own)}, {100 * own.count('') / max(len(own), 1):.2f} % read right, "
            f"{own.count(f'no value ({status})')} called {status.replace('_', ' ')}")


def save_sheets(misses_by_kind: dict[str, list[Miss]], folder: Path) -> None:
    """One image per kind of error: the network inputs of its misses, one above the other."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, misses in misses_by_kind.items():
        tiles = []
        for miss in misses:
            ink = np.clip(preprocess(miss.crop), 0.0, 1.0)
            tile = (255 - 255 * ink).astype(np.uint8)
            cv2.putText(tile, f"{miss.truth}>{miss.reading.text or '-'}", (2, 10),
                        cv2.FONT_HERSHEY_PLAIN, 0.7, 0, 1)
            tiles.append(cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=128))
        name = "_".join("".join(c if c.isalnum() else " " for c in kind).split())
        sheet = cv2.resize(np.vstack(tiles), None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(folder / f"{name}.png"), sheet)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=hw.default_data_dir())
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--count", type=int, default=5000, help="validation digits (at most 5000)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--save", type=Path, default=None, help="write the misses' inputs here")
    p.add_argument(
        "--bar-sevens",
        action="store_true",
        help="draw every seven with a bar through its stem (training.synth.bar_seven)",
    )
    p.add_argument(
        "--thin-ones",
        action="store_true",
        help="draw every one with a thinner stroke (training.synth.thin_stroke)",
    )
    args = p.parse_args()
    if not (args.data_dir / "mnist").is_dir():
        print(f"no data at {args.data_dir}: this tool needs MNIST (set --data-dir)")
        return 2
    reader = Reader(args.model_dir, threads=1)
    glyphs = hw.MnistGlyphs(args.data_dir, "val")
    edit = glyph_edits(args.seed, args.bar_sevens, args.thin_ones)
    crops, labels = lone_digit_crops(glyphs, args.count, args.seed, clean=True, edit=edit)
    readings = read_all(reader, crops)
    kinds = [error_kind(t, r) for t, r in zip(labels, readings, strict=True)]
    by_kind: dict[str, list[Miss]] = defaultdict(list)
    for truth, reading, crop, kind in zip(labels, readings, crops, kinds, strict=True):
        if kind:
            by_kind[kind].append(Miss(truth, reading, crop))
    wrong = sum(len(m) for m in by_kind.values())
    print(f"model {reader.config.get('model_version')}: {len(labels)} validation digits, "
          f"{100 * (1 - wrong / len(labels)):.2f} % read right, {wrong} wrong")
    for kind, misses in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        confident = sum(m.reading.confidence >= reader.threshold for m in misses)
        pairs = Counter(f"{m.truth}>{m.reading.text or '-'}" for m in misses).most_common(8)
        print(f"  {kind:<28} {len(misses):4d}  ({confident} at or above the threshold)  "
              + ", ".join(f"{pair} x{k}" for pair, k in pairs))
    print(digit_summary(labels, kinds, "7", "sevens (all barred)" if args.bar_sevens
                        else "sevens", "crossed_out"))
    print(digit_summary(labels, kinds, "1", "ones (all thinned)" if args.thin_ones
                        else "ones", "blank"))
    if args.save:
        save_sheets(by_kind, args.save)
        print(f"inputs of the misses written to {args.save}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
