"""How long printing a class set takes: 40 students, 2 pages each.

Prints the time per page for each stage (plan + layout, key.json, worksheets.pdf,
answer-key.pdf), the floor (reportlab writing the same number of pages that hold one line
of text each, measured in the same run) and the ratio of the whole job to that floor.

    .venv/bin/python bench/print_speed.py [--students 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reportlab.pdfgen.canvas import Canvas  # noqa: E402

from worksheets.build import build_class_set  # noqa: E402
from worksheets.key import write_key  # noqa: E402
from worksheets.publish import answer_pages  # noqa: E402
from worksheets.render import render_pdf  # noqa: E402
from worksheets.spec import Student, load_spec  # noqa: E402

SPEC = ROOT / "examples" / "linear-layer.yaml"


def floor_pdf(pages: int, path: Path) -> None:
    canvas = Canvas(str(path), invariant=True)
    for number in range(pages):
        canvas.drawString(72, 720, f"page {number}")
        canvas.showPage()
    canvas.save()


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def one_run(students: int, folder: Path) -> dict[str, float]:
    spec = load_spec(SPEC)
    roster = [Student(student_id=f"{2400 + i}", name=f"Student {i + 1}") for i in range(students)]
    t_plan, class_set = timed(lambda: build_class_set(spec, roster))
    pages = [p for v in class_set.variants for p in v.pages]  # type: ignore[attr-defined]
    t_key, key = timed(lambda: write_key(class_set, folder / "key.json"))  # type: ignore[arg-type]
    t_pdf, _ = timed(lambda: render_pdf(pages, folder / "worksheets.pdf", spec.title))
    t_answers, _ = timed(lambda: render_pdf(answer_pages(class_set, key),  # type: ignore[arg-type]
                                            folder / "answer-key.pdf", spec.title))
    t_floor, _ = timed(lambda: floor_pdf(len(pages), folder / "floor.pdf"))
    return {"pages": len(pages), "plan": t_plan, "key": t_key, "pdf": t_pdf,
            "answers": t_answers, "floor": t_floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(args.students, Path(tmp)) for _ in range(args.repeats)]
    pages = int(runs[0]["pages"])
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "pages"}
    total = median["plan"] + median["key"] + median["pdf"] + median["answers"]
    print(f"class set: {args.students} students, {pages} pages "
          f"({pages / args.students:g} per student), median of {args.repeats} runs")
    print(f"{'stage':<28}{'total s':>10}{'ms/page':>10}")
    rows = [("plan + layout", median["plan"]), ("key.json", median["key"]),
            ("worksheets.pdf", median["pdf"]), ("answer-key.pdf", median["answers"]),
            ("whole print job", total), ("floor: reportlab, 1 line/page", median["floor"])]
    for name, seconds in rows:
        print(f"{name:<28}{seconds:>10.3f}{1000 * seconds / pages:>10.2f}")
    print(f"ratio whole job / floor: {total / median['floor']:.1f}x")


if __name__ == "__main__":
    main()
