"""The batch job end to end with a stand-in reader: storing, duplicates, retakes, errors.

The reader here answers "blank" for every box so these tests exercise everything around
reading (decode, align, identify, store, outputs) without the model; the real reader's
round trip is in tests/test_grade_end_to_end.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from grader.score import TeacherReading
from grader.simulate_class import simulate_class
from worker.commands.grade_cmd import print_summary
from worker.jobs import GradeRequest, grade_batch
from worksheets.errors import OutputFolderError
from worksheets.publish import publish
from worksheets.spec import Student, load_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "linear-layer.yaml"

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils")


class BlankReader:
    def __init__(self) -> None:
        self.crops_seen = 0
        self.captures: list[Any] = []

    def read_batch(self, crops: Sequence[np.ndarray],
                   capture: object = None) -> list[TeacherReading]:
        self.crops_seen += len(crops)
        self.captures.append(capture)
        return [TeacherReading(None, "blank", 0.99) for _ in crops]


class UnsureReader(BlankReader):
    """Reads a "7" in every box, never sure of it: every field goes to review."""

    def read_batch(self, crops: Sequence[np.ndarray],
                   capture: object = None) -> list[TeacherReading]:
        super().read_batch(crops, capture)
        return [TeacherReading("7", "number", 0.5, needs_review=True) for _ in crops]


@pytest.fixture(scope="module")
def class_photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("job")
    students = [Student(student_id="501", name="Ada Lovelace"),
                Student(student_id="502", name="Alan Turing")]
    printed = publish(load_spec(EXAMPLE), root / "print", students=students)
    key = json.loads(printed.key_json.read_text())
    photos = root / "photos"
    simulate_class(key, printed.worksheets_pdf, photos, "scan", seed=11)
    retakes = root / "retakes"
    simulate_class(key, printed.worksheets_pdf, retakes, "scan", seed=12)
    return {"root": root, "key_path": printed.key_json, "photos": photos, "retakes": retakes}


def test_a_batch_is_stored_and_every_output_written(class_photos, tmp_path: Path) -> None:
    photos: Path = class_photos["photos"]
    (photos / "notes.docx").write_bytes(b"PK\x03\x04 not really a document")
    reader = BlankReader()
    out = tmp_path / "results"
    summary = grade_batch(GradeRequest(class_photos["key_path"], [photos], out), reader=reader)
    (photos / "notes.docx").unlink()
    assert summary.pages == 5 and summary.graded == 4
    assert sum(summary.errors.values()) == 1
    assert summary.students == 2
    assert reader.crops_seen > 0
    # Each page's measured sharpness and resolution go with its crops (they set the threshold).
    assert len(reader.captures) == 4
    assert all(c.px_per_mm > 2 and 0 < c.edge_mm < 0.85 for c in reader.captures)
    for name in ("results.json", "gradebook.csv", "fields.csv", "report.html"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    graded = [p for p in results["pages"] if p["status"] == "graded"]
    assert len(graded) == 4
    assert {p["student"]["student_id"] for p in graded} == {"501", "502"}
    assert all(f["verdict"] == "blank" and f["read"] is None for p in graded for f in p["fields"])
    errors = [p for p in results["pages"] if p["status"] != "graded"]
    assert "notes.docx" in errors[0]["source"]
    assert any(out.glob("uploads/*/*")), "originals are kept"
    assert len(list((out / "students").glob("*.pdf"))) == 2


def test_same_photos_twice_are_not_counted_twice(class_photos, tmp_path: Path) -> None:
    out = tmp_path / "results"
    request = GradeRequest(class_photos["key_path"], [class_photos["photos"]], out)
    first = grade_batch(request, reader=UnsureReader())
    again = grade_batch(request, reader=UnsureReader())
    assert again.duplicates == 4 and again.replaced == 0
    # What waits for review is the folder's queue, the duplicates' fields not counted again.
    assert first.fields_in_review > 0 and again.fields_in_review == first.fields_in_review
    results = json.loads((out / "results.json").read_text())
    assert len([p for p in results["pages"] if p["status"] == "graded"]) == 4
    assert results["summary"]["review"] == first.fields_in_review
    # Every upload is listed, the second ones as duplicates of the first.
    duplicates = [p for p in results["pages"] if p["status"] == "duplicate"]
    assert len(duplicates) == 4 and results["summary"]["duplicates"] == 4
    graded_sources = {p["source"] for p in results["pages"] if p["status"] == "graded"}
    assert {p["duplicate_of"] for p in duplicates} == graded_sources
    assert results["summary"]["pages"] == 8 and results["summary"]["errors"] == {}


def test_a_retake_replaces_the_earlier_photo(class_photos, tmp_path: Path) -> None:
    out = tmp_path / "results"
    grade_batch(GradeRequest(class_photos["key_path"], [class_photos["photos"]], out),
                reader=BlankReader())
    retake = sorted(class_photos["retakes"].glob("*.jpg"))[0]
    summary = grade_batch(GradeRequest(class_photos["key_path"], [retake], out),
                          reader=BlankReader())
    assert summary.replaced == 1
    results = json.loads((out / "results.json").read_text())
    sources = [p["source"] for p in results["pages"] if p["status"] == "graded"]
    assert len(sources) == 4 and any(str(class_photos["retakes"]) in s or retake.name in s
                                     for s in sources)
    # The earlier photo is still listed, with the one that took its place.
    replaced = [p for p in results["pages"] if p["status"] == "replaced"]
    assert len(replaced) == 1 and results["summary"]["replaced"] == 1
    assert replaced[0]["replaced_by"] in sources and str(retake) in replaced[0]["replaced_by"]
    assert "replaced by a later photo" in (out / "report.html").read_text()


def test_missing_and_broken_inputs_are_reported_not_dropped(class_photos, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "results"
    summary = grade_batch(GradeRequest(class_photos["key_path"],
                                       [broken, tmp_path / "missing.jpg"], out),
                          reader=BlankReader())
    assert summary.pages == 2 and summary.graded == 0
    results = json.loads((out / "results.json").read_text())
    assert {p["status"] for p in results["pages"]} <= {"unreadable_file", "unsupported_format"}
    assert all(p["message"] for p in results["pages"])


class BrokenReader:
    def read_batch(self, crops: Sequence[np.ndarray],
                   capture: object = None) -> list[TeacherReading]:
        raise RuntimeError("simulated fault")


def test_a_fault_on_one_page_is_reported_and_the_batch_goes_on(class_photos,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "results"
    summary = grade_batch(GradeRequest(class_photos["key_path"], [class_photos["photos"]], out),
                          reader=BrokenReader())
    assert summary.pages == 4 and summary.errors["internal_error"] == 4
    results = json.loads((out / "results.json").read_text())
    assert all(p["status"] == "internal_error" and "Upload this page again" in p["message"]
               for p in results["pages"])


def _busy_opencv_threads() -> None:
    """Run OpenCV's thread pool in this process, as a CLI that simulated photos first does."""
    cv2.setNumThreads(4)
    image = np.random.default_rng(0).random((2000, 2000), dtype=np.float32)
    for _ in range(3):
        cv2.GaussianBlur(image, (0, 0), 5)


@pytest.mark.timeout(300)
def test_worker_processes_grade_like_one_process_after_opencv_threads_ran(
        class_photos, tmp_path: Path) -> None:
    """Workers forked from a process whose OpenCV threads had run used to hang forever."""
    _busy_opencv_threads()
    by_jobs: dict[int, dict[str, Any]] = {}
    for jobs in (2, 1):
        out = tmp_path / f"jobs{jobs}"
        summary = grade_batch(GradeRequest(class_photos["key_path"], [class_photos["photos"]],
                                           out, jobs=jobs))
        assert summary.pages == 4 and summary.graded == 4
        pages = json.loads((out / "results.json").read_text())["pages"]
        by_jobs[jobs] = {f"{p['source']}/{f['id']}": (f["read"], f["verdict"])
                         for p in pages for f in p["fields"]}
    assert by_jobs[2] == by_jobs[1]


def test_a_results_folder_that_is_a_file_is_a_clear_error(class_photos, tmp_path: Path) -> None:
    taken = tmp_path / "results"
    taken.write_text("a file where the results folder should go")
    with pytest.raises(OutputFolderError, match="is a file, not a folder"):
        grade_batch(GradeRequest(class_photos["key_path"], [class_photos["photos"]], taken),
                    reader=BlankReader())


class CreditingReader(UnsureReader):
    """An unsure reader whose model has a calibrated key-match threshold."""

    key_match_threshold = 0.6


@pytest.mark.parametrize(("reader", "credit", "unavailable"), [
    (UnsureReader(), True, True),
    (CreditingReader(), True, False),
    (UnsureReader(), False, False),
])
def test_a_worksheet_asking_for_crediting_is_told_when_the_reader_cannot(
        class_photos, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        reader: UnsureReader, credit: bool, unavailable: bool) -> None:
    key = json.loads(Path(class_photos["key_path"]).read_text())
    key_path = tmp_path / "key.json"
    key_path.write_text(json.dumps({**key, "credit_expected_answers": credit}))
    out = tmp_path / "results"
    summary = grade_batch(GradeRequest(key_path, [class_photos["photos"]], out), reader=reader)
    assert summary.crediting_unavailable is unavailable
    print_summary(summary, out)
    said = "no calibrated key-match threshold" in capsys.readouterr().out
    assert said is unavailable
