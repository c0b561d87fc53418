"""The results store: worksheets, uploads, graded pages and teacher decisions, with history.

Every public method is one transaction.  Nothing is deleted: the same page uploaded again is
kept as a duplicate of the first, a retake supersedes the earlier page, and each teacher
decision is a review row with who, when, before and after.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Engine, delete, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from grader.results import ClassResults, ExerciseInfo, FieldResult, PageResult, StudentRef
from worker.store import convert
from worker.store.db import READ_ONLY_OPTION, lock_key
from worker.store.errors import RecordNotFound, StoreError
from worker.store.models import (
    Batch,
    FieldReading,
    Page,
    Review,
    Student,
    Upload,
    Variant,
    Worksheet,
    utcnow,
)

# grader.score provides it: re-score a page given the teacher's readings {field id: read}.
Regrade = Callable[[PageResult, dict[str, str | None]], PageResult]
ReviewKind = Literal["override", "accept", "student"]
UPLOADS_DIR = "uploads"
T = TypeVar("T")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class UploadSaved:
    upload_id: int
    sha256: str
    path: Path
    duplicate: bool  # these exact bytes were uploaded before; nothing new was written


@dataclass(frozen=True)
class PageSaved:
    page_id: int
    duplicate_of: int | None  # the earlier page with the same content; this one is not counted
    superseded: list[int]  # earlier pages of the same slot that this one replaces


@dataclass(frozen=True)
class StoredPage:
    page_id: int
    upload_id: int
    batch_id: int | None
    worksheet_id: str | None
    page_index: int
    created_at: datetime
    superseded_by: int | None
    duplicate_of: int | None
    page: PageResult

    @property
    def current(self) -> bool:
        return self.superseded_by is None and self.duplicate_of is None


@dataclass(frozen=True)
class ReviewRecord:
    review_id: int
    page_id: int
    field_id: str | None
    kind: str
    who: str
    reason: str
    before: dict[str, Any]
    after: dict[str, Any]
    changed: list[dict[str, Any]]
    created_at: datetime


@dataclass(frozen=True)
class BatchRecord:
    batch_id: int
    worksheet_id: str | None
    status: str
    message: str
    total: int | None
    done: int
    graded: int
    errors: int
    duplicates: int
    started_at: datetime
    finished_at: datetime | None


class Store:
    """The results store on one database and one data folder (for the original uploads)."""

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self._read_engine = engine.execution_options(**{READ_ONLY_OPTION: True})

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._read_engine, expire_on_commit=False) as session, session.begin():
            yield session

    # ---- worksheets and roster -------------------------------------------------------------

    def save_key(self, key: dict[str, Any]) -> None:
        """Store a key.json (again is fine: same worksheet id, same row) and its variants.

        Students named in the key's variants join the roster if they are not on it yet.
        """
        worksheet_id = str(key["worksheet_id"])
        with self._write() as s:
            row = s.get(Worksheet, worksheet_id)
            if row is None:
                row = Worksheet(worksheet_id=worksheet_id, title=str(key.get("title", "")), key=key)
                s.add(row)
            else:
                row.title, row.key, row.updated_at = str(key.get("title", "")), key, utcnow()
            s.flush()
            _sync_variants(s, worksheet_id, key.get("variants", []))

    def get_key(self, worksheet_id: str) -> dict[str, Any]:
        with self._read() as s:
            return _worksheet(s, worksheet_id).key

    def list_worksheets(self) -> list[tuple[str, str]]:
        """(worksheet id, title), newest first."""
        with self._read() as s:
            query = select(Worksheet.worksheet_id, Worksheet.title).order_by(
                Worksheet.created_at.desc(), Worksheet.worksheet_id
            )
            return [(wid, title) for wid, title in s.execute(query)]

    def save_roster(self, worksheet_id: str, students: Sequence[StudentRef]) -> None:
        """Replace the worksheet's roster with ``students``, in this order."""
        with self._write() as s:
            _worksheet(s, worksheet_id)
            s.execute(delete(Student).where(Student.worksheet_id == worksheet_id))
            s.add_all(
                Student(worksheet_id=worksheet_id, student_id=st.student_id, name=st.name,
                        ordinal=i)
                for i, st in enumerate(students)
            )

    def roster(self, worksheet_id: str) -> list[StudentRef]:
        with self._read() as s:
            _worksheet(s, worksheet_id)
            return _roster(s, worksheet_id)

    # ---- uploads -----------------------------------------------------------------------------

    def store_upload(self, source: Path | bytes, filename: str | None = None) -> UploadSaved:
        """Keep the original bytes under ``uploads/<sha[:2]>/<sha>.<ext>``; same bytes, same row."""
        if filename is None:
            if isinstance(source, bytes):
                raise ValueError("give the filename of uploaded bytes")
            filename = source.name
        sha, size = _hash(source)
        existing = self._upload_by_sha(sha)
        if existing is not None:
            self._ensure_kept(source, existing.stored_path)
            return _upload_saved(self.data_dir, existing, duplicate=True)
        relative = f"{UPLOADS_DIR}/{sha[:2]}/{sha}.{_extension(filename)}"
        self._ensure_kept(source, relative)
        row = Upload(filename=filename, sha256=sha, size_bytes=size, stored_path=relative)
        try:
            with self._write() as s:
                s.add(row)
        except IntegrityError:
            # Another process stored the same bytes a moment ago: that row is the upload.
            existing = self._upload_by_sha(sha)
            if existing is None:
                raise
            return _upload_saved(self.data_dir, existing, duplicate=True)
        return _upload_saved(self.data_dir, row, duplicate=False)

    def upload_path(self, upload_id: int) -> Path:
        with self._read() as s:
            return self.data_dir / _get(s, Upload, upload_id).stored_path

    def _upload_by_sha(self, sha: str) -> Upload | None:
        with self._read() as s:
            return s.scalars(select(Upload).where(Upload.sha256 == sha)).one_or_none()

    def _ensure_kept(self, source: Path | bytes, relative: str) -> None:
        """Write the bytes unless already there; a temporary name keeps half files invisible."""
        target = self.data_dir / relative
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(source, bytes):
                    out.write(source)
                else:
                    with source.open("rb") as src:
                        shutil.copyfileobj(src, out, _CHUNK)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    # ---- pages ------------------------------------------------------------------------------

    def add_page_result(self, upload_id: int, page: PageResult, *, worksheet_id: str | None,
                        page_index: int = 0, batch_id: int | None = None) -> PageSaved:
        """Store one page of an upload, graded or not, and work out what it replaces.

        The same content (sha256) already stored for this worksheet makes the new row a
        duplicate that is never counted.  Otherwise a graded page takes over its slot
        (worksheet, variant, page number): earlier current pages there are superseded by it.
        ``worksheet_id`` is the grading context; None for a page no key could be found for.
        The page's own ``duplicate_of`` is not used: the store decides by content hash.
        """
        with self._write() as s:
            _get(s, Upload, upload_id)
            if worksheet_id is not None:
                _worksheet(s, worksheet_id)
            batch = _get(s, Batch, batch_id) if batch_id is not None else None
            _lock_worksheet(s, worksheet_id)
            original = _original_with_content(s, worksheet_id, page.sha256)
            row = convert.page_row(page)
            row.upload_id, row.batch_id, row.worksheet_id = upload_id, batch_id, worksheet_id
            row.page_index = page_index
            row.duplicate_of_id = original.id if original is not None else None
            s.add(row)
            s.flush()
            superseded = [] if original is not None else _take_slot(s, row)
            if batch is not None:
                _count(batch, row)
            return PageSaved(page_id=row.id, duplicate_of=row.duplicate_of_id,
                             superseded=superseded)

    def get_page(self, page_id: int) -> StoredPage:
        with self._read() as s:
            return _stored(s, _page(s, page_id))

    def current_pages(self, worksheet_id: str) -> list[StoredPage]:
        """The pages that count now: neither duplicates nor replaced (error pages included)."""
        with self._read() as s:
            _worksheet(s, worksheet_id)
            return _current_pages(s, worksheet_id)

    def snapshot(self, worksheet_id: str, with_history: bool = False) -> ClassResults:
        """Everything that counts now for one worksheet, as the results model.

        ``with_history``: every page ever stored for it, oldest first, the ones that no longer
        count marked with the page they defer to (``duplicate_of``, ``replaced_by``): the
        outputs list every page a teacher uploaded, and count only the current ones.
        """
        with self._read() as s:
            sheet = _worksheet(s, worksheet_id)
            pages = (_pages_where(s, Page.worksheet_id == worksheet_id) if with_history
                     else _pages_where(s, *_is_current(worksheet_id)))
            return ClassResults(
                worksheet_id=worksheet_id,
                title=sheet.title,
                exercises=_exercises(sheet.key),
                pages=[_stored(s, row).page for row in pages],
                roster=_roster(s, worksheet_id),
            )

    def copy_students(self, worksheet_id: str, variant: int) -> list[StudentRef]:
        """The students whose written number identifies a current page of one printed copy
        (more than one: the copy was photocopied), in the order their pages were stored."""
        with self._read() as s:
            rows = _pages_where(s, *_is_current(worksheet_id), Page.variant == variant,
                                Page.identity_source == "student_number",
                                Page.student_id.is_not(None))
            students: dict[str, StudentRef] = {}
            for row in rows:
                assert row.student_id is not None
                students.setdefault(row.student_id,
                                    StudentRef(row.student_id, row.student_name or ""))
            return list(students.values())

    def page_history(self, worksheet_id: str, variant: int, page_number: int) -> list[StoredPage]:
        """Every page stored for one slot, oldest first, with duplicates and replaced ones."""
        with self._read() as s:
            rows = _pages_where(s, Page.worksheet_id == worksheet_id, Page.variant == variant,
                                Page.page_number == page_number)
            return [_stored(s, row) for row in rows]

    def batch_pages(self, batch_id: int) -> list[StoredPage]:
        """The pages a batch stored, in order (including those with no worksheet)."""
        with self._read() as s:
            _get(s, Batch, batch_id)
            return [_stored(s, row) for row in _pages_where(s, Page.batch_id == batch_id)]

    # ---- review -----------------------------------------------------------------------------

    def review_queue(self, worksheet_id: str) -> list[tuple[int, FieldResult]]:
        """(page id, field) for every field of a current graded page waiting for a teacher."""
        with self._read() as s:
            _worksheet(s, worksheet_id)
            query = (
                select(FieldReading)
                .join(Page, FieldReading.page_id == Page.id)
                .where(*_is_current(worksheet_id))
                .where(Page.status == "graded", FieldReading.verdict == "review")
                .order_by(Page.id, FieldReading.ordinal)
            )
            return [(f.page_id, convert.field_result(f)) for f in s.scalars(query)]

    def identity_queue(self, worksheet_id: str) -> list[StoredPage]:
        """Current pages whose student needs a teacher's confirmation."""
        return [p for p in self.current_pages(worksheet_id) if p.page.identity_review]

    def apply_override(self, page_id: int, field_id: str, new_read: str | None, who: str,
                       reason: str, regrade: Regrade) -> PageResult:
        """Set a field's reading to the teacher's value and re-score the page with it.

        ``regrade`` gets the page with every teacher reading pinned (overridden, confidence 1)
        and all of them as {field id: read}; its fields replace the stored ones.  The review
        row records the field before and after, and which other fields changed with it.
        """
        return self._decide(page_id, field_id, new_read, who, reason, regrade, "override")

    def accept_review(self, page_id: int, field_id: str, who: str, regrade: Regrade,
                      reason: str = "reading confirmed") -> PageResult:
        """The teacher confirms the reading as is: it is re-scored as if read with certainty."""
        return self._decide(page_id, field_id, None, who, reason, regrade, "accept")

    def _decide(self, page_id: int, field_id: str, new_read: str | None, who: str, reason: str,
                regrade: Regrade, kind: ReviewKind) -> PageResult:
        with self._write() as s:
            row = _decidable_page(s, page_id)
            _lock_worksheet(s, row.worksheet_id)
            target = _field(row, field_id)
            before = {f.field_id: convert.field_state(f) for f in row.fields}
            readings = _teacher_readings(s, page_id)
            readings[field_id] = target.read if kind == "accept" else new_read
            pinned = _pin(convert.page_result(row), readings)
            _store_regraded(row, regrade(pinned, dict(readings)), readings)
            s.add(Review(
                page_id=page_id, field_reading_id=target.id, kind=kind, who=who, reason=reason,
                before=before[field_id], after=convert.field_state(target),
                changed=_changes(before, row.fields, field_id), created_at=utcnow(),
            ))
            return convert.page_result(row)

    def set_page_student(self, page_id: int, student_id: str, who: str,
                         reason: str = "") -> PageResult:
        """Resolve an identity review: the page belongs to this student of the roster."""
        with self._write() as s:
            row = _decidable_page(s, page_id, graded_only=False)
            if row.worksheet_id is None:
                raise StoreError(f"page {page_id} belongs to no worksheet; grade it with its key")
            student = s.get(Student, (row.worksheet_id, student_id))
            if student is None:
                raise RecordNotFound(
                    f"student {student_id!r} is not on the roster of {row.worksheet_id}; "
                    "add them to the roster first"
                )
            before = _identity(row)
            row.student_id, row.student_name = student.student_id, student.name
            row.identity_review = False
            _settle_slot(s, row)
            s.add(Review(page_id=page_id, kind="student", who=who, reason=reason, before=before,
                         after=_identity(row), changed=[], created_at=utcnow()))
            return convert.page_result(row)

    def reviews(self, page_id: int) -> list[ReviewRecord]:
        """Every teacher decision on a page, oldest first."""
        with self._read() as s:
            _get(s, Page, page_id)
            query = (
                select(Review, FieldReading.field_id)
                .outerjoin(FieldReading, Review.field_reading_id == FieldReading.id)
                .where(Review.page_id == page_id)
                .order_by(Review.id)
            )
            return [_review_record(review, fid) for review, fid in s.execute(query)]

    # ---- batches ----------------------------------------------------------------------------

    def start_batch(self, worksheet_id: str | None, total: int | None = None) -> int:
        with self._write() as s:
            if worksheet_id is not None:
                _worksheet(s, worksheet_id)
            batch = Batch(worksheet_id=worksheet_id, status="running", message="", total=total,
                          done=0, graded=0, errors=0, duplicates=0, started_at=utcnow())
            s.add(batch)
            s.flush()
            return batch.id

    def update_batch(self, batch_id: int, *, total: int | None = None,
                     message: str | None = None) -> BatchRecord:
        """Set what is known later (how many pages a zip held) or a progress line."""
        with self._write() as s:
            batch = _get(s, Batch, batch_id)
            if total is not None:
                batch.total = total
            if message is not None:
                batch.message = message
            return _batch_record(batch)

    def finish_batch(self, batch_id: int, status: str = "finished",
                     message: str = "") -> BatchRecord:
        """Close a batch; ``status`` is ``finished`` or an error code if the batch itself failed."""
        with self._write() as s:
            batch = _get(s, Batch, batch_id)
            batch.status, batch.message, batch.finished_at = status, message, utcnow()
            return _batch_record(batch)

    def get_batch(self, batch_id: int) -> BatchRecord:
        with self._read() as s:
            return _batch_record(_get(s, Batch, batch_id))


# ---- helpers (each runs inside the caller's transaction) --------------------------------------


def _get(s: Session, model: type[T], ident: Any) -> T:
    row = s.get(model, ident)
    if row is None:
        name = getattr(model, "__tablename__", model.__name__).rstrip("s").replace("_", " ")
        raise RecordNotFound(f"no {name} with id {ident!r} in the store")
    return row


def _worksheet(s: Session, worksheet_id: str) -> Worksheet:
    row = s.get(Worksheet, worksheet_id)
    if row is None:
        raise RecordNotFound(
            f"worksheet {worksheet_id} is not in the store; save its key.json first"
        )
    return row


def _roster(s: Session, worksheet_id: str) -> list[StudentRef]:
    query = select(Student).where(Student.worksheet_id == worksheet_id).order_by(Student.ordinal)
    return [StudentRef(student_id=st.student_id, name=st.name) for st in s.scalars(query)]


def _sync_variants(s: Session, worksheet_id: str, variants: list[dict[str, Any]]) -> None:
    on_roster = {st.student_id for st in _roster(s, worksheet_id)}
    next_ordinal = len(on_roster)
    for entry in variants:
        student = entry.get("student") or {}
        sid = student.get("student_id")
        s.merge(Variant(worksheet_id=worksheet_id, variant_index=int(entry["index"]),
                        student_id=sid, student_name=student.get("name"),
                        pdf_pages=list(entry.get("pdf_pages", []))))
        if sid is not None and sid not in on_roster:
            s.add(Student(worksheet_id=worksheet_id, student_id=sid,
                          name=str(student.get("name", "")), ordinal=next_ordinal))
            on_roster.add(sid)
            next_ordinal += 1


def _exercises(key: dict[str, Any]) -> list[ExerciseInfo]:
    """Exercises in key order; variants share ids, so the first mention of each counts."""
    seen: dict[str, ExerciseInfo] = {}
    for variant in key.get("variants", []):
        for ex in variant.get("exercises", []):
            if ex["id"] not in seen:
                seen[ex["id"]] = ExerciseInfo(exercise_id=ex["id"], title=str(ex.get("title", "")),
                                              points=float(ex.get("points", 0.0)))
    return list(seen.values())


def _hash(source: Path | bytes) -> tuple[str, int]:
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest(), len(source)
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _extension(filename: str) -> str:
    """The file's extension, lower case, if it is a plain one; the bytes are what matter."""
    ext = Path(filename).suffix.lower().lstrip(".")
    return ext if re.fullmatch(r"[a-z0-9]{1,10}", ext) else "bin"


def _upload_saved(data_dir: Path, row: Upload, duplicate: bool) -> UploadSaved:
    return UploadSaved(upload_id=row.id, sha256=row.sha256, path=data_dir / row.stored_path,
                       duplicate=duplicate)


def _lock_worksheet(s: Session, worksheet_id: str | None) -> None:
    # Deciding "duplicate" or "retake" reads then writes; on PostgreSQL two workers could both
    # miss each other's page.  (SQLite's BEGIN IMMEDIATE already serialises writers.)
    if s.get_bind().dialect.name == "postgresql":
        key = lock_key(f"pages:{worksheet_id}")
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _same_worksheet(worksheet_id: str | None) -> Any:
    return Page.worksheet_id.is_(None) if worksheet_id is None else (
        Page.worksheet_id == worksheet_id
    )


def _original_with_content(s: Session, worksheet_id: str | None, sha: str) -> Page | None:
    if not sha:
        return None  # no content hash (unreadable file): nothing to compare
    query = (
        select(Page)
        .where(_same_worksheet(worksheet_id), Page.sha256 == sha, Page.duplicate_of_id.is_(None))
        .order_by(Page.id)
        .limit(1)
    )
    return s.scalars(query).first()


def _take_slot(s: Session, row: Page) -> list[int]:
    """A graded page replaces the current pages of its slot that failed, and the graded
    ones that hold the same student's work.

    The slot is the printed page (worksheet, variant, page number): a numbered copy
    photocopied for several students puts their pages in one slot, and none of them may
    replace another's.  A graded page whose student is not known replaces no graded page and
    is replaced by none; it waits in review until a teacher says whose it is.
    """
    if row.status != "graded" or row.variant is None or row.page_number is None:
        return []
    same_work = Page.status != "graded"
    if row.student_id is not None:
        same_work = or_(same_work, Page.student_id == row.student_id)
    replaced = _current_in_slot(s, row, Page.id != row.id, same_work)
    # Another student's answers on the same printed page (a sheet printed for one student
    # and photocopied for others) would otherwise pass for a retake and replace them.
    taken: list[int] = []
    for old in replaced:
        disagreement = _disagreement(row, old) if old.status == "graded" else None
        if disagreement is None:
            old.superseded_by_id = row.id
            taken.append(old.id)
        else:
            row.identity_review = True
            row.message = _disputed_retake_note(row, old, *disagreement)
    return taken


def _current_in_slot(s: Session, row: Page, *criteria: Any) -> list[Page]:
    """The current pages of ``row``'s printed slot (worksheet, variant, page number) that
    meet ``criteria``, oldest first."""
    query = select(Page).where(
        _same_worksheet(row.worksheet_id), Page.variant == row.variant,
        Page.page_number == row.page_number,
        Page.superseded_by_id.is_(None), Page.duplicate_of_id.is_(None), *criteria,
    )
    return list(s.scalars(query.order_by(Page.id)))


# A new photo of a page is only taken for a retake when its answers mostly agree with the
# earlier photo's: at least this many boxes read on both, more than half of them the same.
MIN_COMPARED_ANSWERS = 3


def _disagreement(new: Page, old: Page) -> tuple[int, int] | None:
    """(answers that differ, answers read on both) when two photos of a page mostly
    disagree, else None."""
    earlier = {f.field_id: f.read for f in old.fields}
    pairs = [(f.read, earlier.get(f.field_id)) for f in new.fields if f.read is not None]
    compared = [(a, b) for a, b in pairs if b is not None]
    differ = sum(a != b for a, b in compared)
    if len(compared) >= MIN_COMPARED_ANSWERS and 2 * differ > len(compared):
        return differ, len(compared)
    return None


def _disputed_retake_note(new: Page, old: Page, differ: int, compared: int) -> str:
    return (f"this photo and an earlier one of {old.student_name or old.student_id}'s page "
            f"{new.page_number} ({old.source}) disagree in {differ} of {compared} answers: "
            "if this is another student's sheet (photocopied?), say whose; if it is a retake, "
            "confirm the student and it replaces the earlier photo")


def _settle_slot(s: Session, row: Page) -> None:
    """After a teacher says whose a graded page is: of that student's current pages of its
    printed slot, the newest photo counts and the older ones are replaced by it."""
    if row.status != "graded" or row.variant is None or row.page_number is None:
        return
    same = _current_in_slot(s, row, Page.status == "graded", Page.student_id == row.student_id)
    for page in same[:-1]:
        page.superseded_by_id = same[-1].id


def _count(batch: Batch, row: Page) -> None:
    batch.done += 1
    if row.duplicate_of_id is not None:
        batch.duplicates += 1
    elif row.status == "graded":
        batch.graded += 1
    else:
        batch.errors += 1


def _pages_where(s: Session, *criteria: Any) -> list[Page]:
    """Pages matching ``criteria``, oldest first, with their fields loaded."""
    query = select(Page).options(selectinload(Page.fields)).where(*criteria).order_by(Page.id)
    return list(s.scalars(query))


def _is_current(worksheet_id: str) -> tuple[Any, ...]:
    return (
        Page.worksheet_id == worksheet_id,
        Page.superseded_by_id.is_(None),
        Page.duplicate_of_id.is_(None),
    )


def _current_pages(s: Session, worksheet_id: str) -> list[StoredPage]:
    return [_stored(s, row) for row in _pages_where(s, *_is_current(worksheet_id))]


def _page(s: Session, page_id: int) -> Page:
    rows = _pages_where(s, Page.id == page_id)
    if not rows:
        raise RecordNotFound(f"no page with id {page_id} in the store")
    return rows[0]


def _stored(s: Session, row: Page) -> StoredPage:
    def source_of(page_id: int | None) -> str | None:
        return None if page_id is None else _get(s, Page, page_id).source

    return StoredPage(
        page_id=row.id, upload_id=row.upload_id, batch_id=row.batch_id,
        worksheet_id=row.worksheet_id, page_index=row.page_index, created_at=row.created_at,
        superseded_by=row.superseded_by_id, duplicate_of=row.duplicate_of_id,
        page=convert.page_result(row, source_of(row.duplicate_of_id),
                                 source_of(row.superseded_by_id)),
    )


def _decidable_page(s: Session, page_id: int, graded_only: bool = True) -> Page:
    """A page a teacher may decide on: the current one of its slot, and graded if asked."""
    row = _page(s, page_id)
    if row.duplicate_of_id is not None:
        raise StoreError(
            f"page {page_id} is a duplicate of page {row.duplicate_of_id}; decide on that one"
        )
    if row.superseded_by_id is not None:
        raise StoreError(
            f"page {page_id} was replaced by a later photo (page {row.superseded_by_id}); "
            "decide on that one"
        )
    if graded_only and row.status != "graded":
        raise StoreError(f"page {page_id} was not graded ({row.status}); nothing to decide")
    return row


def _field(row: Page, field_id: str) -> FieldReading:
    for f in row.fields:
        if f.field_id == field_id:
            return f
    raise RecordNotFound(f"page {row.id} has no field {field_id!r}")


def _teacher_readings(s: Session, page_id: int) -> dict[str, str | None]:
    """The latest teacher reading of each field of a page, from its reviews."""
    query = (
        select(FieldReading.field_id, Review.after)
        .join(Review, Review.field_reading_id == FieldReading.id)
        .where(Review.page_id == page_id, Review.kind.in_(("override", "accept")))
        .order_by(Review.id)
    )
    return {fid: after.get("read") for fid, after in s.execute(query)}


def _pin(page: PageResult, readings: dict[str, str | None]) -> PageResult:
    """The page with the teacher's readings in place: certain and marked as overridden."""
    fields = [
        replace(f, read=readings[f.field_id], confidence=1.0, overridden=True,
                reader_unsure=False)
        if f.field_id in readings else f
        for f in page.fields
    ]
    return replace(page, fields=fields)


def _store_regraded(row: Page, result: PageResult,
                    readings: dict[str, str | None]) -> None:
    """Copy re-scored fields into the rows; teacher readings stay pinned whatever comes back."""
    by_id = {f.field_id: f for f in result.fields}
    if set(by_id) != {f.field_id for f in row.fields}:
        raise StoreError(
            f"re-grading page {row.id} returned fields {sorted(by_id)}, "
            f"not the page's {sorted(f.field_id for f in row.fields)}"
        )
    for f in row.fields:
        convert.update_field_row(f, by_id[f.field_id])
        if f.field_id in readings:
            f.read, f.confidence, f.overridden = readings[f.field_id], 1.0, True
            f.reader_unsure = False


def _changes(before: dict[str, dict[str, Any]], fields: list[FieldReading],
             decided: str) -> list[dict[str, Any]]:
    """The other fields whose outcome moved with a decision (error carried forward)."""
    keys = ("verdict", "points", "expected_used", "carried_forward")
    changed = []
    for f in fields:
        after = convert.field_state(f)
        old = before[f.field_id]
        if f.field_id != decided and any(old[k] != after[k] for k in keys):
            changed.append({"field_id": f.field_id, "before": old, "after": after})
    return changed


def _identity(row: Page) -> dict[str, Any]:
    return {"student_id": row.student_id, "name": row.student_name,
            "identity_source": row.identity_source, "identity_review": row.identity_review}


def _review_record(review: Review, field_id: str | None) -> ReviewRecord:
    return ReviewRecord(
        review_id=review.id, page_id=review.page_id, field_id=field_id, kind=review.kind,
        who=review.who, reason=review.reason, before=review.before, after=review.after,
        changed=review.changed, created_at=review.created_at,
    )


def _batch_record(batch: Batch) -> BatchRecord:
    return BatchRecord(
        batch_id=batch.id, worksheet_id=batch.worksheet_id, status=batch.status,
        message=batch.message, total=batch.total, done=batch.done, graded=batch.graded,
        errors=batch.errors, duplicates=batch.duplicates, started_at=batch.started_at,
        finished_at=batch.finished_at,
    )
