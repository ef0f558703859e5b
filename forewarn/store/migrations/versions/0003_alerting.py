"""alerting: lifecycle columns on alerts, latest readings, silences

Revision ID: 0003
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_ts", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("breaches", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("clearing_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("condition", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("condition_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("suppressed_by", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=128), nullable=True))
    # Alerts announced before this revision were all handed to ticketing when they fired.
    op.execute("UPDATE alerts SET notified_at = firing_since WHERE firing_since IS NOT NULL")
    op.create_table(
        "latest_readings",
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("device_id", "metric", name=op.f("pk_latest_readings")),
    )
    op.create_index("ix_latest_readings_metric_ts", "latest_readings", ["metric", "ts"])
    # Seed from the history so absence and peer checks start from what is already known.
    op.execute(
        "INSERT INTO latest_readings (device_id, metric, ts, value, code) "
        "SELECT r.device_id, r.metric, r.ts, r.value, r.code FROM readings r "
        "JOIN (SELECT device_id, metric, max(ts) AS ts FROM readings WHERE NOT stale "
        "GROUP BY device_id, metric) m "
        "ON m.device_id = r.device_id AND m.metric = r.metric AND m.ts = r.ts"
    )
    op.create_table(
        "silences",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("starts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends", sa.DateTime(timezone=True), nullable=True),
        sa.Column("days", sa.JSON(), nullable=False),
        sa.Column("hours", sa.String(length=16), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_silences_ends"), ["ends"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_silences_ends"))
    op.drop_table("silences")
    op.drop_index("ix_latest_readings_metric_ts", table_name="latest_readings")
    op.drop_table("latest_readings")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        for column in (
            "acknowledged_by",
            "acknowledged_at",
            "suppressed_by",
            "notified_at",
            "condition_since",
            "condition",
            "clearing_since",
            "breaches",
            "last_ts",
        ):
            batch_op.drop_column(column)
