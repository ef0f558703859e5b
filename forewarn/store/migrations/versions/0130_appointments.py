"""appointments: proposed and confirmed visit windows; awaiting-parts return visits

Revision ID: 0130
Revises: 0110
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0130"
down_revision = "0110"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("technician_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("option", sa.Integer(), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_via", sa.String(length=16), nullable=True),
        sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("return_visit", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_appointments_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
    )
    op.create_index("ix_appointments_ticket_id", "appointments", ["ticket_id"])
    op.create_index(
        "ix_appointments_technician_window", "appointments", ["technician_id", "start_at"]
    )
    op.create_index("ix_appointments_customer_status", "appointments", ["customer_id", "status"])
    op.create_index("ix_appointments_remind_at", "appointments", ["remind_at"])


def downgrade() -> None:
    op.drop_index("ix_appointments_remind_at", table_name="appointments")
    op.drop_index("ix_appointments_customer_status", table_name="appointments")
    op.drop_index("ix_appointments_technician_window", table_name="appointments")
    op.drop_index("ix_appointments_ticket_id", table_name="appointments")
    op.drop_table("appointments")
