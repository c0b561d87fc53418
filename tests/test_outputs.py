"""Outputs of grading: results.json, gradebooks, fields.csv, annotated PDFs and report.html."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grader.outputs import GRADEBOOK_FORMATS, write_all
from grader.outputs.annotate import COLOURS, DPI, HEADER_MM
from grader.outputs.common import fmt_points, safe_filename
from grader.outputs.gradebook import CANVAS_POINTS_ROW, split_name
from grader.results import (
    RESULTS_SCHEMA,
    ClassResults,
    ExerciseInfo,
    FieldResult,
    PageResult,
    StudentRef,
)

GENERATED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TITLE = "Layers & gradients"
BBOX = {
    "q1.a": (30.0, 60.0, 40.0, 14.0),
    "q1.b": (30.0, 100.0, 40.0, 14.0),
    "q2.z1": (30.0, 60.0, 40.0, 14.0),
    "q2.z2": (30.0, 100.0, 40.0, 14.0),
}
MAX = {"q1.a": 2.0, "q1.b": 2.0, "q2.z1": 1.0, "q2.z2": 2.0}
# A dark block drawn into one aligned page image, far from every box: it must show in the PDF.
BLOCK_MM = (150.0, 250.0, 30.0, 20.0)
PX_PER_MM = 5.0

AMINA = StudentRef("240101", "Amina Diallo")
JOSE = StudentRef("240102", "José Núñez")
WEI = StudentRef("240103", "Li, Wei")
SAM = StudentRef("sam@school.org", "Sam Park")


def fld(field_id: str, verdict: str, read: str | None, expected: str, points: float,
        **extra: object) -> FieldResult:
    values: dict[str, object] = {
        "field_id": field_id, "exercise_id": field_id.split(".")[0],
        "label": field_id.split(".")[1], "read": read,
        "confidence": 0.4 if verdict == "review" else 0.97,
        "alternatives": [("17", 0.02)] if read else [], "expected": expected,
        "expected_used": expected, "verdict": verdict, "points": points,
        "max_points": MAX[field_id], "bbox_mm": BBOX[field_id],
    }
    values.update(extra)
    return FieldResult(**values)  # type: ignore[arg-type]


def page(source: str, student: StudentRef | None, number: int, fields: list[FieldResult],
         variant: int = 0, **extra: object) -> PageResult:
    values: dict[str, object] = {
        "source": source, "status": "graded", "pdf_page": 2 * variant + number - 1,
        "variant": variant, "page_number": number, "student": student,
        "identity_source": "qr" if student else "unknown", "fields": fields,
    }
    values.update(extra)
    return PageResult(**values)  # type: ignore[arg-type]


def aligned_image(path: Path) -> str:
    """A grayscale aligned page at 5 px/mm: white with a black block at BLOCK_MM."""
    pixels = np.full((round(297 * PX_PER_MM), round(210 * PX_PER_MM)), 255, np.uint8)
    x, y, w, h = (round(v * PX_PER_MM) for v in BLOCK_MM)
    pixels[y:y + h, x:x + w] = 0
    Image.fromarray(pixels).save(path)
    return str(path)


def class_results(tmp_path: Path) -> ClassResults:
    image = aligned_image(tmp_path / "amina_p1_aligned.png")
    pages = [
        page("amina_p1.jpg", AMINA, 1, [
            fld("q1.a", "correct", "6", "6", 2.0),
            fld("q1.b", "incorrect", "-4", "4", 0.0, mistake="sign"),
        ], image_path=image),
        page("amina_p2.jpg", AMINA, 2, [
            fld("q2.z1", "incorrect", "21", "12", 0.0, mistake="digit_swap"),
            fld("q2.z2", "correct", "42", "24", 2.0, expected_used="42", carried_forward=True,
                mistake="carried", reason="from your z1 = 21"),
        ], px_per_mm=7.5, blur_mm=0.42, review_threshold=0.96),
        page("jose_p1.jpg", JOSE, 1, [
            fld("q1.a", "correct", "5", "5", 2.0),
            fld("q1.b", "review", "7", "1", 0.0, reason="low confidence"),
        ], variant=1, image_path=str(tmp_path / "missing.png"), px_per_mm=4.24, blur_mm=0.713,
            review_threshold=0.9857),
        page("jose_p2.jpg", JOSE, 2, [
            fld("q2.z1", "correct", "9", "9", 1.0),
            fld("q2.z2", "blank", None, "18", 0.0),
        ], variant=1),
        PageResult(source="blurry.jpg", status="too_blurred",
                   message="The photo is blurred: hold the phone still and retake it."),
        PageResult(source="amina_p1_again.jpg", status="graded", duplicate_of="amina_p1.jpg",
                   sha256="ab" * 32),
        # An earlier photo of Sam's page, retaken: listed, never counted.
        replace(page("sam_p1_dark.jpg", SAM, 1, [
            fld("q1.a", "review", "8", "3", 0.0, reason="low confidence"),
            fld("q1.b", "incorrect", "1", "8", 0.0),
        ], variant=3), replaced_by="sam_p1.jpg"),
        page("sam_p1.jpg", SAM, 1, [
            fld("q1.a", "correct", "3", "3", 2.0),
            fld("q1.b", "correct", "8", "8", 2.0),
        ], variant=3),
        page("nobody.jpg", None, 1, [
            fld("q1.a", "incorrect", "-3", "3", 0.0, mistake="sign"),
            fld("q1.b", "correct", "2", "2", 2.0),
        ], variant=5),
    ]
    return ClassResults(
        worksheet_id="F21C0F01", title=TITLE,
        exercises=[ExerciseInfo("q1", "Linear layer", 4.0), ExerciseInfo("q2", "Chain", 3.0)],
        pages=pages, roster=[AMINA, JOSE, WEI],
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("outputs")
    return tmp / "results", write_all(class_results(tmp), tmp / "results", generated=GENERATED)


def read_csv(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as handle:
        return list(csv.reader(handle))


def test_write_all_lists_every_file_and_leaves_no_temporaries(written):
    out, files = written
    assert set(files) == {
        "results.json", "gradebook.csv", "fields.csv", "report.html", "students/240101.pdf",
        "students/240102.pdf", "students/sam_school.org.pdf", "students/unidentified-1.pdf",
    }
    assert all(path.is_file() and path.parent.is_relative_to(out) for path in files.values())
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_results_json_follows_the_contract(written):
    out, _ = written
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["schema"] == RESULTS_SCHEMA
    assert (doc["worksheet_id"], doc["title"]) == ("F21C0F01", TITLE)
    assert doc["generated"] == "2026-03-02T09:30:00+00:00"
    summary = doc["summary"]
    assert summary["students"] == 3 and summary["pages"] == 9 and summary["graded"] == 6
    assert summary["errors"] == {"too_blurred": 1}
    assert summary["fields"] == 12 and summary["review"] == 1 and summary["duplicates"] == 1
    assert summary["replaced"] == 1
    by_source = {p["source"]: p for p in doc["pages"]}
    assert [p["source"] for p in doc["pages"]][:3] == ["amina_p1.jpg", "amina_p2.jpg",
                                                       "jose_p1.jpg"]
    assert by_source["blurry.jpg"]["status"] == "too_blurred"
    assert "fields" not in by_source["blurry.jpg"]
    assert by_source["amina_p1_again.jpg"]["status"] == "duplicate"
    assert by_source["amina_p1_again.jpg"]["duplicate_of"] == "amina_p1.jpg"
    assert by_source["sam_p1_dark.jpg"]["status"] == "replaced"
    assert by_source["sam_p1_dark.jpg"]["replaced_by"] == "sam_p1.jpg"
    assert "fields" not in by_source["sam_p1_dark.jpg"]
    graded = by_source["amina_p2.jpg"]
    assert graded["status"] == "graded"
    assert (graded["pdf_page"], graded["variant"], graded["page_number"]) == (1, 0, 2)
    assert graded["student"] == {"student_id": "240101", "name": "Amina Diallo"}
    assert graded["identity_source"] == "qr"
    assert graded["capture"] == {"px_per_mm": 7.5, "blur_mm": 0.42, "review_threshold": 0.96}
    assert "capture" not in by_source["blurry.jpg"]
    carried = graded["fields"][1]
    assert carried["id"] == "q2.z2" and carried["verdict"] == "correct"
    assert carried["carried_forward"] is True and carried["expected_used"] == "42"
    assert carried["expected"] == "24" and carried["mistake"] == "carried"
    assert carried["points"] == 2.0 and carried["max_points"] == 2.0
    assert carried["alternatives"] == [{"read": "17", "confidence": 0.02}]
    assert by_source["nobody.jpg"]["student"] is None
    blank = by_source["jose_p2.jpg"]["fields"][1]
    assert blank["read"] is None and blank["verdict"] == "blank"
    verdicts = {f["verdict"] for p in doc["pages"] for f in p.get("fields", [])}
    assert verdicts == {"correct", "incorrect", "blank", "review"}
    assert all(0 <= f["confidence"] <= 1 for p in doc["pages"] for f in p.get("fields", []))
    students = {s["key"]: s for s in doc["students"]}
    assert students["240102"]["provisional"] is True and students["240101"]["total"] == 4.0
    assert students["240103"]["total"] is None and students["240103"]["pages"] == []


def test_default_gradebook_rows(written):
    out, _ = written
    raw = (out / "gradebook.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # Excel BOM, RFC 4180 line ends
    rows = read_csv(out / "gradebook.csv", "utf-8-sig")
    assert rows[0] == ["student_id", "name", "q1", "q2", "total", "max", "percent",
                       "provisional", "fields_in_review", "notes"]
    by_id = {r[0] or r[1]: r for r in rows[1:]}
    assert list(by_id) == ["240101", "240102", "240103", "sam@school.org", "unidentified-1"]
    assert by_id["240101"][2:9] == ["2", "2", "4", "7", "57.1", "", "0"]
    assert by_id["240102"][1] == "José Núñez"
    assert by_id["240102"][2:9] == ["2", "1", "3", "7", "42.9", "yes", "1"]
    assert "1 field in review" in by_id["240102"][9]
    assert by_id["240103"][2:8] == ["", "", "", "7", "", ""]  # roster, no pages
    assert by_id["sam@school.org"][3] == "" and "not found: q2" in by_id["sam@school.org"][9]
    assert by_id["unidentified-1"][4] == "2"


def write_format(tmp_path: Path, name: str) -> list[list[str]]:
    out = tmp_path / name
    write_all(class_results(tmp_path), out, name, generated=GENERATED)
    raw = (out / "gradebook.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # LMS importers get plain UTF-8
    return read_csv(out / "gradebook.csv")


def test_canvas_gradebook(tmp_path):
    rows = write_format(tmp_path, "canvas")
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                       f"{TITLE} (F21C0F01)", "Provisional"]
    assert rows[1] == [CANVAS_POINTS_ROW, "", "", "", "", "7", ""]
    assert rows[2] == ["Diallo, Amina", "", "240101", "", "", "4", ""]
    assert rows[3] == ["Núñez, José", "", "240102", "", "", "3", "yes"]
    assert rows[4][2] == "240103" and rows[4][5] == ""
    assert len(rows) == 6  # points row + 4 identified students; unidentified pages left out


def test_google_classroom_gradebook(tmp_path):
    rows = write_format(tmp_path, "google-classroom")
    assert rows[0] == ["Last Name", "First Name", "Email Address", "Student ID", TITLE,
                       "Provisional"]
    assert rows[1] == ["Diallo", "Amina", "", "240101", "4", ""]
    assert rows[3] == ["Li", "Wei", "", "240103", "", ""]
    assert rows[4] == ["Park", "Sam", "sam@school.org", "sam@school.org", "4", ""]


def test_moodle_gradebook(tmp_path):
    rows = write_format(tmp_path, "moodle")
    assert rows[0] == ["First name", "Last name", "ID number", "Email address",
                       f"{TITLE} (F21C0F01)", "Provisional"]
    assert rows[2] == ["José", "Núñez", "240102", "", "3", "yes"]
    assert len(rows) == 5


def test_unknown_gradebook_format_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="canvas"):
        write_all(class_results(tmp_path), tmp_path / "x", "excel", generated=GENERATED)
    assert not (tmp_path / "x").exists()
    assert set(GRADEBOOK_FORMATS) == {"default", "google-classroom", "canvas", "moodle"}


def test_fields_csv(written):
    out, _ = written
    rows = read_csv(out / "fields.csv", "utf-8-sig")
    assert rows[0][:16] == [
        "student_id", "name", "page", "field_id", "exercise_id", "label", "read", "expected",
        "expected_used", "verdict", "points", "max_points", "confidence", "carried_forward",
        "mistake", "reason",
    ]
    assert len(rows) == 1 + 12
    carried = next(r for r in rows if r[0] == "240101" and r[3] == "q2.z2")
    assert carried[2] == "2" and carried[7:15] == ["24", "42", "correct", "2", "2", "0.970",
                                                   "yes", "carried"]
    blank = next(r for r in rows if r[0] == "240102" and r[3] == "q2.z2")
    assert blank[6] == "" and blank[9] == "blank"
    assert [r[1] for r in rows if r[0] == ""] == ["unidentified-1", "unidentified-1"]


def pdf_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    match = re.search(r"^Pages:\s+(\d+)", info.stdout, re.MULTILINE)
    assert match
    return int(match.group(1))


def render_first_page(path: Path, tmp_path: Path) -> np.ndarray:
    prefix = tmp_path / path.stem
    subprocess.run(["pdftoppm", "-r", str(int(DPI)), "-f", "1", "-l", "1", "-png", str(path),
                    str(prefix)], check=True, capture_output=True)
    (png,) = tmp_path.glob(f"{path.stem}*.png")
    with Image.open(png) as image:
        return np.asarray(image.convert("RGB"))


def px(mm_x: float, mm_y: float) -> tuple[int, int]:
    """Pixel (row, column) in a page rendered at DPI, below the header strip."""
    scale = DPI / 25.4
    return round((mm_y + HEADER_MM) * scale), round(mm_x * scale)


def outline_colour(pixels: np.ndarray, field_id: str, verdict: str) -> bool:
    """Whether the left edge of a box's outline (0.8 mm outside it) has the verdict's colour."""
    x, y, _, h = BBOX[field_id]
    row, col = px(x - 0.8, y + h / 2)
    patch = pixels[row - 2:row + 3, col - 1:col + 3].reshape(-1, 3).astype(int)
    return bool(np.abs(patch - np.array(COLOURS[verdict])).sum(axis=1).min() < 60)


needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler")


@needs_poppler
def test_student_pdfs_have_their_pages(written):
    out, _ = written
    counts = {p.name: pdf_pages(p) for p in sorted((out / "students").glob("*.pdf"))}
    assert counts == {"240101.pdf": 2, "240102.pdf": 2, "sam_school.org.pdf": 1,
                      "unidentified-1.pdf": 1}


@needs_poppler
def test_pdf_uses_the_aligned_image_and_marks_wrong_boxes_red(written, tmp_path):
    out, _ = written
    pixels = render_first_page(out / "students" / "240101.pdf", tmp_path)
    assert pixels.shape[1] == round(210 * DPI / 25.4)
    x, y, w, h = BLOCK_MM
    assert pixels[px(x + w / 2, y + h / 2)].max() < 60  # the page image's black block
    assert outline_colour(pixels, "q1.b", "incorrect")
    assert outline_colour(pixels, "q1.a", "correct")
    assert not outline_colour(pixels, "q1.a", "incorrect")


@needs_poppler
def test_pdf_without_image_is_a_white_page_with_boxes(written, tmp_path):
    out, _ = written
    pixels = render_first_page(out / "students" / "240102.pdf", tmp_path)
    x, y, w, h = BLOCK_MM
    assert pixels[px(x + w / 2, y + h / 2)].min() > 240
    assert outline_colour(pixels, "q1.b", "review")


def test_report_is_self_contained_and_has_the_numbers(written):
    out, _ = written
    html = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "http" not in html and "<script" not in html and "url(" not in html
    assert "<svg" in html and 'role="img"' in html and "<title" in html
    assert '<th scope="col">' in html and "<caption>" in html
    assert "Layers &amp; gradients" in html  # escaped, not raw
    assert "3.67" in html and "(52.4%)" in html  # mean of 4, 3 and 4 out of 7
    assert re.search(r"Median score</th><td>4 \(57\.1%\)", html)
    assert "sign ×2" in html and "digit_swap ×1" in html and "carried ×1" in html
    assert "-4 ×1" in html and "too_blurred" in html and "blurred: hold the phone" in html
    assert "Fields waiting for review</th><td>1<" in html
    assert "Pages replaced by a later photo</th><td>1<" in html
    assert "replaced by a later photo of the same page, sam_p1.jpg" in html
    assert "same as amina_p1.jpg; counted once" in html
    assert "Li, Wei" in html and "nobody.jpg" in html
    # The page with a field in review, and how its photo measured.
    assert re.search(r"jose_p1\.jpg</td><td>[^<]+</td><td>1</td><td>4\.2 px/mm</td>"
                     r"<td>0\.71 mm</td><td>0\.986</td>", html)
    assert html.count("<svg") == 1 + 2 * 2 + 2 * 4  # histogram + bars per exercise and field


def test_output_is_deterministic(tmp_path):
    results = class_results(tmp_path)
    first = write_all(results, tmp_path / "a", generated=GENERATED)
    second = write_all(results, tmp_path / "b", generated=GENERATED)
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), name


def test_stale_student_pdfs_are_removed(tmp_path):
    out = tmp_path / "out"
    (out / "students").mkdir(parents=True)
    (out / "students" / "unidentified-7.pdf").write_bytes(b"%PDF-old")
    write_all(class_results(tmp_path), out, generated=GENERATED)
    assert not (out / "students" / "unidentified-7.pdf").exists()


@pytest.mark.parametrize(("name", "expected"), [
    ("Amina Diallo", ("Amina", "Diallo")),
    ("Amina N.  Diallo", ("Amina N.", "Diallo")),
    ("Diallo, Amina", ("Amina", "Diallo")),
    ("Plato", ("Plato", "")),
])
def test_split_name(name, expected):
    assert split_name(name) == expected


def test_small_helpers():
    assert [fmt_points(v) for v in (4.0, 2.5, 1 / 3, -0.0, None)] == ["4", "2.5", "0.33", "0", ""]
    assert safe_filename("../../etc/passwd") == "etc_passwd"
    assert safe_filename("") == "student"


def test_empty_batch_still_writes_every_file(tmp_path):
    results = ClassResults(worksheet_id="00000000", title="Empty", exercises=[],
                           pages=[PageResult(source="x.png", status="qr_unreadable")])
    files = write_all(results, tmp_path / "out", "canvas", generated=GENERATED)
    assert set(files) == {"results.json", "gradebook.csv", "fields.csv", "report.html"}
    doc = json.loads(files["results.json"].read_text(encoding="utf-8"))
    assert doc["summary"]["errors"] == {"qr_unreadable": 1} and doc["students"] == []
    assert read_csv(files["gradebook.csv"])[1][5] == "0"
