"""Benchmark of the handwritten number reader on held-out data only, against Tesseract.

    .venv/bin/python bench/reader.py [--fields 3000] [--digits 10000] [--tesseract 400]

Tiers, all from writers the model never saw in training (MNIST t10k split, the symbols'
"test" arrays, seeds of a stream training never draws from):

1. digits: every MNIST test digit alone in an answer box (clean crop, then with camera effects);
2. fields: numbers composed from held-out glyphs in boxes with camera effects, box-line
   remnants, blanks, erasures and crossed-out answers (training.synth), whole-field accuracy
   and the accepted-error vs review-share curve;
   decimals: numbers with a decimal point, each written once with the point and once with
   a decimal comma (the same seeds otherwise), read as the point either way;
   faint: the same numbers written in pencil of decreasing darkness, to see how many are
   taken for an empty box without review;
3. photo: simulated phone photos of printed worksheets run through the page pipeline
   (grader.simulate_class + grader.pipeline.align_page), when those modules are importable;
4. speed on one core, and Tesseract (digits whitelist, single-line mode) on the same fields.

``--split val`` runs the same tiers on the validation glyphs (MNIST training images held out
from training): that is where candidate models are compared, so the test split is only ever
used to report the chosen one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader import handwriting as hw  # noqa: E402
from grader.read import Reader, Reading, clean_ink, frame_ink, ink_geometry  # noqa: E402
from training.synth import FieldSample, Synthesizer  # noqa: E402

BENCH_STREAM = 2  # training uses stream 0 and calibration stream 1


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=hw.default_data_dir())
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--digits", type=int, default=10000, help="MNIST test digits (max 10000)")
    p.add_argument("--fields", type=int, default=3000, help="synthetic held-out fields")
    p.add_argument(
        "--decimals",
        type=int,
        default=600,
        help="numbers with a decimal point, each written with a point and with a comma",
    )
    p.add_argument(
        "--faint", type=int, default=400, help="numbers written at each faint pencil darkness"
    )
    p.add_argument("--tesseract", type=int, default=400, help="fields also read by Tesseract")
    p.add_argument("--photo-copies", type=int, default=40, help="copies in the photo tier")
    p.add_argument("--tier", default="phone", help="simulator tier of the photo tier")
    p.add_argument(
        "--split",
        default="test",
        choices=("test", "val"),
        help="glyphs to write with: test (report) or val (compare candidate models)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument(
        "--save-misreads",
        type=Path,
        default=None,
        help="write photo-tier crops read wrongly or sent to review here, for inspection",
    )
    return p.parse_args()


def read_all(reader: Reader, crops: Sequence[np.ndarray], batch: int = 64) -> list[Reading]:
    out: list[Reading] = []
    for i in range(0, len(crops), batch):
        out.extend(reader.read_batch(crops[i : i + batch]))
    return out


def digit_tier(reader: Reader, glyphs: hw.MnistGlyphs, count: int, seed: int) -> dict[str, float]:
    """Every MNIST digit of the split (up to ``count``) alone in a box, clean and photographed."""
    result = {}
    for name, clean in (("clean", True), ("camera", False)):
        crops, labels = lone_digit_crops(glyphs, count, seed, clean)
        readings = read_all(reader, crops)
        result["count"] = float(len(labels))
        result[name] = float(np.mean([r.text == t for r, t in zip(readings, labels, strict=True)]))
    return result


def lone_digit_crops(
    glyphs: hw.MnistGlyphs,
    count: int,
    seed: int,
    clean: bool,
    edit: Callable[[str, np.ndarray, int], np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[str]]:
    """Crops of ``count`` digits of the split (a seeded draw), each alone in a box, clean or
    with camera effects, and their labels.  ``edit(digit, image, n)``, when given, changes
    the ``n``-th glyph image (ink 0..1) before it is written."""
    synth = Synthesizer(glyphs, stroke_share=0.0, symbol_stroke_share=0.0, clean=clean)
    order = [(d, i) for d in hw.DIGITS for i in range(len(glyphs.images(d)))]
    rng = np.random.default_rng([seed, BENCH_STREAM, 0])
    crops, labels = [], []
    for n, k in enumerate(rng.permutation(len(order))[:count]):
        digit, index = order[int(k)]
        source = _OneGlyph(glyphs.images(digit)[index])
        if edit is not None:
            source.image = edit(digit, source.image, n)
        synth.mnist_like = source  # type: ignore[assignment]
        sample_rng = np.random.default_rng([seed, BENCH_STREAM, 1, n])
        crops.append(synth.render(digit, "number", sample_rng).image)
        labels.append(digit)
    return crops, labels


class _OneGlyph:
    """A glyph source that always draws the same MNIST image (to read each test digit once)."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image.astype(np.float32) / 255.0

    def glyph(self, char: str, rng: np.random.Generator) -> np.ndarray:
        return self.image


def field_samples(glyphs: hw.MnistGlyphs, count: int, seed: int) -> list[FieldSample]:
    synth = Synthesizer(glyphs, stroke_share=0.0, symbol_stroke_share=0.0)
    return [synth.sample(np.random.default_rng([seed, BENCH_STREAM, 2, i])) for i in range(count)]


def expected_value(sample: FieldSample) -> str | None:
    return sample.text if sample.status == "number" else None


def curve(conf: np.ndarray, correct: np.ndarray, thresholds: Sequence[float]) -> list[tuple]:
    rows = []
    for t in thresholds:
        accepted = conf >= t
        n = int(accepted.sum())
        errors = int((~correct[accepted]).sum())
        rows.append((t, 1 - n / len(conf), errors / n if n else 0.0, errors, n))
    return rows


def tesseract_read(crop: np.ndarray) -> str | None:
    """Tesseract's reading of one crop (digits whitelist, single line); None when empty."""
    import pytesseract

    config = "--psm 7 -c tessedit_char_whitelist=0123456789-."
    try:
        text = pytesseract.image_to_string(crop, config=config)
    except pytesseract.TesseractError:
        return "<error>"  # counted as a wrong reading
    return text.strip().replace(" ", "") or None


def time_reader(reader: Reader, crops: Sequence[np.ndarray]) -> dict[str, float]:
    """Milliseconds per field: whole read, and the preprocessing and network parts of it."""
    read_all(reader, crops[:64])  # warm-up
    t0 = time.perf_counter()
    read_all(reader, crops)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    for c in crops:
        ink = clean_ink(c)
        for view in reader.views:
            frame_ink(ink, view)
        if reader.reads_geometry:
            ink_geometry(ink)
    pre = time.perf_counter() - t0
    t0 = time.perf_counter()
    reader.logits(crops, reader.views)
    net = time.perf_counter() - t0 - pre
    n = len(crops)
    return {"total": 1000 * total / n, "preprocess": 1000 * pre / n, "network": 1000 * net / n}


def photo_tier(reader: Reader, args: argparse.Namespace, glyphs: hw.MnistGlyphs) -> dict:
    """PHOTO TIER HOOK: printed worksheets, simulated photos, the real pipeline's crops.

    Needs worksheets.publish, grader.simulate_class and grader.pipeline; when one is missing
    or fails, the tier is skipped with the reason instead of failing the benchmark.
    """
    if args.photo_copies <= 0:
        # Without this, publishing 0 copies prints the spec's default class set instead.
        return {"skipped": "--photo-copies 0"}
    try:
        from grader.io import PageInput, iter_pages
        from grader.keyindex import KeyIndex
        from grader.pipeline import AlignOptions, align_page
        from grader.results import StudentRef
        from grader.simulate_class import simulate_class
        from worksheets.publish import publish
        from worksheets.spec import load_spec
    except ImportError as exc:
        return {"skipped": f"page pipeline not importable ({exc})"}
    examples = ROOT / "examples"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        spec = load_spec(examples / "linear-layer.yaml")
        # Numbered copies, so students also write their student number digit by digit.
        printed = publish(spec, out / "print", None, args.photo_copies)
        key = json.loads(printed.key_json.read_text())
        digits = max(len(p["student_number_boxes"]) for p in key["pages"])
        rng = np.random.default_rng([args.seed, BENCH_STREAM, 3])
        roster = [
            StudentRef("".join(str(d) for d in rng.integers(0, 10, digits)), f"Student {i}")
            for i in range(args.photo_copies)
        ]
        truths = simulate_class(
            key,
            printed.worksheets_pdf,
            out / "photos",
            args.tier,
            args.seed,
            roster=roster,
            glyph_source=glyphs,
        )
        index = KeyIndex([key])
        crops: list[np.ndarray] = []
        expected: list[str | None] = []
        # Each crop's review threshold: grading holds sharp, well-resolved pages to their own.
        thresholds: list[float] = []
        failed_pages = 0
        reasons: Counter[str] = Counter()
        for truth in truths:
            pages = [
                p for p in iter_pages([out / "photos" / truth.photo]) if isinstance(p, PageInput)
            ]
            try:
                aligned = align_page(pages[0].image, index, AlignOptions(source=truth.photo))
            except Exception as exc:  # a page the pipeline cannot align is its own figure
                failed_pages += 1
                reasons[type(exc).__name__ + ": " + str(exc)[:120]] += 1
                continue
            # Boxes left unplaced are never read (grading sends them to review).
            ids = [i for i in aligned.crops if i not in aligned.unplaced]
            before = len(crops)
            crops += [aligned.crops[i] for i in ids]
            expected += [truth.written.get(i) or None for i in ids]
            boxes = aligned.key_page.entry.get("student_number_boxes", [])
            for box, crop in zip(boxes, aligned.student_number_crops, strict=True):
                if box["id"] in aligned.unplaced:
                    continue
                crops.append(crop)
                expected.append(truth.written.get(box["id"]) or None)
            thresholds += [reader.threshold_for(aligned.quality)] * (len(crops) - before)
    if not crops:
        return {"skipped": f"no page could be aligned ({dict(reasons)})"}
    readings = read_all(reader, crops)
    correct = np.array([r.text == e for r, e in zip(readings, expected, strict=True)])
    conf = np.array([r.confidence for r in readings])
    accepted = conf >= np.array(thresholds)
    if args.save_misreads:
        save_misreads(args.save_misreads, crops, expected, readings, thresholds)
    return {
        "pages": len(truths),
        "pages_failed": failed_pages,
        "failures": dict(reasons),
        "fields": len(crops),
        "accuracy": float(correct.mean()),
        "review_share": float(1 - accepted.mean()),
        "accepted_errors": int((~correct[accepted]).sum()),
        "accepted": int(accepted.sum()),
        "sharp_share": float(np.mean(np.array(thresholds) != reader.threshold)),
        "accepted_error": float((~correct[accepted]).mean()) if accepted.any() else 0.0,
    }


def save_misreads(
    folder: Path,
    crops: Sequence[np.ndarray],
    expected: Sequence[str | None],
    readings: Sequence[Reading],
    thresholds: Sequence[float],
) -> None:
    """Each crop read wrongly or below its threshold, named by what it holds and what was
    read."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (crop, truth, reading, threshold) in enumerate(
        zip(crops, expected, readings, thresholds, strict=True)
    ):
        if reading.text == truth and reading.confidence >= threshold:
            continue
        kind = "wrong" if reading.text != truth else "review"
        name = f"{i:05d}_{kind}_{truth or 'none'}_read_{reading.text or 'none'}"
        cv2.imwrite(str(folder / f"{name}_{reading.confidence:.3f}.png"), crop)


def report_digits(
    reader: Reader, glyphs: hw.MnistGlyphs, args: argparse.Namespace
) -> dict[str, float]:
    """Tier 1, printed: MNIST digits of the split alone in a box."""
    digits = digit_tier(reader, glyphs, args.digits, args.seed)
    print(f"MNIST {args.split} digits ({int(digits['count'])}), one per box:")
    print(f"  clean crop          {100 * digits['clean']:.2f} %   (target >= 99.5 %)")
    print(f"  with camera effects {100 * digits['camera']:.2f} %")
    return digits


def decimal_texts(count: int, seed: int) -> list[str]:
    """``count`` answers with a decimal point, drawn as the field tier draws its numbers."""
    rng = np.random.default_rng([seed, BENCH_STREAM, 5])
    texts: list[str] = []
    while len(texts) < count:
        text = hw.random_answer(rng)
        if "." in text:
            texts.append(text)
    return texts


class TailedDots:
    """Glyphs of ``inner``, but a decimal comma is one of its handwritten points with a tail
    drawn down from it: commas made another way than training makes them (procedural
    strokes), so that a model trained on those is not judged on its own kind alone."""

    def __init__(self, inner: hw.GlyphSource) -> None:
        self.inner = inner

    def glyph(self, char: str, rng: np.random.Generator) -> np.ndarray:
        if char != hw.DECIMAL_COMMA:
            return self.inner.glyph(char, rng)
        dot = self.inner.glyph(".", rng).copy()
        box = hw.ink_bbox(dot) or (12, 12, 16, 16)
        size = max(box[2] - box[0], box[3] - box[1])
        start = ((box[0] + box[2]) / 2 + size * 0.2, box[3] - size * 0.3)
        drop = size * rng.uniform(1.2, 2.4)
        bend = (start[0] + rng.uniform(-0.1, 0.15) * drop, start[1] + drop * 0.55)
        end = (start[0] - drop * rng.uniform(0.3, 0.7), start[1] + drop)
        points = np.round(np.array([start, bend, end]) * 16).astype(np.int32)
        width = int(np.clip(round(size * rng.uniform(0.3, 0.55)), 1, 4))
        cv2.polylines(dot, [points], False, float(dot.max()), width, cv2.LINE_AA, shift=4)
        return dot


def decimal_mark_tier(
    reader: Reader, glyphs: hw.MnistGlyphs, count: int, seed: int
) -> dict[str, dict[str, float]]:
    """The same numbers written with a decimal point, with a decimal comma as training draws
    it, and with a comma made from a handwritten point (:class:`TailedDots`): for each, the
    share read exactly (with the point), sent to review, and misread but accepted."""
    texts = decimal_texts(count, seed)
    result = {}
    for mark, share in (("point", 0.0), ("comma", 1.0), ("tailed point", 1.0)):
        synth = Synthesizer(
            glyphs, stroke_share=0.0, symbol_stroke_share=0.0, decimal_comma_share=share
        )
        if mark == "tailed point":
            synth.mnist_like = TailedDots(synth.mnist_like)  # type: ignore[assignment]
        readings = read_all(reader, written(synth, texts, [seed, BENCH_STREAM, 6]))
        row, accepted = tier_row(readings, texts)
        result[mark] = {**row, "accepted_misreads": float(sum(r.text != t for r, t in accepted))}
    return result


def tier_row(
    readings: Sequence[Reading], texts: Sequence[str]
) -> tuple[dict[str, float], list[tuple[Reading, str]]]:
    """How a tier's numbers were read (the share exactly and the share sent to review), and
    the readings accepted without review, each with the number written."""
    pairs = list(zip(readings, texts, strict=True))
    row = {
        "fields": float(len(texts)),
        "exact": float(np.mean([r.text == t for r, t in pairs])),
        "review": float(np.mean([r.needs_review for r, _ in pairs])),
    }
    return row, [(r, t) for r, t in pairs if not r.needs_review]


def written(synth: Synthesizer, texts: Sequence[str], stream: list[int]) -> list[np.ndarray]:
    """Crops of ``texts`` written as numbers, the ``i``-th from seed ``[*stream, i]``."""
    return [synth.render(text, "number", np.random.default_rng([*stream, i])).image
            for i, text in enumerate(texts)]


def print_tier(title: str, rows: dict[str, dict[str, float]], label: str, count: str) -> None:
    """One printed line per row: its ``label``, exact %, reviewed % and the ``count`` key."""
    heading = count.replace("_", " ")
    print(f"\n{title}:")
    print(f"  {label:<12}  exact %  reviewed %  {heading}")
    for name, row in rows.items():
        print(f"  {name:<12}  {100 * row['exact']:7.2f}  {100 * row['review']:10.2f}"
              f"  {int(row[count]):{len(heading)}d}")


# Darkness of the writing (share of the paper's brightness full ink takes away): training
# writes numbers at 0.4-0.9 and erasures fainter.
FAINT_DARKNESS = (0.15, 0.2, 0.25, 0.3, 0.4)


def faint_tier(
    reader: Reader, glyphs: hw.MnistGlyphs, count: int, seed: int
) -> dict[str, dict[str, float]]:
    """The same ``count`` numbers written at each of FAINT_DARKNESS: the share read exactly,
    sent to review, and accepted as no answer (a written answer graded as none)."""
    rng = np.random.default_rng([seed, BENCH_STREAM, 7])
    texts = [hw.random_answer(rng) for _ in range(count)]
    result = {}
    for darkness in FAINT_DARKNESS:
        synth = Synthesizer(glyphs, stroke_share=0.0, symbol_stroke_share=0.0,
                            ink_darkness=darkness)
        readings = read_all(reader, written(synth, texts, [seed, BENCH_STREAM, 8]))
        row, accepted = tier_row(readings, texts)
        empty = float(sum(r.text is None for r, _ in accepted))
        result[f"{darkness:.2f}"] = {**row, "accepted_as_no_answer": empty}
    return result


def digit_count(text: str) -> int:
    """Digits in a written number: ``"-0.25"`` has 3."""
    return sum(ch.isdigit() for ch in text)


def by_length(samples: Sequence[FieldSample], readings: Sequence[Reading]) -> list[dict[str, int]]:
    """For the fields holding a number, by its digit count: how many, read exactly, sent to
    review (``needs_review``), misread among those reviewed, and misread but accepted."""
    rows: dict[int, dict[str, int]] = {}
    for sample, reading in zip(samples, readings, strict=True):
        if sample.status != "number":
            continue
        row = rows.setdefault(digit_count(sample.text), dict.fromkeys(
            ("digits", "fields", "exact", "reviewed", "reviewed_misread", "accepted_misread"), 0))
        right = reading.text == sample.text
        row["fields"] += 1
        row["exact"] += right
        row["reviewed"] += reading.needs_review
        row["reviewed_misread"] += reading.needs_review and not right
        row["accepted_misread"] += not reading.needs_review and not right
    for digits, row in rows.items():
        row["digits"] = digits
    return [rows[d] for d in sorted(rows)]


def print_by_length(rows: Sequence[dict[str, int]]) -> None:
    print("\nfields holding a number, by its digit count (review at the default threshold):")
    print("  digits  fields  exact %  reviewed %  misread among reviewed  accepted misreads")
    for r in rows:
        n, reviewed = r["fields"], r["reviewed"]
        print(f"  {r['digits']:6d}  {n:6d}  {100 * r['exact'] / n:7.2f}  {100 * reviewed / n:10.2f}"
              f"  {r['reviewed_misread']:10d} of {reviewed:<5d}  {r['accepted_misread']:13d}")


def report_fields(
    reader: Reader, glyphs: hw.MnistGlyphs, args: argparse.Namespace, figures: dict[str, object]
) -> tuple[list[FieldSample], np.ndarray]:
    """Tier 2, printed: synthetic fields and the accepted-error curve; samples and hits."""
    samples = field_samples(glyphs, args.fields, args.seed)
    crops = [s.image for s in samples]
    expected = [expected_value(s) for s in samples]
    readings = read_all(reader, crops)
    correct = np.array([r.text == e for r, e in zip(readings, expected, strict=True)])
    conf = np.array([r.confidence for r in readings])
    kinds = Counter(s.status for s in samples)
    print(f"\nheld-out fields with camera effects ({args.fields}: {dict(kinds)}):")
    print(f"  whole-field accuracy      {100 * correct.mean():.2f} %")
    for kind in kinds:
        mask = np.array([s.status == kind for s in samples])
        status_ok = np.mean([r.status == kind for r, m in zip(readings, mask, strict=True) if m])
        value_ok = 100 * correct[mask].mean()
        print(f"  {kind:<12} value {value_ok:6.2f} %   status {100 * status_ok:6.2f} %")
    figures["fields"] = {"count": args.fields, "accuracy": float(correct.mean())}
    lengths = by_length(samples, readings)
    figures["fields_by_length"] = lengths
    print_by_length(lengths)

    print("\naccepted error vs review share (threshold on calibrated confidence):")
    print("  threshold  review %  accepted error  errors/accepted")
    thresholds = sorted({0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, reader.threshold})
    rows = curve(conf, correct, thresholds)
    for t, review, err, errors, n in rows:
        mark = "  <- default" if t == reader.threshold else ""
        print(f"  {t:9.4f}  {100 * review:7.2f}  {100 * err:12.3f} %  {errors:5d}/{n}{mark}")
    default = next(r for r in rows if r[0] == reader.threshold)
    figures["curve"] = [
        dict(zip(("threshold", "review", "error", "errors", "accepted"), r, strict=True))
        for r in rows
    ]
    figures["default"] = {"threshold": reader.threshold, "review": default[1], "error": default[2]}
    return samples, correct


def main() -> int:
    args = parse_args()
    cv2.setNumThreads(1)
    os.environ["OMP_THREAD_LIMIT"] = "1"  # Tesseract on one core too, like the reader
    reader = Reader(args.model_dir, threads=1)
    if not (args.data_dir / "mnist").is_dir():
        print(f"no data at {args.data_dir}: the held-out tiers need MNIST (set --data-dir)")
        return 2
    glyphs = hw.MnistGlyphs(args.data_dir, args.split)
    figures: dict[str, object] = {
        "model_version": reader.config.get("model_version"),
        "split": args.split,
    }
    if args.split != "test":
        print(f"glyphs from the {args.split} split: for comparing models, not for reporting\n")

    if args.digits > 0:
        figures["digits"] = report_digits(reader, glyphs, args)
    samples: list[FieldSample] = []
    correct = np.zeros(0, dtype=bool)
    if args.fields > 0:
        samples, correct = report_fields(reader, glyphs, args, figures)
    if args.decimals > 0:
        marks = decimal_mark_tier(reader, glyphs, args.decimals, args.seed)
        print_tier(f"numbers with a decimal point ({args.decimals}), written with a point or a "
                   "comma", marks, "mark", "accepted_misreads")
        figures["decimals"] = marks
    if args.faint > 0:
        pencils = faint_tier(reader, glyphs, args.faint, args.seed)
        print_tier(f"numbers in faint pencil ({args.faint} at each darkness; training writes "
                   "0.4-0.9)", pencils, "darkness", "accepted_as_no_answer")
        figures["faint"] = pencils

    photo = photo_tier(reader, args, glyphs)
    figures["photo"] = photo
    print(f"\nphoto tier ({args.tier}, pipeline crops):")
    if "skipped" in photo:
        print(f"  skipped: {photo['skipped']}")
    else:
        pages, failed, fields = photo["pages"], photo["pages_failed"], photo["fields"]
        print(f"  {pages} pages ({failed} not aligned), {fields} fields")
        print(f"  whole-field accuracy {100 * photo['accuracy']:.2f} %   (target >= 99 %)")
        print(
            f"  at the default threshold: review {100 * photo['review_share']:.2f} %, "
            f"accepted error {100 * photo['accepted_error']:.3f} % "
            f"({photo['accepted_errors']} of {photo['accepted']})"
        )
        print(f"  fields of pages held to the sharp-capture threshold: "
              f"{100 * photo['sharp_share']:.1f} %")

    n_tess = min(args.tesseract, len(samples))
    if n_tess == 0:
        print("\nspeed and Tesseract baseline skipped (--tesseract 0 or no fields)")
        return write_figures(args, figures)
    crops = [s.image for s in samples]
    expected = [expected_value(s) for s in samples]
    subset = crops[:n_tess]
    speed = time_reader(reader, crops[: max(n_tess, 256)])
    t0 = time.perf_counter()
    tess = [tesseract_read(c) for c in subset]
    tess_ms = 1000 * (time.perf_counter() - t0) / max(1, n_tess)
    tess_ok = np.mean([t == e for t, e in zip(tess, expected[:n_tess], strict=True)])
    ours_ok = correct[:n_tess].mean()
    figures["speed_ms"] = speed
    figures["tesseract"] = {
        "fields": n_tess,
        "accuracy": float(tess_ok),
        "ms": tess_ms,
        "reader_accuracy": float(ours_ok),
    }
    print(f"\nspeed on one core and Tesseract baseline (same {n_tess} fields):")
    print("  reader         accuracy   ms/field")
    print(
        f"  papergrade     {100 * ours_ok:7.2f} %  {speed['total']:8.2f}"
        f"   (preprocess {speed['preprocess']:.2f}, network {speed['network']:.2f})"
    )
    print(f"  tesseract      {100 * tess_ok:7.2f} %  {tess_ms:8.2f}")
    print(
        f"  ratio: {tess_ms / speed['total']:.1f}x faster than Tesseract, "
        f"{(1 - ours_ok) and (1 - tess_ok) / (1 - ours_ok):.1f}x fewer errors"
    )
    return write_figures(args, figures)


def write_figures(args: argparse.Namespace, figures: dict[str, object]) -> int:
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
