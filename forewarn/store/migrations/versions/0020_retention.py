"""retention: readings partitioned by day on PostgreSQL; indexes the retention job scans by

Revision ID: 0020
Revises: 0050

PostgreSQL: ``readings`` becomes a table partitioned by range on ``ts`` (the device time),
so that retention drops whole partitions instead of deleting rows. Every existing row is
copied into it. A partitioned table's unique constraints must contain the partition key:
``(device_id, metric, ts)`` already does (the ingest's ``ON CONFLICT`` target is
unchanged); the primary key becomes ``(id, ts)`` and ``id`` a bigint. Daily partitions
are created for the existing data of the last 400 days up to a week ahead; anything else
goes to ``readings_default`` (the retention job creates later partitions and deletes what
expires in the default one). The copy runs in the migration's transaction: plan the
disk space of a second copy of ``readings`` and the time (docs/retention.md).

SQLite: ``readings`` stays one table; an index on ``ts`` lets the job delete in batches.

Both: partial indexes on the rows whose personal data is still to be erased, and time
indexes on the event tables the job may trim.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0050"
branch_labels = None
depends_on = None

_BACK = timedelta(days=400)
_AHEAD = timedelta(days=7)
_COLUMNS = "id, device_id, metric, ts, value, code, received_at, stale"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _partition_readings(bind)
    else:
        op.create_index("ix_readings_ts", "readings", ["ts"])
    op.create_index(
        "ix_notifications_unscrubbed",
        "notifications",
        ["created_at"],
        sqlite_where=sa.text("address <> ''"),
        postgresql_where=sa.text("address <> ''"),
    )
    op.create_index(
        "ix_inbound_messages_unscrubbed",
        "inbound_messages",
        ["received_at"],
        sqlite_where=sa.text("body <> ''"),
        postgresql_where=sa.text("body <> ''"),
    )
    op.create_index("ix_provider_events_received_at", "provider_events", ["received_at"])
    op.create_index("ix_alert_events_at", "alert_events", ["at"])
    op.create_index("ix_ticket_events_at", "ticket_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_ticket_events_at", "ticket_events")
    op.drop_index("ix_alert_events_at", "alert_events")
    op.drop_index("ix_provider_events_received_at", "provider_events")
    op.drop_index("ix_inbound_messages_unscrubbed", "inbound_messages")
    op.drop_index("ix_notifications_unscrubbed", "notifications")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _unpartition_readings(bind)
    else:
        op.drop_index("ix_readings_ts", "readings")


def _partition_readings(bind: sa.Connection) -> None:
    sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence('readings', 'id')"))
    op.execute("ALTER TABLE readings RENAME TO readings_unpartitioned")
    op.execute(
        "ALTER TABLE readings_unpartitioned RENAME CONSTRAINT pk_readings TO pk_readings_old"
    )
    op.execute(
        "ALTER TABLE readings_unpartitioned "
        "RENAME CONSTRAINT uq_readings_device_metric_ts TO uq_readings_old"
    )
    if sequence:
        # Keep the ids counting on; dropping the old table would drop a sequence it owns.
        op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
        op.execute(f"ALTER SEQUENCE {sequence} AS bigint")
    else:
        sequence = "readings_id_seq"
        op.execute(f"CREATE SEQUENCE {sequence} AS bigint")
    op.execute(
        f"""
        CREATE TABLE readings (
            id bigint NOT NULL DEFAULT nextval('{sequence}'),
            device_id varchar(128) NOT NULL,
            metric varchar(64) NOT NULL,
            ts timestamptz NOT NULL,
            value double precision,
            code varchar(64),
            received_at timestamptz NOT NULL,
            stale boolean NOT NULL,
            CONSTRAINT pk_readings PRIMARY KEY (id, ts),
            CONSTRAINT uq_readings_device_metric_ts UNIQUE (device_id, metric, ts)
        ) PARTITION BY RANGE (ts)
        """
    )
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY readings.id")
    op.execute("CREATE TABLE readings_default PARTITION OF readings DEFAULT")
    now = datetime.now(UTC)
    oldest = bind.scalar(sa.text("SELECT min(ts) FROM readings_unpartitioned")) or now
    day = (
        max(oldest, now - _BACK).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    while day < now + _AHEAD:
        following = day + timedelta(days=1)
        op.execute(
            f"CREATE TABLE readings_p{day:%Y%m%d} PARTITION OF readings "
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{following.isoformat()}')"
        )
        day = following
    op.execute(f"INSERT INTO readings ({_COLUMNS}) SELECT {_COLUMNS} FROM readings_unpartitioned")
    op.execute("DROP TABLE readings_unpartitioned")


def _unpartition_readings(bind: sa.Connection) -> None:
    op.execute("ALTER TABLE readings RENAME TO readings_partitioned")
    op.execute("ALTER TABLE readings_partitioned RENAME CONSTRAINT pk_readings TO pk_readings_p")
    op.execute(
        "ALTER TABLE readings_partitioned "
        "RENAME CONSTRAINT uq_readings_device_metric_ts TO uq_readings_p"
    )
    sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence('readings_partitioned', 'id')"))
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
    op.execute(
        f"""
        CREATE TABLE readings (
            id integer NOT NULL DEFAULT nextval('{sequence}'),
            device_id varchar(128) NOT NULL,
            metric varchar(64) NOT NULL,
            ts timestamptz NOT NULL,
            value double precision,
            code varchar(64),
            received_at timestamptz NOT NULL,
            stale boolean NOT NULL,
            CONSTRAINT pk_readings PRIMARY KEY (id),
            CONSTRAINT uq_readings_device_metric_ts UNIQUE (device_id, metric, ts)
        )
        """
    )
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY readings.id")
    op.execute(f"INSERT INTO readings ({_COLUMNS}) SELECT {_COLUMNS} FROM readings_partitioned")
    op.execute("DROP TABLE readings_partitioned")  # and its partitions
