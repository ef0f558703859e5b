"""readings.late: arrived beyond the lateness bound, stored but never judged

Revision ID: 0030
Revises: 0060
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0060"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On PostgreSQL readings is partitioned by day (0020): the column reaches every
    # partition; with a constant default no row is rewritten.
    op.add_column(
        "readings",
        sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("readings", "late")
