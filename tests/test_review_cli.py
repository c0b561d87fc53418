"""The terminal review: keep, correct, blank, skip; decisions stored, dependants re-graded."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from grader.grade import PHOTOCOPIED_NOTE
from grader.results import FieldResult, PageResult, StudentRef
from grader.score import TeacherReading
from grader.simulate_class import simulate_class
from worker.jobs import GradeRequest, grade_batch
from worker.review import ReviewTally, confirm_in_groups, offered_student, preview, run_review
from worker.store import Regrade, open_store
from worksheets.publish import publish
from worksheets.spec import Student, load_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "linear-layer.yaml"
pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils")


class UnsureReader:
    """Reads every box as ``text`` with low confidence, so every field lands in review."""

    def __init__(self, text: str) -> None:
        self.text = text

    def read_batch(self, crops: Sequence[np.ndarray],
                   capture: object = None) -> list[TeacherReading]:
        return [TeacherReading(self.text, "number", 0.3, ((self.text, 0.3), ("7", 0.2)), True)
                for _ in crops]


def no_answer_of(key: dict) -> str:
    """A number no field of the key expects, so no reading is grouped as the key's answer."""
    expected = {f["expected"] for p in key["pages"] for f in p["fields"]}
    return next(t for t in ("1", "77", "777", "7777") if t not in expected)


@pytest.fixture()
def graded(tmp_path: Path) -> tuple[Path, dict]:
    printed = publish(load_spec(EXAMPLE), tmp_path / "print",
                      students=[Student(student_id="9", name="Grace Hopper")])
    key = json.loads(printed.key_json.read_text())
    photos = tmp_path / "photos"
    simulate_class(key, printed.worksheets_pdf, photos, "scan", seed=3)
    out = tmp_path / "results"
    grade_batch(GradeRequest(printed.key_json, [sorted(photos.glob("*.jpg"))[0]], out),
                reader=UnsureReader(no_answer_of(key)))
    return out, key


def scripted(answers: list[str]):
    queue = list(answers)
    return lambda _prompt: queue.pop(0)


def test_review_records_decisions_and_regrades(graded) -> None:
    out, key = graded
    page = key["pages"][0]
    fields = page["fields"]
    said: list[str] = []
    correct_first = fields[0]["expected"]
    tally = run_review(out, ask=scripted([correct_first, "", "b", "oops", "s", "q"]),
                       say=said.append, who="ms.k")
    assert (tally.corrected, tally.kept, tally.skipped) == (2, 1, 1)
    assert any("not a number" in line for line in said)
    results = json.loads((out / "results.json").read_text())
    by_id = {f["id"]: f for p in results["pages"] for f in p["fields"]}
    assert by_id[fields[0]["id"]]["verdict"] == "correct"
    assert by_id[fields[0]["id"]]["read"] == correct_first
    assert by_id[fields[2]["id"]]["verdict"] == "blank"
    kept = by_id[fields[1]["id"]]
    assert kept["read"] == no_answer_of(key) and kept["verdict"] in {"correct", "incorrect"}
    assert by_id[fields[3]["id"]]["verdict"] == "review"  # skipped: still waiting
    with open_store(None, out) as store:
        page_id, _field = store.review_queue(key["worksheet_id"])[0]
        history = store.reviews(page_id)
    assert {r.who for r in history} == {"ms.k"} and len(history) == 3


def test_preview_draws_the_crop(graded) -> None:
    out, _key = graded
    crop = next((out / "crops").rglob("*.png"))
    lines = preview(str(crop), width=40)
    assert len(lines) >= 3 and all(len(line) == 40 for line in lines)
    assert any(ch != " " for line in lines for ch in line)
    coloured = preview(str(crop), width=20, colour=True)
    assert "\x1b[38;2;" in coloured[0]
    assert preview(None) == ["(no crop saved)"]


class RecordingStore:
    def __init__(self) -> None:
        self.accepted: list[str] = []

    def accept_review(self, page_id: int, field_id: str, who: str, regrade: Regrade,
                      reason: str = "") -> None:
        self.accepted.append(field_id)


def in_review(field_id: str, read: str, expected: str, reason: str = "reader unsure (0.60)",
              ) -> tuple[int, FieldResult]:
    return 1, FieldResult(field_id, "q1", field_id, read, 0.6, [], expected, expected, "review",
                          0.0, 1.0, reason=reason, reader_unsure=True)


def test_doubted_readings_of_the_key_answer_are_confirmed_a_group_at_a_time() -> None:
    queue = [in_review("a", "3", "3"), in_review("b", ".5", "0.5"), in_review("c", "4", "3"),
             in_review("d", "2", "2"), in_review("e", "2", "2", "photo too blurred")]
    store = RecordingStore()
    said: list[str] = []
    tally = ReviewTally()
    finished = confirm_in_groups(store, queue, scripted(["x", "9", "2"]), said.append, "ms.k",
                                 False, lambda page, _c: page, tally)
    assert finished and store.accepted == ["a", "d"] and tally.kept == 2
    assert sum("type item numbers" in line for line in said) == 2
    assert any("3 field(s) read as exactly the key's answer" in line for line in said)
    quitting = RecordingStore()
    assert not confirm_in_groups(quitting, queue, scripted(["q"]), said.append, "ms.k", False,
                                 lambda page, _c: page, ReviewTally())
    assert quitting.accepted == []


class ScriptedReader:
    """Reads a page's boxes, in order, as ``texts``; the first reading doubted, the rest sure."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def read_batch(self, crops: Sequence[np.ndarray],
                   capture: object = None) -> list[TeacherReading]:
        readings = []
        for i, _crop in enumerate(crops):
            text = self.texts[i] if i < len(self.texts) else "5"
            confidence = 0.5 if i == 0 else 0.999
            readings.append(TeacherReading(text, "number", confidence,
                                           ((text, confidence), ("7", 0.001)), i == 0))
        return readings


def test_a_field_settled_by_an_earlier_decision_is_not_asked_about(tmp_path: Path) -> None:
    """The sum of a dot product follows from a doubted product: once the teacher types that
    product, the sum is re-graded (follow-through) and leaves the queue unasked."""
    printed = publish(load_spec(EXAMPLE), tmp_path / "print",
                      students=[Student(student_id="9", name="Grace Hopper")])
    key = json.loads(printed.key_json.read_text())
    fields = key["pages"][0]["fields"]
    first, total = fields[0], next(f for f in fields if fields[0]["id"] in f["depends_on"])
    written = str(int(first["expected"]) - 1)  # a slip in the first product, carried on
    texts = [f["expected"] for f in fields]
    texts[0], texts[fields.index(total)] = written, str(int(total["expected"]) - 1)
    photos = tmp_path / "photos"
    simulate_class(key, printed.worksheets_pdf, photos, "scan", seed=3)
    out = tmp_path / "results"
    grade_batch(GradeRequest(printed.key_json, [sorted(photos.glob("*.jpg"))[0]], out),
                reader=ScriptedReader(texts))
    before = {f["id"]: f for f in json.loads((out / "results.json").read_text())["pages"][0]
              ["fields"]}
    assert before[total["id"]]["reason"] == "follow-through rests on an earlier reading in review"
    said: list[str] = []
    tally = run_review(out, ask=scripted([written]), say=said.append, who="ms.k")
    assert (tally.corrected, tally.settled) == (1, 1)
    assert any(f"{total['id']}: settled by an earlier decision, now correct" in line
               for line in said)
    after = {f["id"]: f for f in json.loads((out / "results.json").read_text())["pages"][0]
             ["fields"]}
    assert after[total["id"]]["verdict"] == "correct" and after[total["id"]]["carried_forward"]
    # Re-grading the page kept every box's saved crop for whoever reviews it next.
    assert all(f["crop_path"] == before[f["id"]]["crop_path"] is not None
               for f in after.values())


def numbered_copy_graded(tmp_path: Path, pages: slice) -> tuple[Path, int]:
    """One numbered copy printed for a two-student roster, its photos ``pages`` graded by a
    reader that reads no box surely (so the student number is unreadable): the results
    folder and how many pages wait for identity review."""
    printed = publish(load_spec(EXAMPLE), tmp_path / "print", copies=1)
    key = json.loads(printed.key_json.read_text())
    photos = tmp_path / "photos"
    simulate_class(key, printed.worksheets_pdf, photos, "scan", seed=4)
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name\n240101,Amina Diallo\n240102,Bruno Costa\n")
    out = tmp_path / "results"
    summary = grade_batch(GradeRequest(printed.key_json, sorted(photos.glob("*.jpg"))[pages],
                                       out, roster_csv=roster),
                          reader=UnsureReader(no_answer_of(key)))
    return out, summary.identity_reviews


def test_pages_nobody_can_attribute_are_asked_about(tmp_path: Path) -> None:
    """Page 2 of a numbered copy graded without its page 1: whose it is, asked in review."""
    out, identity_reviews = numbered_copy_graded(tmp_path, slice(1, 2))
    assert identity_reviews == 1
    prompts: list[str] = []
    answers = iter(["999", "240102"])  # a wrong id, then the right one

    def ask(prompt: str) -> str:  # skips every field, then says whose the page is
        prompts.append(prompt)
        return next(answers) if "student id" in prompt else "s"

    said: list[str] = []
    run_review(out, ask=ask, say=said.append, who="ms.k")
    assert any("no page 1 of this printed copy" in line for line in said)
    assert any("(Enter = skip, s = skip, q = quit)" in p for p in prompts)
    assert any("999 is not on the roster" in line for line in said)
    results = json.loads((out / "results.json").read_text())
    assert results["pages"][0]["student"] == {"student_id": "240102", "name": "Bruno Costa"}


def test_a_copys_later_page_is_offered_the_student_named_for_its_first(tmp_path: Path) -> None:
    """Both pages of a numbered copy whose number is not on the roster: once the teacher says
    whose page 1 is, page 2 (which carries no number) offers that student, not the guess
    the teacher just ruled out."""
    out, identity_reviews = numbered_copy_graded(tmp_path, slice(0, 2))
    assert identity_reviews == 2
    answers = iter(["240102", ""])  # page 1 named; Enter takes what page 2 offers

    def ask(prompt: str) -> str:  # skips every field, then says whose the pages are
        return next(answers) if "student id" in prompt else "s"

    said: list[str] = []
    run_review(out, ask=ask, say=said.append, who="ms.k")
    pages = json.loads((out / "results.json").read_text())["pages"]
    assert [p["student"]["student_id"] for p in pages] == ["240102", "240102"]
    assert any("best match: 240102 (named for page 1 of this printed copy)" in line
               for line in said)


def test_only_a_copys_unnumbered_pages_follow_the_student_named_for_it() -> None:
    def page(pdf_page: int, variant: int, guess: str | None, message: str = "") -> PageResult:
        student = StudentRef(guess, "") if guess else None
        return PageResult("p.jpg", "graded", message, pdf_page=pdf_page, variant=variant,
                          student=student)

    named, numbered = {3: "240102", 4: ""}, {0}  # copy 4: two students named, photocopied
    assert offered_student(page(1, 3, "240101"), named, numbered)[0] == "240102"
    assert offered_student(page(1, 3, None), named, numbered)[0] == "240102"
    assert offered_student(page(0, 3, "240101"), named, numbered) == ("240101", "")
    assert offered_student(page(1, 3, "240101", PHOTOCOPIED_NOTE), named, numbered)[0] == "240101"
    assert offered_student(page(1, 4, "240101"), named, numbered)[0] == "240101"
    assert offered_student(page(1, 5, None), named, numbered) == (None, "")
