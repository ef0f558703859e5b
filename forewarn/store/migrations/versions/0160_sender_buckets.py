"""sender_buckets: the token bucket of each sending number or API key, shared by senders

Revision ID: 0160
Revises: 0140
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0160"
down_revision = "0140"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sender_buckets",
        sa.Column("sender", sa.String(length=160), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sender", name=op.f("pk_sender_buckets")),
    )


def downgrade() -> None:
    op.drop_table("sender_buckets")
