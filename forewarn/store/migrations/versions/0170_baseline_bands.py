"""baseline_bands, baseline_progress: what the learned-baseline rules have learned

Revision ID: 0170
Revises: 0030
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0170"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "baseline_bands",
        sa.Column("rule_key", sa.String(length=160), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("center", sa.Float(), nullable=False),
        sa.Column("spread", sa.Float(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule_key", "device_id", "slot", name=op.f("pk_baseline_bands")),
    )
    op.create_table(
        "baseline_progress",
        sa.Column("rule_key", sa.String(length=160), nullable=False),
        sa.Column("learned_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule_key", name=op.f("pk_baseline_progress")),
    )


def downgrade() -> None:
    op.drop_table("baseline_progress")
    op.drop_table("baseline_bands")
