"""Pages record what their photo was measured as and the reader threshold it was held to.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = ("px_per_mm", "blur_mm", "review_threshold")


def upgrade() -> None:
    # Pages graded before this revision keep NULL: their figures were never measured.
    with op.batch_alter_table("pages") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pages") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
