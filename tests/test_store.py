"""The results store on SQLite and PostgreSQL: round trips, duplicates, retakes, decisions."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from grader.results import ClassResults, ExerciseInfo, FieldResult, PageResult, StudentRef
from tests.store_fixtures import postgres_admin_url_or_skip, throwaway_database, throwaway_schema
from worker.jobs import link_to_stored_copies
from worker.store import (
    DATABASE_URL_ENV,
    RecordNotFound,
    Store,
    StoreError,
    StoreUnavailable,
    open_store,
)
from worker.store.db import alembic_config, head_revision
from worker.store.models import Base

WORKSHEET = "F21C0F01"
ROSTER = [StudentRef("240101", "Amina Diallo"), StudentRef("240102", "Ben Okafor")]


# ---- backends ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    with throwaway_database(postgres_admin_url_or_skip()) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
        return
    with throwaway_schema(request.getfixturevalue("postgres_database")) as url:
        yield url


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    with open_store(store_url, tmp_path / "data") as opened:
        yield opened


@pytest.fixture
def keyed(store: Store) -> Store:
    store.save_key(make_key())
    return store


# ---- inputs --------------------------------------------------------------------------------


def make_key() -> dict[str, Any]:
    """A small key.json: two students' variants; q1.b is computed from q1.a (b = 2a)."""
    def exercises() -> list[dict[str, Any]]:
        return [
            {"id": "q1", "family": "arithmetic", "title": "Double it", "points": 2.0,
             "fields": [{"id": "q1.a", "expected": "3", "depends_on": [], "points": 1.0},
                        {"id": "q1.b", "expected": "6", "depends_on": ["q1.a"], "points": 1.0}]},
            {"id": "q2", "family": "arithmetic", "title": "Add", "points": 1.0,
             "fields": [{"id": "q2.s", "expected": "7", "depends_on": [], "points": 1.0}]},
        ]
    return {
        "schema": "papergrade.key/1",
        "worksheet_id": WORKSHEET,
        "title": "Layers, by hand",
        "variants": [
            {"index": i, "student": {"student_id": st.student_id, "name": st.name},
             "pdf_pages": [i], "exercises": exercises()}
            for i, st in enumerate(ROSTER)
        ],
        "pages": [],
    }


def field(field_id: str, read: str | None, verdict: str, *, confidence: float = 0.97,
          expected: str = "", expected_used: str | None = None, points: float = 0.0,
          **extra: Any) -> FieldResult:
    expected = expected or {"q1.a": "3", "q1.b": "6", "q2.s": "7"}[field_id]
    return FieldResult(
        field_id=field_id, exercise_id=field_id.split(".")[0], label=field_id.split(".")[1],
        read=read, confidence=confidence, alternatives=[(read or "", confidence), ("8", 0.02)],
        expected=expected, expected_used=expected_used or expected, verdict=verdict,  # type: ignore[arg-type]
        points=points, max_points=1.0, bbox_mm=(20.0, 40.5, 30.0, 12.0),
        crop_path=f"crops/{field_id}.png", **extra,
    )


def graded_page(variant: int, sha: str, *, a: str | None = "3", a_confidence: float = 0.97,
                source: str = "") -> PageResult:
    """A graded page of student ``variant``; q1.b was read as 8, q2 as 7."""
    a_right = a == "3"
    b_expected = "6" if a_right or a is None else str(2 * int(a))
    fields = [
        field("q1.a", a, _verdict(a, "3", a_confidence), confidence=a_confidence,
              points=1.0 if a_right and a_confidence >= 0.5 else 0.0,
              reader_unsure=a_confidence < 0.5),
        field("q1.b", "8", "correct" if b_expected == "8" else "incorrect",
              expected_used=b_expected, carried_forward=not a_right,
              points=1.0 if b_expected == "8" else 0.0,
              mistake=None if b_expected == "8" else "wrong value"),
        field("q2.s", "7", "correct", points=1.0, reason="exact"),
    ]
    return PageResult(
        source=source or f"photos/{sha[:6]}.jpg", status="graded", sha256=sha, pdf_page=variant,
        variant=variant, page_number=1, student=ROSTER[variant], identity_source="qr",
        fields=fields, image_path=f"annotated/{sha[:6]}.png",
        px_per_mm=7.25, blur_mm=0.412, review_threshold=0.96,
    )


def error_page(code: str, sha: str, **extra: Any) -> PageResult:
    return PageResult(source=f"photos/{sha[:6]}.jpg", status=code, sha256=sha,
                      message="retake the photo in better light", **extra)


def _verdict(read: str | None, expected: str, confidence: float) -> str:
    if read is None:
        return "blank"
    if confidence < 0.5:
        return "review"
    return "correct" if read == expected else "incorrect"


def fake_regrade(page: PageResult, readings: dict[str, str | None]) -> PageResult:
    """Stands in for grader.score: b is checked against 2 * a as read (error carried forward)."""
    by_id = {f.field_id: f for f in page.fields}
    a = by_id["q1.a"].read
    out = []
    for f in page.fields:
        used = f.expected
        if f.field_id == "q1.b" and a not in (None, by_id["q1.a"].expected):
            used = str(2 * int(a or 0))
        confidence = 1.0 if f.field_id in readings else f.confidence
        verdict = _verdict(f.read, used, confidence)
        out.append(replace(f, expected_used=used, verdict=verdict,  # type: ignore[arg-type]
                           carried_forward=used != f.expected,
                           points=f.max_points if verdict == "correct" else 0.0))
    return replace(page, fields=out)


def sha(n: int) -> str:
    return hashlib.sha256(f"page {n}".encode()).hexdigest()


def upload(store: Store, n: int) -> int:
    return store.store_upload(f"photo bytes {n}".encode(), f"IMG_{n}.JPG").upload_id


# ---- schema --------------------------------------------------------------------------------


def test_migrations_match_models_and_downgrade_cleanly(store_url: str, tmp_path: Path) -> None:
    with open_store(store_url, tmp_path / "data") as store, store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == head_revision()
    engine = create_engine(store_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
            assert set(inspect(conn).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    with open_store(store_url, tmp_path / "data") as store, store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_default_url_is_sqlite_in_data_dir_and_env_overrides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    with open_store(None, tmp_path / "data") as store:
        assert store.engine.url.database == str((tmp_path / "data" / "papergrade.db").resolve())
    assert (tmp_path / "data" / "papergrade.db").is_file()
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{tmp_path / 'env.db'}")
    with open_store(None, tmp_path / "data"):
        assert (tmp_path / "env.db").is_file()
    with open_store(f"sqlite:///{tmp_path / 'arg.db'}", tmp_path / "data"):
        assert (tmp_path / "arg.db").is_file()


@pytest.mark.parametrize("url", ["nonsense://x", "postgresql+psycopg2://nobody@127.0.0.1:1/none"])
def test_unusable_database_is_a_store_error(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable) as info:
        open_store(url, tmp_path)
    assert info.value.code == "database_unavailable"


# ---- worksheets, uploads, pages ----------------------------------------------------------------


def test_class_results_round_trip(keyed: Store) -> None:
    pages = [graded_page(0, sha(1)), graded_page(1, sha(2), a="5", a_confidence=0.4),
             error_page("too_blurred", sha(3))]
    for n, page in enumerate(pages):
        keyed.add_page_result(upload(keyed, n), page, worksheet_id=WORKSHEET)
    expected = ClassResults(
        worksheet_id=WORKSHEET, title="Layers, by hand",
        exercises=[ExerciseInfo("q1", "Double it", 2.0), ExerciseInfo("q2", "Add", 1.0)],
        pages=pages, roster=ROSTER,
    )
    assert keyed.snapshot(WORKSHEET) == expected
    assert keyed.get_key(WORKSHEET) == make_key()
    assert keyed.list_worksheets() == [(WORKSHEET, "Layers, by hand")]


def test_save_key_is_idempotent_and_roster_can_be_replaced(keyed: Store) -> None:
    keyed.save_key(make_key())
    assert keyed.roster(WORKSHEET) == ROSTER
    new_roster = [StudentRef("240103", "Chen Wei"), ROSTER[0]]
    keyed.save_roster(WORKSHEET, new_roster)
    keyed.save_key(make_key())  # the key's students are on it already: order kept
    assert keyed.roster(WORKSHEET) == [*new_roster, ROSTER[1]]
    with pytest.raises(RecordNotFound):
        keyed.save_roster("00000000", ROSTER)


def test_original_upload_bytes_kept_and_deduplicated(store: Store, tmp_path: Path) -> None:
    data = b"\xff\xd8 a phone photo \xff\xd9"
    digest = hashlib.sha256(data).hexdigest()
    first = store.store_upload(data, "IMG_0001.JPG")
    assert not first.duplicate and first.sha256 == digest
    assert first.path == store.data_dir / "uploads" / digest[:2] / f"{digest}.jpg"
    assert first.path.read_bytes() == data
    on_disk = tmp_path / "copy.jpeg"
    on_disk.write_bytes(data)
    again = store.store_upload(on_disk)
    assert again.duplicate and again.upload_id == first.upload_id and again.path == first.path
    other = store.store_upload(b"other", "scan.pdf")
    assert other.upload_id != first.upload_id and other.path.suffix == ".pdf"
    assert store.upload_path(first.upload_id).read_bytes() == data
    first.path.unlink()  # lost from disk: the next upload of the same bytes restores it
    assert store.store_upload(data, "again.jpg").path.read_bytes() == data


def test_same_page_uploaded_twice_is_not_counted(keyed: Store) -> None:
    batch = keyed.start_batch(WORKSHEET)
    page = graded_page(0, sha(1))
    first = keyed.add_page_result(upload(keyed, 1), page, worksheet_id=WORKSHEET, batch_id=batch)
    second = keyed.add_page_result(upload(keyed, 2), replace(page, source="again.jpg"),
                                   worksheet_id=WORKSHEET, batch_id=batch)
    assert second.duplicate_of == first.page_id and second.superseded == []
    assert keyed.snapshot(WORKSHEET).pages == [page]
    history = keyed.page_history(WORKSHEET, 0, 1)
    assert [h.page_id for h in history] == [first.page_id, second.page_id]
    assert history[1].page.duplicate_of == page.source and not history[1].current
    record = keyed.get_batch(batch)
    assert (record.done, record.graded, record.duplicates, record.errors) == (2, 1, 1, 0)


def test_retake_replaces_the_page_and_keeps_history(keyed: Store) -> None:
    old = keyed.add_page_result(upload(keyed, 1), graded_page(0, sha(1), a="5"),
                                worksheet_id=WORKSHEET)
    other = keyed.add_page_result(upload(keyed, 2), graded_page(1, sha(2)), worksheet_id=WORKSHEET)
    new = keyed.add_page_result(upload(keyed, 3), graded_page(0, sha(3)), worksheet_id=WORKSHEET)
    assert new.superseded == [old.page_id] and new.duplicate_of is None
    current = keyed.snapshot(WORKSHEET).pages
    assert [p.sha256 for p in current] == [sha(2), sha(3)]
    history = keyed.page_history(WORKSHEET, 0, 1)
    assert [h.page.sha256 for h in history] == [sha(1), sha(3)]
    assert history[0].superseded_by == new.page_id and history[1].current
    assert history[0].created_at <= history[1].created_at
    assert history[0].created_at.tzinfo is not None
    # The old photo uploaded again is a duplicate of itself, not a new current page.
    back = keyed.add_page_result(upload(keyed, 4), graded_page(0, sha(1), a="5"),
                                 worksheet_id=WORKSHEET)
    assert back.duplicate_of == old.page_id
    assert [p.sha256 for p in keyed.snapshot(WORKSHEET).pages] == [sha(2), sha(3)]
    assert keyed.get_page(other.page_id).current
    # With its history the snapshot lists every page, each marked with the one it defers to.
    every = keyed.snapshot(WORKSHEET, with_history=True)
    assert [p.sha256 for p in every.pages] == [sha(1), sha(2), sha(3), sha(1)]
    old_page, _, new_page, back_page = every.pages
    assert old_page.replaced_by == new_page.source and old_page.duplicate_of is None
    assert back_page.duplicate_of == old_page.source and back_page.replaced_by is None
    assert [p.counts for p in every.pages] == [False, True, True, False]
    assert every.graded_pages() == keyed.snapshot(WORKSHEET).graded_pages()


def test_error_pages_are_kept(keyed: Store) -> None:
    batch = keyed.start_batch(None)
    blurred = error_page("too_blurred", sha(1), variant=0, page_number=1)
    no_qr = error_page("qr_unreadable", sha(2))
    nowhere = error_page("unreadable_file", "")
    ids = [keyed.add_page_result(upload(keyed, 1), page, worksheet_id=ws, page_index=i,
                                 batch_id=batch).page_id
           for i, (page, ws) in enumerate([(blurred, WORKSHEET), (no_qr, WORKSHEET),
                                           (nowhere, None)])]
    assert keyed.snapshot(WORKSHEET).pages == [blurred, no_qr]
    stored = keyed.batch_pages(batch)
    assert [p.page_id for p in stored] == ids and stored[2].worksheet_id is None
    assert [p.page_index for p in stored] == [0, 1, 2]
    assert keyed.get_batch(batch).errors == 3
    # A good photo of the blurred page takes its place; the unreadable QR stays listed.
    retake = keyed.add_page_result(upload(keyed, 2), graded_page(0, sha(4)),
                                   worksheet_id=WORKSHEET)
    assert retake.superseded == [ids[0]]
    assert [p.status for p in keyed.snapshot(WORKSHEET).pages] == ["qr_unreadable", "graded"]


def test_photocopied_copies_hold_each_students_page_apart(keyed: Store) -> None:
    """One numbered copy photocopied for two students: their pages share the printed slot,
    and neither replaces the other's; a page of unknown student replaces no graded one."""
    def written_by(student: StudentRef, digest: str) -> PageResult:
        return replace(graded_page(0, digest), student=student,
                       identity_source="student_number")

    first, second = ROSTER[0], ROSTER[1]
    a = keyed.add_page_result(upload(keyed, 1), written_by(first, sha(1)), worksheet_id=WORKSHEET)
    b = keyed.add_page_result(upload(keyed, 2), written_by(second, sha(2)),
                              worksheet_id=WORKSHEET)
    assert b.superseded == [] and keyed.get_page(a.page_id).current
    assert keyed.copy_students(WORKSHEET, 0) == [first, second]
    unknown = replace(graded_page(0, sha(3)), student=None, identity_source="unknown")
    c = keyed.add_page_result(upload(keyed, 3), unknown, worksheet_id=WORKSHEET)
    assert c.superseded == []
    # The same student's retake still replaces their own page, and only that one.
    again = keyed.add_page_result(upload(keyed, 4), written_by(second, sha(4)),
                                  worksheet_id=WORKSHEET)
    assert again.superseded == [b.page_id]
    assert [p.sha256 for p in keyed.snapshot(WORKSHEET).pages] == [sha(1), sha(3), sha(4)]


def test_a_later_page_of_a_copy_finds_its_student_in_the_store(keyed: Store) -> None:
    """Page 2 of a numbered copy photographed in a later batch than its page 1."""
    numbered = {"worksheet_id": WORKSHEET, "variants": [{"student": None}]}

    def page_two() -> PageResult:
        return replace(graded_page(0, sha(9)), page_number=2, student=None,
                       identity_source="unknown")

    # Before any page 1 of the copy is known, nobody can say whose it is: review, not silence.
    orphan = page_two()
    link_to_stored_copies(keyed, numbered, [orphan])
    assert orphan.student is None and orphan.identity_review and "no page 1" in orphan.message
    first = replace(graded_page(0, sha(1)), student=ROSTER[0], identity_source="student_number")
    keyed.add_page_result(upload(keyed, 1), first, worksheet_id=WORKSHEET)
    later = page_two()
    link_to_stored_copies(keyed, numbered, [later])
    assert later.student == ROSTER[0] and later.identity_source == "student_number"
    assert not later.identity_review
    # Once another student's page 1 of the same copy is stored, nobody can tell whose it is.
    other = replace(graded_page(0, sha(2)), student=ROSTER[1], identity_source="student_number")
    keyed.add_page_result(upload(keyed, 2), other, worksheet_id=WORKSHEET)
    ambiguous = page_two()
    link_to_stored_copies(keyed, numbered, [ambiguous])
    assert ambiguous.student is None and ambiguous.identity_review
    assert "photocopied" in ambiguous.message


def test_saying_whose_page_it_is_lets_the_newest_photo_count(keyed: Store) -> None:
    """An unidentified page given to a student who already has that page: the newer photo
    counts, whichever of the two it is, and the older stays in the history."""
    def page_two(digest: str, student: StudentRef | None) -> PageResult:
        return replace(graded_page(0, digest), page_number=2, student=student,
                       identity_source="student_number" if student else "unknown",
                       identity_review=student is None)

    amina = ROSTER[0]
    early = keyed.add_page_result(upload(keyed, 1), page_two(sha(1), None),
                                  worksheet_id=WORKSHEET)
    named = keyed.add_page_result(upload(keyed, 2), page_two(sha(2), amina),
                                  worksheet_id=WORKSHEET)
    late = keyed.add_page_result(upload(keyed, 3), page_two(sha(3), None),
                                 worksheet_id=WORKSHEET)
    assert named.superseded == [] and late.superseded == []
    keyed.set_page_student(early.page_id, amina.student_id, who="t")
    assert keyed.get_page(early.page_id).superseded_by == named.page_id
    keyed.set_page_student(late.page_id, amina.student_id, who="t")
    assert keyed.get_page(named.page_id).superseded_by == late.page_id
    assert [p.sha256 for p in keyed.snapshot(WORKSHEET).pages] == [sha(3)]


def test_a_retake_whose_answers_mostly_differ_is_not_taken_for_one(keyed: Store) -> None:
    """A sheet printed for one student and photocopied for another carries the first one's
    QR: the second student's answers must not silently replace the first's."""
    amina = ROSTER[0]
    own = keyed.add_page_result(upload(keyed, 1), graded_page(0, sha(1)), worksheet_id=WORKSHEET)
    theirs = graded_page(0, sha(2), a="9")
    theirs.fields = [replace(f, read=text) for f, text in zip(theirs.fields, ["9", "2", "4"],
                                                                strict=True)]
    other = keyed.add_page_result(upload(keyed, 2), theirs, worksheet_id=WORKSHEET)
    assert other.superseded == [] and keyed.get_page(own.page_id).current
    disputed = keyed.get_page(other.page_id).page
    assert disputed.identity_review and "disagree in 3 of 3 answers" in disputed.message
    # The teacher says whose it is; the first student's page stays theirs.
    keyed.set_page_student(other.page_id, ROSTER[1].student_id, who="t")
    current = keyed.snapshot(WORKSHEET).pages
    assert [(p.sha256, p.student) for p in current] == [(sha(1), amina), (sha(2), ROSTER[1])]
    # A real retake of a changed sheet: confirmed as the same student's, the newer counts.
    again = replace(theirs, sha256=sha(3))
    retake = keyed.add_page_result(upload(keyed, 3), again, worksheet_id=WORKSHEET)
    assert retake.superseded == [] and keyed.get_page(retake.page_id).page.identity_review
    keyed.set_page_student(retake.page_id, amina.student_id, who="t")
    assert keyed.get_page(own.page_id).superseded_by == retake.page_id


def test_unknown_ids_are_not_found(keyed: Store) -> None:
    with pytest.raises(RecordNotFound, match=r"save its key\.json first"):
        keyed.add_page_result(upload(keyed, 1), graded_page(0, sha(1)), worksheet_id="00000000")
    with pytest.raises(RecordNotFound):
        keyed.add_page_result(12345, graded_page(0, sha(1)), worksheet_id=WORKSHEET)
    with pytest.raises(RecordNotFound):
        keyed.get_page(12345)
    with pytest.raises(RecordNotFound):
        keyed.snapshot("00000000")


# ---- teacher decisions -----------------------------------------------------------------------


def test_review_queue_lists_only_current_pages(keyed: Store) -> None:
    old = keyed.add_page_result(upload(keyed, 1), graded_page(0, sha(1), a="5", a_confidence=0.3),
                                worksheet_id=WORKSHEET)
    keyed.add_page_result(upload(keyed, 2), graded_page(0, sha(2), a="3"), worksheet_id=WORKSHEET)
    unsure = keyed.add_page_result(upload(keyed, 3), graded_page(1, sha(3), a="4",
                                                                 a_confidence=0.4),
                                   worksheet_id=WORKSHEET)
    keyed.add_page_result(upload(keyed, 4), graded_page(1, sha(3), a="4", a_confidence=0.4),
                          worksheet_id=WORKSHEET)  # a duplicate adds nothing to review
    queue = keyed.review_queue(WORKSHEET)
    assert [(page_id, f.field_id) for page_id, f in queue] == [(unsure.page_id, "q1.a")]
    assert queue[0][1].read == "4" and queue[0][1].confidence == pytest.approx(0.4)
    assert old.page_id not in {page_id for page_id, _ in queue}


def test_override_regrades_dependants_and_records_history(keyed: Store) -> None:
    # Read a = 5 (unsure; the student wrote 4); b = 8 was then judged against 2 * 5 = 10.
    saved = keyed.add_page_result(upload(keyed, 1), graded_page(1, sha(1), a="5",
                                                                a_confidence=0.4),
                                  worksheet_id=WORKSHEET)
    calls: list[dict[str, str | None]] = []

    def regrade(page: PageResult, readings: dict[str, str | None]) -> PageResult:
        calls.append(readings)
        return fake_regrade(page, readings)

    result = keyed.apply_override(saved.page_id, "q1.a", "4", "ms.k", "clearly a 4", regrade)
    a, b, _ = result.fields
    assert (a.read, a.confidence, a.overridden, a.verdict) == ("4", 1.0, True, "incorrect")
    assert (b.expected_used, b.verdict, b.points, b.carried_forward) == ("8", "correct", 1.0, True)
    assert keyed.review_queue(WORKSHEET) == []
    assert keyed.snapshot(WORKSHEET).pages[0].fields == result.fields

    [review] = keyed.reviews(saved.page_id)
    assert (review.kind, review.who, review.reason, review.field_id) == (
        "override", "ms.k", "clearly a 4", "q1.a")
    assert review.before["read"] == "5" and review.before["verdict"] == "review"
    assert review.after["read"] == "4" and review.after["verdict"] == "incorrect"
    assert [c["field_id"] for c in review.changed] == ["q1.b"]
    assert review.changed[0]["before"]["verdict"] == "incorrect"
    assert review.changed[0]["after"]["verdict"] == "correct"
    assert review.created_at.tzinfo is not None

    # A second decision on the page passes the earlier one along and keeps it pinned.
    keyed.apply_override(saved.page_id, "q2.s", None, "ms.k", "crossed out", regrade)
    assert calls[-1] == {"q1.a": "4", "q2.s": None}
    fields = keyed.get_page(saved.page_id).page.fields
    assert (fields[0].read, fields[0].overridden) == ("4", True)
    assert (fields[2].read, fields[2].verdict) == (None, "blank")
    assert len(keyed.reviews(saved.page_id)) == 2


def test_accept_review_decides_as_if_confident(keyed: Store) -> None:
    saved = keyed.add_page_result(upload(keyed, 1), graded_page(0, sha(1), a="3",
                                                                a_confidence=0.35),
                                  worksheet_id=WORKSHEET)
    assert keyed.review_queue(WORKSHEET)[0][1].verdict == "review"
    result = keyed.accept_review(saved.page_id, "q1.a", "ms.k", fake_regrade)
    assert (result.fields[0].read, result.fields[0].verdict, result.fields[0].points) == (
        "3", "correct", 1.0)
    assert result.fields[0].confidence == 1.0
    [review] = keyed.reviews(saved.page_id)
    assert review.kind == "accept" and review.changed == []


def test_decisions_only_on_current_graded_pages(keyed: Store) -> None:
    old = keyed.add_page_result(upload(keyed, 1), graded_page(0, sha(1)), worksheet_id=WORKSHEET)
    keyed.add_page_result(upload(keyed, 2), graded_page(0, sha(2)), worksheet_id=WORKSHEET)
    failed = keyed.add_page_result(upload(keyed, 3), error_page("too_dark", sha(3)),
                                   worksheet_id=WORKSHEET)
    with pytest.raises(StoreError, match="replaced by a later photo"):
        keyed.apply_override(old.page_id, "q1.a", "4", "ms.k", "", fake_regrade)
    with pytest.raises(StoreError, match="not graded"):
        keyed.accept_review(failed.page_id, "q1.a", "ms.k", fake_regrade)
    current = keyed.current_pages(WORKSHEET)[0].page_id
    with pytest.raises(RecordNotFound):
        keyed.apply_override(current, "q9.z", "4", "ms.k", "", fake_regrade)

    def drops_a_field(page: PageResult, readings: dict[str, str | None]) -> PageResult:
        return replace(page, fields=page.fields[:1])

    with pytest.raises(StoreError, match="returned fields"):
        keyed.apply_override(current, "q1.a", "4", "ms.k", "", drops_a_field)
    assert keyed.reviews(current) == []  # the failed decision left nothing behind
    assert keyed.get_page(current).page.fields[0].read == "3"


def test_set_page_student_resolves_identity_review(keyed: Store) -> None:
    unsure = replace(graded_page(0, sha(1)), student=None, identity_source="student_number",
                     identity_review=True, student_number_read="2401?2")
    saved = keyed.add_page_result(upload(keyed, 1), unsure, worksheet_id=WORKSHEET)
    assert [p.page_id for p in keyed.identity_queue(WORKSHEET)] == [saved.page_id]
    with pytest.raises(RecordNotFound, match="roster"):
        keyed.set_page_student(saved.page_id, "999999", "ms.k")
    page = keyed.set_page_student(saved.page_id, "240102", "ms.k", "number smudged")
    assert page.student == ROSTER[1] and not page.identity_review
    assert keyed.identity_queue(WORKSHEET) == []
    assert keyed.snapshot(WORKSHEET).by_student() == {"240102": [page]}
    [review] = keyed.reviews(saved.page_id)
    assert review.kind == "student" and review.field_id is None
    assert review.before["student_id"] is None and review.after["student_id"] == "240102"


def test_batch_progress(keyed: Store) -> None:
    batch = keyed.start_batch(WORKSHEET)
    assert keyed.get_batch(batch).status == "running"
    assert keyed.update_batch(batch, total=3, message="decoding").total == 3
    keyed.add_page_result(upload(keyed, 1), graded_page(0, sha(1)), worksheet_id=WORKSHEET,
                          batch_id=batch)
    keyed.add_page_result(upload(keyed, 2), error_page("too_dark", sha(2)),
                          worksheet_id=WORKSHEET, batch_id=batch)
    record = keyed.finish_batch(batch)
    assert (record.status, record.total, record.done, record.graded, record.errors) == (
        "finished", 3, 2, 1, 1)
    assert record.finished_at is not None and record.finished_at >= record.started_at
    with pytest.raises(RecordNotFound):
        keyed.finish_batch(batch + 100)


def test_processes_opening_a_new_store_at_once_all_succeed(store_url: str, tmp_path: Path) -> None:
    # Scaled workers start together; each migrates on open, and only one may create the schema.
    code = ("import sys; from pathlib import Path; from worker.store import open_store; "
            "open_store(sys.argv[1], Path(sys.argv[2])).close()")
    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", code, store_url, str(tmp_path / "data")],
                              cwd=root, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    with open_store(store_url, tmp_path / "data") as store, store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()


def test_a_plain_postgresql_url_uses_the_installed_driver() -> None:
    """SQLAlchemy 2.1 reads postgresql:// as psycopg 3; the postgres extra installs psycopg2."""
    import importlib.util

    from sqlalchemy import make_url

    from worker.store.db import with_installed_driver

    plain = with_installed_driver(make_url("postgresql://teacher@db.school/grades"))
    expected = "postgresql" if importlib.util.find_spec("psycopg") else "postgresql+psycopg2"
    assert plain.drivername == expected and plain.database == "grades"
    named = make_url("postgresql+psycopg://teacher@db.school/grades")
    assert with_installed_driver(named) == named
