"""Calibrating the key-match threshold: how far below the reader's own threshold a reading
that is exactly the expected answer can still be credited without a look.

Simulated classes (the ``phone`` tier, ``examples/linear-layer.yaml``, validation glyphs: MNIST
training images held out from training, so the test split stays for reporting) are graded
with the reader's own thresholds (each page's, see ``grader.read.Reader.threshold_for``),
every reading kept with its confidence.  Each page is then scored again, as grading would, at
each candidate threshold, and compared with the truth.  Prints, per threshold, the share of
fields sent to review, how many doubted readings were credited as expected answers, how many
of those verdicts were wrong and how many automatic verdicts were wrong in all; then the
lowest threshold at which, for every share of wrong answers, the credited verdicts are wrong at
most 1 time in 500, as the readings the reader accepts on its own are.  Classes are
simulated with the usual share of wrong answers and with a much larger one, since wrong
answers are what a credited reading could hide.  Last, how many ``incorrect`` verdicts (with
crediting off) were right answers misread: the error a student marked wrong meets, which the
1-in-500 contract over all verdicts hides when few answers are wrong.

    .venv/bin/python bench/key_match.py [--classes 12] [--wrong 0.08 0.3]
                                        [--model-dir grader/models] [--write]

``--write`` stores the chosen threshold in the model's ``reader.json``; retraining or
recalibrating the reader drops it, and this script must then be run again.  Graded classes
are kept in ``build/key-match/<model version>-<calibration digest>/`` so that a second run
only scores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.grade import make_class  # noqa: E402
from grader.handwriting import MnistGlyphs, default_data_dir  # noqa: E402
from grader.read import MODEL_DIR, Reader, load_config, sharp_capture_of  # noqa: E402
from grader.score import READER_UNSURE, KeptReading, PageContext, score_page  # noqa: E402
from grader.simulate_class import AnswerHabits  # noqa: E402
from worker.jobs import GradeRequest, available_cores, grade_batch  # noqa: E402

# Never below even odds: a reading is credited only when the reader itself finds the expected
# answer likelier than every other reading together.
CANDIDATES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
TARGET_ERROR = 0.002
STUDENTS = 40


@dataclass
class Tally:
    fields: int = 0
    review: int = 0
    auto_wrong: int = 0
    credited: int = 0
    credited_wrong: int = 0
    incorrect: int = 0
    incorrect_wrong: int = 0

    def add(self, other: Tally) -> None:
        for name in asdict(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def simulate_and_grade(folder: Path, seed: int, wrong: float, glyphs: MnistGlyphs,
                       model_dir: Path) -> None:
    """One class, graded with every reading kept, its truth and key stored in ``folder``."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        key_json, truths, photos = make_class(work, STUDENTS, "phone", seed, glyphs,
                                              habits=AnswerHabits(wrong=wrong))
        graded = work / "graded"
        request = GradeRequest(key_json, [photos], graded, jobs=available_cores())
        if model_dir.resolve() == MODEL_DIR.resolve():
            grade_batch(request)
        else:  # worker processes load the packaged model; another one is read in this process
            grade_batch(replace(request, jobs=1), reader=Reader(model_dir))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(graded / "results.json", folder / "results.json")
        shutil.copy(key_json, folder / "key.json")
        (folder / "truths.json").write_text(json.dumps([asdict(t) for t in truths]))


def graded_pages(folder: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(key, graded page, its truth) for every page of a stored class."""
    key = json.loads((folder / "key.json").read_text())
    truths = {(t["variant"], t["page_number"]): t
              for t in json.loads((folder / "truths.json").read_text())}
    for page in json.loads((folder / "results.json").read_text())["pages"]:
        if page["status"] == "graded":
            yield key, page, truths[(page["variant"], page["page_number"])]


def stored_readings(page: dict[str, Any]) -> dict[str, KeptReading]:
    """The page's readings as the reader gave them, doubts included."""
    readings = {}
    for field in page["fields"]:
        # A page-level doubt (a blurred photo) kept its own reason; keep it again.
        page_doubt = field["reader_unsure"] and not field["reason"].startswith(READER_UNSURE)
        readings[field["id"]] = KeptReading(
            field["read"], field["reading_status"], field["confidence"],
            [(a["read"] or None, a["confidence"]) for a in field["alternatives"]],
            field["reader_unsure"], field["reason"] if page_doubt else "")
    return readings


def tally_class(folder: Path, key_match: float | None) -> Tally:
    tally = Tally()
    for key, page, truth in graded_pages(folder):
        crediting = {**key, "credit_expected_answers": True}
        context = PageContext.from_key(crediting, key["pages"][page["pdf_page"]], key_match)
        for result in score_page(context, stored_readings(page)):
            tally.fields += 1
            if result.verdict == "review":
                tally.review += 1
                continue
            wrong = result.verdict != truth["verdicts"][result.field_id]
            tally.auto_wrong += wrong
            if result.verdict == "incorrect":
                tally.incorrect += 1
                tally.incorrect_wrong += wrong
            if result.reader_unsure:
                tally.credited += 1
                tally.credited_wrong += wrong
    return tally


def calibration_name(config: dict[str, Any]) -> str:
    """The cache folder of a model: its version and a digest of the thresholds it reads with
    (the key-match threshold aside, which this script sets)."""
    thresholds = {k: v for k, v in config["calibration"].items() if k != "key_match_threshold"}
    digest = hashlib.sha256(json.dumps(thresholds, sort_keys=True).encode()).hexdigest()[:8]
    return f"{config['model_version']}-{digest}"


def class_folders(args: argparse.Namespace, model_name: str) -> list[tuple[float, Path]]:
    """Every class asked for, simulated and graded unless already in the cache."""
    glyphs = MnistGlyphs(args.data_dir or default_data_dir(), split="val")
    folders = []
    for rate_index, wrong in enumerate(args.wrong):
        for i in range(args.classes):
            seed = args.seed + 100 * rate_index + i  # the camera differs between rates too
            folder = args.cache / model_name / f"phone-val-w{wrong}-{seed}"
            if not (folder / "results.json").is_file():
                print(f"simulating and grading class {i + 1}/{args.classes} "
                      f"({wrong:.0%} wrong answers, seed {seed}) ...", flush=True)
                simulate_and_grade(folder, seed, wrong, glyphs, args.model_dir)
            folders.append((wrong, folder))
    return folders


def report(folders: Sequence[tuple[float, Path]], thresholds: str) -> float | None:
    """Print the curve per share of wrong answers; return the lowest candidate within the
    target at every share (see :func:`within_target`), if any."""
    rates = sorted({wrong for wrong, _ in folders})
    print(f"reader threshold {thresholds}; {len(folders)} classes of {STUDENTS} students")
    print(f"{'':>9}" + "".join(f"{f'--- {w:.0%} of answers wrong ---':>42}" for w in rates))
    print(f"{'key-match':>9}" + f"{'review':>8}{'credited':>10}{'wrong':>7}{'auto wrong':>17}"
          * len(rates))
    chosen = None
    uncredited: list[Tally] = []
    for key_match in (None, *CANDIDATES):
        tallies = [Tally() for _ in rates]
        for rate, folder in folders:
            tallies[rates.index(rate)].add(tally_class(folder, key_match))
        name = "off" if key_match is None else f"{key_match:.2f}"
        print(f"{name:>9}" + "".join(
            f"{100 * t.review / max(t.fields, 1):>7.1f}%{t.credited:>10}{t.credited_wrong:>7}"
            f"{t.auto_wrong:>7} of {t.fields - t.review:>6}" for t in tallies))
        if key_match is None:
            uncredited = tallies
        if key_match is not None and chosen is None and all(map(within_target, tallies)):
            chosen = key_match
    print("'incorrect' verdicts that were right answers misread (key-match off): " + ", ".join(
        f"{t.incorrect_wrong} of {t.incorrect} at {rate:.0%} wrong answers"
        for rate, t in zip(rates, uncredited, strict=True)))
    return chosen


def describe_thresholds(config: dict[str, Any]) -> str:
    text = f"{float(config['calibration']['threshold']):.4f}"
    sharp = sharp_capture_of(config)
    if sharp is not None:
        text += (f" ({sharp.threshold:.4f} on pages of at least {sharp.min_px_per_mm} px/mm "
                 f"and at most {sharp.max_edge_mm} mm blur)")
    return text


def within_target(tally: Tally) -> bool:
    """Whether credited verdicts are as trustworthy as the reader's own contract for the
    readings it accepts: wrong at most 1 time in 500."""
    return tally.credited_wrong <= TARGET_ERROR * tally.credited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=12, help="classes per wrong-answer share")
    parser.add_argument("--wrong", type=float, nargs="+", default=[0.08, 0.3],
                        help="shares of wrong answers to simulate classes with")
    parser.add_argument("--seed", type=int, default=7100)
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "key-match",
                        help="where graded classes are kept between runs")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--write", action="store_true",
                        help="store the chosen threshold in the model folder's reader.json")
    args = parser.parse_args()
    if not ((args.data_dir or default_data_dir()) / "mnist").is_dir():
        sys.exit("no MNIST data; pass --data-dir (the validation glyphs come from it)")
    config = load_config(args.model_dir / "reader.json")
    folders = class_folders(args, calibration_name(config))
    chosen = report(folders, describe_thresholds(config))
    if chosen is None:
        print(f"no candidate keeps credited readings within 1 in {1 / TARGET_ERROR:.0f}; "
              "simulate more classes or keep the key match off")
        return
    print(f"chosen key-match threshold: {chosen} (the lowest candidate within 1 in "
          f"{1 / TARGET_ERROR:.0f} at every share of wrong answers)")
    if args.write:
        path = args.model_dir / "reader.json"
        stored = json.loads(path.read_text(encoding="utf-8"))
        stored["calibration"]["key_match_threshold"] = chosen
        path.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
        print(f"wrote key_match_threshold {chosen} to {path}")


if __name__ == "__main__":
    main()
