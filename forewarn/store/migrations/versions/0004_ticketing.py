"""ticketing: lifecycle, escalation, recurrence, closure codes; technician shifts and radius

Revision ID: 0004
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("technicians", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shifts", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("days_off", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("radius_km", sa.Float(), nullable=True))

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("severity", sa.String(length=16), nullable=False, server_default="major")
        )
        batch_op.add_column(sa.Column("rule_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("closure_code", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("resolution_note", sa.Text(), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("repeat_visits", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("previous_ticket_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("ack_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("escalation_step", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("passed_over", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_tickets_rule_id"), ["rule_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tickets_ack_due_at"), ["ack_due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_ack_due_at"))
        batch_op.drop_index(batch_op.f("ix_tickets_rule_id"))
        for column in (
            "cleared_at",
            "resolved_at",
            "accepted_at",
            "passed_over",
            "escalation_step",
            "ack_due_at",
            "previous_ticket_id",
            "repeat_visits",
            "resolution_note",
            "closure_code",
            "rule_id",
            "severity",
        ):
            batch_op.drop_column(column)

    with op.batch_alter_table("technicians", schema=None) as batch_op:
        for column in ("radius_km", "days_off", "shifts"):
            batch_op.drop_column(column)
