"""Grading a class: speed on one core and on all cores, agreement with ground truth, memory.

A class of 40 students (2 pages each, ``examples/linear-layer.yaml``) fills in its sheets and
photographs them (the simulator's ``phone`` tier, seeds never used by tests); the grader then
grades them.  Prints pages per second with 1 worker and with one per core, the floor (decoding
the same JPEGs with OpenCV, measured in the same run) and the ratio, how every auto-decided
verdict compares with the truth, the share of fields sent to review, and peak memory.

    .venv/bin/python bench/grade.py [--students 40] [--tier phone] [--seed 9100]
                                    [--handwriting mnist|strokes] [--data-dir ../shared/data]
                                    [--review-threshold P] [--credit-expected-answers]
                                    [--numbered]

``--numbered`` prints numbered copies instead of sheets named for a roster: each student
writes a six-digit student number (drawn from the seed) that grading matches to a roster
CSV, and the identities are compared with the truth too.

Handwriting ``mnist`` uses the MNIST test split and the held-out symbols (writers the reader
never saw); ``strokes`` uses the procedural glyphs that need no data.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from grader.handwriting import MnistGlyphs, StrokeGlyphs, default_data_dir  # noqa: E402
from grader.results import StudentRef  # noqa: E402
from grader.simulate_class import AnswerHabits, PageTruth, simulate_class  # noqa: E402
from worker.jobs import GradeRequest, available_cores, grade_batch  # noqa: E402
from worksheets.layout import STUDENT_NUMBER_DIGITS  # noqa: E402
from worksheets.publish import publish  # noqa: E402
from worksheets.spec import Student, load_spec  # noqa: E402

SPEC = ROOT / "examples" / "linear-layer.yaml"


def make_class(folder: Path, students: int, tier: str, seed: int, glyphs: object = None,
               credit_expected: bool = False,
               habits: AnswerHabits | None = None) -> tuple[Path, list, Path]:
    roster = [Student(student_id=f"{310000 + i}", name=f"Student {i + 1}")
              for i in range(students)]
    spec = load_spec(SPEC).model_copy(update={"credit_expected_answers": credit_expected})
    printed = publish(spec, folder / "print", students=roster)
    key = json.loads(printed.key_json.read_text())
    photos = folder / "photos"
    truths = simulate_class(key, printed.worksheets_pdf, photos, tier, seed, habits=habits,
                            glyph_source=glyphs)
    return printed.key_json, truths, photos


def make_numbered_class(folder: Path, students: int, tier: str, seed: int,
                        glyphs: object = None) -> tuple[Path, list, Path, Path]:
    """Numbered copies with no names printed: each student writes a student number (random,
    from ``seed``) that grading matches to the roster CSV this also returns."""
    rng = np.random.default_rng([seed, 1])
    numbers = rng.choice(10**STUDENT_NUMBER_DIGITS, students, replace=False)  # ids are unique
    roster = [StudentRef(f"{number:0{STUDENT_NUMBER_DIGITS}d}", f"Student {i + 1}")
              for i, number in enumerate(numbers)]
    printed = publish(load_spec(SPEC), folder / "print", None, students)
    key = json.loads(printed.key_json.read_text())
    photos = folder / "photos"
    truths = simulate_class(key, printed.worksheets_pdf, photos, tier, seed, roster=roster,
                            glyph_source=glyphs)
    roster_csv = folder / "roster.csv"
    roster_csv.write_text("student_id,name\n" + "".join(f"{s.student_id},{s.name}\n"
                                                        for s in roster))
    return printed.key_json, truths, photos, roster_csv


def decode_floor(photos: Path) -> float:
    start = time.perf_counter()
    for path in sorted(photos.glob("*.jpg")):
        cv2.imread(str(path))
    return time.perf_counter() - start


def agreement(results_json: Path, truths: list) -> tuple[Counter[str], list[str]]:
    """Compare each field's verdict with the truth's; also describe each wrong auto-verdict."""
    results = json.loads(results_json.read_text())
    truth_by_page = {(t.variant, t.page_number): t for t in truths}
    tally: Counter[str] = Counter()
    wrong: list[str] = []
    for page in results["pages"]:
        if page["status"] != "graded":
            tally["page_errors"] += 1
            continue
        truth = truth_by_page[(page["variant"], page["page_number"])]
        check_identity(page, truth, tally, wrong)
        for field in page["fields"]:
            tally["fields"] += 1
            if field["verdict"] == "review":
                tally["review"] += 1
                tally["why: " + review_kind(field.get("reason", ""))] += 1
                written = truth.written.get(field["id"]) or None
                tally["review_read_right"] += int(field.get("read") == written)
                continue
            # A doubted reading that was decided all the same was credited (see score.decide).
            credited = int(field.get("reader_unsure", False))
            tally["credited"] += credited
            if field["verdict"] == truth.verdicts[field["id"]]:
                tally["auto_right"] += 1
            else:
                tally["auto_wrong"] += 1
                tally["credited_wrong"] += credited
                wrong.append(
                    f"V{page['variant']} p{page['page_number']} {field['id']}: written "
                    f"{truth.written.get(field['id'])!r}, read {field.get('read')!r} "
                    f"(confidence {field.get('confidence')}), verdict {field['verdict']}, "
                    f"truth {truth.verdicts[field['id']]}"
                )
    return tally, wrong


def check_identity(page: dict, truth: PageTruth, tally: Counter[str], wrong: list[str]) -> None:
    """Tally a page that holds a written student number: its identity against the truth."""
    if not any(box.startswith("student_number.") for box in truth.written):
        return
    tally["numbered_pages"] += 1
    if page["identity_review"]:
        tally["identity_review"] += 1
        return
    matched = (page["student"] or {}).get("student_id")
    if matched != truth.student_id:
        tally["identity_wrong"] += 1
        wrong.append(f"V{page['variant']} p{page['page_number']}: student number read "
                     f"{page['student_number_read']!r}, matched {matched!r}, written "
                     f"{truth.student_id!r}")


# What grading says when it sends a field to review, by the start of its reason.
REVIEW_KINDS = (
    ("reader unsure", "reader unsure"),
    ("could also be read as", "expected value among the alternatives"),
    ("only the decimal point differs", "only the decimal point differs"),
    ("depends on an earlier reading", "upstream field in review"),
    ("follow-through rests on", "upstream field in review"),
    ("another reading", "a later answer follows another reading"),
    ("photo too blurred", "photo too blurred"),
    ("box could not be placed", "box not placed"),
    ("writing on the box's", "writing on a box side left out"),
)


def review_kind(reason: str) -> str:
    """A short name for why a field is in review."""
    for prefix, kind in REVIEW_KINDS:
        if reason.startswith(prefix):
            return kind
    return "not a number" if "is not a number" in reason else reason[:40] or "unknown"


def run(
    key: Path, photos: Path, out: Path, jobs: int, threshold: float | None,
    roster_csv: Path | None = None,
) -> tuple[float, int]:
    cv2.setNumThreads(1)
    start = time.perf_counter()
    summary = grade_batch(GradeRequest(key, [photos], out, roster_csv=roster_csv, jobs=jobs,
                                       review_threshold=threshold))
    return time.perf_counter() - start, summary.pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--tier", default="phone")
    parser.add_argument("--seed", type=int, default=9100)
    parser.add_argument("--handwriting", choices=["mnist", "strokes"], default="mnist")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="MNIST and symbols (default: ../shared/data)")
    parser.add_argument("--review-threshold", type=float, default=None,
                        help="the reader confidence graded unseen (default: the model's own)")
    parser.add_argument("--credit-expected-answers", action="store_true",
                        help="print the sheets with credit_expected_answers on (see "
                             "bench/key_match.py)")
    parser.add_argument("--numbered", action="store_true",
                        help="numbered copies: students write their student number, matched "
                             "to a roster")
    args = parser.parse_args()
    data_dir = args.data_dir or default_data_dir()
    if args.handwriting == "mnist" and not (data_dir / "mnist").is_dir():
        sys.exit(f"no MNIST data in {data_dir}; pass --data-dir or --handwriting strokes")
    glyphs = (MnistGlyphs(data_dir, split="test") if args.handwriting == "mnist"
              else StrokeGlyphs())
    cores = available_cores()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"simulating {args.students} students x 2 pages ({args.tier}, "
              f"{args.handwriting} handwriting"
              f"{', numbered copies' if args.numbered else ''}) ...", flush=True)
        roster_csv = None
        if args.numbered:
            key, truths, photos, roster_csv = make_numbered_class(
                folder, args.students, args.tier, args.seed, glyphs)
        else:
            key, truths, photos = make_class(folder, args.students, args.tier, args.seed,
                                             glyphs, args.credit_expected_answers)
        floor = decode_floor(photos)
        one_s, pages = run(key, photos, folder / "one", 1, args.review_threshold, roster_csv)
        all_s, _ = run(key, photos, folder / "all", cores, args.review_threshold, roster_csv)
        tally, wrong = agreement(folder / "one" / "results.json", truths)
    print(f"pages: {pages}   cores: {cores}")
    print_speed(floor, one_s, all_s, pages, cores)
    print_agreement(tally, wrong)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory: main process {peak_mb:.0f} MB, largest worker {children_mb:.0f} MB")


def print_speed(floor: float, one_s: float, all_s: float, pages: int, cores: int) -> None:
    print(f"{'':<34}{'s total':>9}{'ms/page':>9}{'pages/s':>9}")
    for name, seconds in (("floor: decode JPEGs (1 core)", floor),
                          ("grade, 1 worker", one_s), (f"grade, {cores} workers", all_s)):
        print(f"{name:<34}{seconds:>9.2f}{1000 * seconds / pages:>9.1f}{pages / seconds:>9.2f}")
    print(f"ratio grade (1 worker) / decode floor: {one_s / floor:.1f}x; "
          f"speed-up with {cores} workers: {one_s / all_s:.2f}x")


def print_agreement(tally: Counter[str], wrong: list[str]) -> None:
    fields = tally["fields"]
    auto = tally["auto_right"] + tally["auto_wrong"]
    print(f"fields: {fields}; auto-decided: {auto}, of which wrong: {tally['auto_wrong']}; "
          f"sent to review: {tally['review']} ({100 * tally['review'] / max(fields, 1):.1f}%); "
          f"pages not graded: {tally['page_errors']}")
    if tally["credited"]:
        print(f"  doubted readings credited as the expected answer: {tally['credited']}, "
              f"of which wrong: {tally['credited_wrong']}")
    kinds = sorted((k for k in tally if k.startswith("why: ")), key=lambda k: -tally[k])
    if tally["review"]:
        print(f"  in review, read right all the same: {tally['review_read_right']}; why: " +
              ", ".join(f"{k[5:]} {tally[k]}" for k in kinds))
    if tally["numbered_pages"]:
        numbered, held = tally["numbered_pages"], tally["identity_review"]
        print(f"student numbers: {numbered} page(s); matched without review: "
              f"{numbered - held}, of which wrong: {tally['identity_wrong']}; "
              f"sent to identity review: {held}")
    for line in wrong:
        print(f"  wrong auto-verdict: {line}")


if __name__ == "__main__":
    main()
