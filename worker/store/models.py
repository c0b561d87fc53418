"""SQLAlchemy models of the results store.

The schema is owned by the Alembic revisions in ``migrations/versions``; a test checks that
these models and the migrated database agree.  Changing a model therefore means adding a
revision (``python -m worker.store revision -m "..." --url ...`` autogenerates one).

Rows are never deleted: a retake supersedes the earlier page, a re-upload is marked as a
duplicate, and every teacher decision is a row in ``reviews`` with its before and after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Explicit constraint names, so that later revisions (and SQLite batch migrations) can refer
# to them by name on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite keeps no zone, so values come back naive; they were written as UTC, so say so.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store only keeps timezone-aware timestamps")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Worksheet(Base):
    """One key.json: everything printed for one class set."""

    __tablename__ = "worksheets"

    worksheet_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    key: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Variant(Base):
    """One printed variant of a worksheet (a student's own numbers, or a numbered copy)."""

    __tablename__ = "variants"

    worksheet_id: Mapped[str] = mapped_column(
        ForeignKey("worksheets.worksheet_id", ondelete="CASCADE"), primary_key=True
    )
    variant_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    student_id: Mapped[str | None] = mapped_column(String(64))
    student_name: Mapped[str | None] = mapped_column(Text)
    pdf_pages: Mapped[list[int]] = mapped_column(JSON)


class Student(Base):
    """The roster of one worksheet, in the teacher's order."""

    __tablename__ = "students"

    worksheet_id: Mapped[str] = mapped_column(
        ForeignKey("worksheets.worksheet_id", ondelete="CASCADE"), primary_key=True
    )
    student_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    ordinal: Mapped[int] = mapped_column(Integer)


class Upload(Base):
    """One uploaded file, kept byte for byte under the data folder; the same bytes are one row."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # Relative to the data folder (POSIX separators), so the folder can be moved.
    stored_path: Mapped[str] = mapped_column(Text)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Batch(Base):
    """One grading job, with counts the service layer reports as progress."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worksheet_id: Mapped[str | None] = mapped_column(
        ForeignKey("worksheets.worksheet_id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    total: Mapped[int | None] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    graded: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Page(Base):
    """One input page: graded, or an error code; superseded and duplicate pages stay as history."""

    __tablename__ = "pages"
    __table_args__ = (
        Index("ix_pages_worksheet_id_sha256", "worksheet_id", "sha256"),
        Index(
            "ix_pages_worksheet_id_variant_page_number", "worksheet_id", "variant", "page_number"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id"), index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)
    worksheet_id: Mapped[str | None] = mapped_column(
        ForeignKey("worksheets.worksheet_id", ondelete="CASCADE")
    )
    page_index: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    variant: Mapped[int | None] = mapped_column(Integer)
    page_number: Mapped[int | None] = mapped_column(Integer)
    pdf_page: Mapped[int | None] = mapped_column(Integer)
    student_id: Mapped[str | None] = mapped_column(String(64))
    student_name: Mapped[str | None] = mapped_column(Text)
    identity_source: Mapped[str] = mapped_column(String(32))
    identity_review: Mapped[bool] = mapped_column(Boolean)
    student_number_read: Mapped[str | None] = mapped_column(String(64))
    image_path: Mapped[str | None] = mapped_column(Text)
    px_per_mm: Mapped[float | None] = mapped_column(Float)
    blur_mm: Mapped[float | None] = mapped_column(Float)
    review_threshold: Mapped[float | None] = mapped_column(Float)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("pages.id"))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("pages.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    fields: Mapped[list[FieldReading]] = relationship(
        back_populates="page", order_by="FieldReading.ordinal", cascade="all, delete-orphan"
    )


class FieldReading(Base):
    """One answer box of one page: what was read, and the verdict it has now."""

    __tablename__ = "field_readings"
    __table_args__ = (UniqueConstraint("page_id", "field_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    field_id: Mapped[str] = mapped_column(String(64))
    exercise_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(Text)
    read: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    alternatives: Mapped[list[list[Any]]] = mapped_column(JSON)
    expected: Mapped[str] = mapped_column(Text)
    expected_used: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String(16))
    points: Mapped[float] = mapped_column(Float)
    max_points: Mapped[float] = mapped_column(Float)
    carried_forward: Mapped[bool] = mapped_column(Boolean)
    mistake: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    reading_status: Mapped[str] = mapped_column(String(32))
    bbox_mm: Mapped[list[float]] = mapped_column(JSON)
    crop_path: Mapped[str | None] = mapped_column(Text)
    overridden: Mapped[bool] = mapped_column(Boolean)
    reader_unsure: Mapped[bool] = mapped_column(Boolean)

    page: Mapped[Page] = relationship(back_populates="fields")


class Review(Base):
    """One teacher decision: who, when, what it was before and after, and why.

    ``kind`` is ``override`` (a new reading), ``accept`` (the reading confirmed as is) or
    ``student`` (the page's student set by hand).  ``changed`` lists the other fields whose
    verdict or points moved because of it (error carried forward).
    """

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    field_reading_id: Mapped[int | None] = mapped_column(
        ForeignKey("field_readings.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))
    who: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
