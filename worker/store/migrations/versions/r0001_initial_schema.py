"""Initial schema: worksheets, variants, roster, uploads, batches, pages, field readings, reviews.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _worksheet_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["worksheet_id"], ["worksheets.worksheet_id"],
        name=op.f(f"fk_{table}_worksheet_id_worksheets"), ondelete="CASCADE",
    )


def _timestamp(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "worksheets",
        sa.Column("worksheet_id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("key", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("worksheet_id", name=op.f("pk_worksheets")),
    )
    op.create_table(
        "variants",
        sa.Column("worksheet_id", sa.String(length=32), nullable=False),
        sa.Column("variant_index", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=True),
        sa.Column("student_name", sa.Text(), nullable=True),
        sa.Column("pdf_pages", sa.JSON(), nullable=False),
        _worksheet_fk("variants"),
        sa.PrimaryKeyConstraint("worksheet_id", "variant_index", name=op.f("pk_variants")),
    )
    op.create_table(
        "students",
        sa.Column("worksheet_id", sa.String(length=32), nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        _worksheet_fk("students"),
        sa.PrimaryKeyConstraint("worksheet_id", "student_id", name=op.f("pk_students")),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stored_path", sa.Text(), nullable=False),
        _timestamp("uploaded_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
        sa.UniqueConstraint("sha256", name=op.f("uq_uploads_sha256")),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worksheet_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("graded", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        _timestamp("started_at"),
        _timestamp("finished_at", nullable=True),
        _worksheet_fk("batches"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    _create_pages()
    _create_field_readings()
    _create_reviews()


def _create_pages() -> None:
    op.create_table(
        "pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("worksheet_id", sa.String(length=32), nullable=True),
        sa.Column("page_index", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("variant", sa.Integer(), nullable=True),
        sa.Column("page_number", sa.Integer(), nullable=True),
        sa.Column("pdf_page", sa.Integer(), nullable=True),
        sa.Column("student_id", sa.String(length=64), nullable=True),
        sa.Column("student_name", sa.Text(), nullable=True),
        sa.Column("identity_source", sa.String(length=32), nullable=False),
        sa.Column("identity_review", sa.Boolean(), nullable=False),
        sa.Column("student_number_read", sa.String(length=64), nullable=True),
        sa.Column("image_path", sa.Text(), nullable=True),
        sa.Column("superseded_by_id", sa.Integer(), nullable=True),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["uploads.id"], name=op.f("fk_pages_upload_id_uploads")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_pages_batch_id_batches")
        ),
        _worksheet_fk("pages"),
        sa.ForeignKeyConstraint(
            ["superseded_by_id"], ["pages.id"], name=op.f("fk_pages_superseded_by_id_pages")
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"], ["pages.id"], name=op.f("fk_pages_duplicate_of_id_pages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pages")),
    )
    op.create_index(op.f("ix_pages_upload_id"), "pages", ["upload_id"])
    op.create_index(op.f("ix_pages_batch_id"), "pages", ["batch_id"])
    op.create_index("ix_pages_worksheet_id_sha256", "pages", ["worksheet_id", "sha256"])
    op.create_index(
        "ix_pages_worksheet_id_variant_page_number",
        "pages", ["worksheet_id", "variant", "page_number"],
    )


def _create_field_readings() -> None:
    op.create_table(
        "field_readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("field_id", sa.String(length=64), nullable=False),
        sa.Column("exercise_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("read", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("alternatives", sa.JSON(), nullable=False),
        sa.Column("expected", sa.Text(), nullable=False),
        sa.Column("expected_used", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("max_points", sa.Float(), nullable=False),
        sa.Column("carried_forward", sa.Boolean(), nullable=False),
        sa.Column("mistake", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reading_status", sa.String(length=32), nullable=False),
        sa.Column("bbox_mm", sa.JSON(), nullable=False),
        sa.Column("crop_path", sa.Text(), nullable=True),
        sa.Column("overridden", sa.Boolean(), nullable=False),
        sa.Column("reader_unsure", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["page_id"], ["pages.id"],
            name=op.f("fk_field_readings_page_id_pages"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_field_readings")),
        sa.UniqueConstraint(
            "page_id", "field_id", name=op.f("uq_field_readings_page_id_field_id")
        ),
    )


def _create_reviews() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("field_reading_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("who", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("changed", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["page_id"], ["pages.id"], name=op.f("fk_reviews_page_id_pages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["field_reading_id"], ["field_readings.id"],
            name=op.f("fk_reviews_field_reading_id_field_readings"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_page_id"), "reviews", ["page_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_reviews_page_id"), table_name="reviews")
    op.drop_table("reviews")
    op.drop_table("field_readings")
    for index in ("ix_pages_worksheet_id_variant_page_number", "ix_pages_worksheet_id_sha256"):
        op.drop_index(index, table_name="pages")
    op.drop_index(op.f("ix_pages_batch_id"), table_name="pages")
    op.drop_index(op.f("ix_pages_upload_id"), table_name="pages")
    op.drop_table("pages")
    for table in ("batches", "uploads", "students", "variants", "worksheets"):
        op.drop_table(table)
