"""The readings' bulk write path for ingest: SQLite and PostgreSQL side by side.

Statements go to the driver directly, not through SQLAlchemy's type system: per-value bind
processing (UtcDateTime, SQLite's DATETIME formatting) and result processing were a third
of the ingest time in the benchmark (docs/benchmarks.md). They name readings/devices
columns from :mod:`forewarn.store.models`; the ingest tests read the rows back through the
ORM, so a drift fails there.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from forewarn.store.models import postgresql_quoted, postgresql_text_array, sqlite_time
from forewarn.telemetry.sample import Sample


def insert_samples(connection: Connection, samples: list[Sample]) -> list[Sample]:
    """Insert ``samples`` into readings (a duplicate device/metric/ts is stored once) and
    move their devices' last-received and last-seen times forward; returns the samples
    that were new, for the monitors."""
    if connection.dialect.name == "postgresql":
        new = _insert_postgresql(connection, samples)
    else:
        new = _insert_sqlite(connection, samples)
    _touch_devices(connection, new)
    return new


_SQLITE_INSERT = (
    "INSERT INTO readings (device_id, metric, ts, value, code, received_at, stale) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, metric, ts) DO NOTHING"
)
_SQLITE_INSERTED_AFTER = "SELECT device_id, metric, ts FROM readings WHERE id > ?"
_SQLITE_TOUCH = (
    "UPDATE devices SET last_received_at = ?2, last_seen_at = CASE WHEN ?3 IS NOT NULL "
    "AND (last_seen_at IS NULL OR last_seen_at < ?3) THEN ?3 ELSE last_seen_at END "
    "WHERE id = ?1"
)
_POSTGRESQL_INSERT = (
    "INSERT INTO readings (device_id, metric, ts, value, code, received_at, stale) "
    "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::timestamptz[], %s::float8[], "
    "%s::varchar[], %s::timestamptz[], %s::bool[]) "
    "ON CONFLICT (device_id, metric, ts) DO NOTHING"
)
_POSTGRESQL_LOCK_DEVICES = (
    "SELECT id FROM devices WHERE id = ANY(%s::varchar[]) ORDER BY id FOR UPDATE"
)
_POSTGRESQL_TOUCH = (
    "UPDATE devices AS d SET last_received_at = u.received, last_seen_at = CASE "
    "WHEN u.seen IS NOT NULL AND (d.last_seen_at IS NULL OR d.last_seen_at < u.seen) "
    "THEN u.seen ELSE d.last_seen_at END "
    "FROM unnest(%s::varchar[], %s::timestamptz[], %s::timestamptz[]) AS u(id, received, seen) "
    "WHERE d.id = u.id"
)


_sqlite_time = sqlite_time


def _insert_sqlite(connection: Connection, samples: list[Sample]) -> list[Sample]:
    # SQLite cannot RETURNING from executemany, and a multi-row VALUES ... RETURNING
    # measured 2.4x slower than executemany. Writers are serialised (BEGIN IMMEDIATE),
    # so the rows this batch inserted are exactly those with an id above the largest
    # one before it; they only need looking up when some rows were duplicates.
    rows: list[tuple[object, ...]] = []
    kept: list[Sample] = []
    keys: list[tuple[str, str, str]] = []
    unique: set[tuple[str, str, str]] = set()
    last_ts: datetime | None = None
    last_received: datetime | None = None
    ts_text = received_text = ""
    for sample in samples:
        # The samples of one message share their datetimes: format each once.
        if sample.ts is not last_ts:
            last_ts, ts_text = sample.ts, _sqlite_time(sample.ts)
        if sample.received_at is not last_received:
            last_received, received_text = sample.received_at, _sqlite_time(sample.received_at)
        key = (sample.device_id, sample.metric, ts_text)
        if key in unique:
            continue
        unique.add(key)
        keys.append(key)
        kept.append(sample)
        rows.append(
            (
                sample.device_id,
                sample.metric,
                ts_text,
                sample.value,
                sample.code,
                received_text,
                sample.stale,
            )
        )
    # In key order, consecutive rows land on the same index pages: measured 13-30% less
    # insert and commit time with 1 000 devices interleaved in a batch.
    rows.sort()
    before = connection.exec_driver_sql("SELECT max(id) FROM readings").scalar() or 0
    inserted = connection.exec_driver_sql(_SQLITE_INSERT, rows).rowcount
    if inserted == len(rows):
        return kept
    new_keys = set(map(tuple, connection.exec_driver_sql(_SQLITE_INSERTED_AFTER, (before,))))
    return [sample for sample, key in zip(kept, keys, strict=True) if key in new_keys]


def _insert_postgresql(connection: Connection, samples: list[Sample]) -> list[Sample]:
    # One statement per batch, unnest() of column arrays: one round trip and one plan
    # however large the batch. Usually every row is new, which rowcount tells without
    # RETURNING; when some were not (a redelivery), the insert is redone with RETURNING
    # to learn which, correctly even while other ingesters insert at the same time.
    unique: dict[tuple[str, str, datetime], Sample] = {}
    for sample in samples:
        unique.setdefault((sample.device_id, sample.metric, sample.ts), sample)
    # In index key order, as for SQLite (fewer index pages visited per row).
    kept = sorted(unique.values(), key=_reading_key)
    columns = _postgresql_columns(kept)
    connection.exec_driver_sql("SAVEPOINT forewarn_readings")
    if connection.exec_driver_sql(_POSTGRESQL_INSERT, columns).rowcount == len(kept):
        connection.exec_driver_sql("RELEASE SAVEPOINT forewarn_readings")
        return list(unique.values())  # arrival order, for the hook
    connection.exec_driver_sql("ROLLBACK TO SAVEPOINT forewarn_readings")
    returning = _POSTGRESQL_INSERT + " RETURNING device_id, metric, ts"
    new_keys = set(map(tuple, connection.exec_driver_sql(returning, columns)))
    return [sample for key, sample in unique.items() if key in new_keys]


def _postgresql_columns(samples: list[Sample]) -> tuple[str, ...]:
    """The seven column arrays as PostgreSQL array literals.

    psycopg adapts a Python list element by element in Python: the insert cost 25 µs of
    CPU per message that way, 5 µs with literals joined here (docs/benchmarks.md).
    """
    times: list[str] = []
    received: list[str] = []
    last_ts: datetime | None = None
    last_received: datetime | None = None
    ts_text = received_text = ""
    for sample in samples:
        if sample.ts is not last_ts:
            last_ts, ts_text = sample.ts, sample.ts.isoformat()
        if sample.received_at is not last_received:
            last_received, received_text = sample.received_at, sample.received_at.isoformat()
        times.append(ts_text)
        received.append(received_text)
    return (
        _text_array([s.device_id for s in samples]),
        _text_array([s.metric for s in samples]),
        "{" + ",".join(times) + "}",
        "{" + ",".join(["NULL" if s.value is None else repr(s.value) for s in samples]) + "}",
        "{" + ",".join([_quoted(s.code) for s in samples]) + "}",
        "{" + ",".join(received) + "}",
        "{" + ",".join(["t" if s.stale else "f" for s in samples]) + "}",
    )


_text_array = postgresql_text_array
_quoted = postgresql_quoted


def _reading_key(sample: Sample) -> tuple[str, str, datetime]:
    return sample.device_id, sample.metric, sample.ts


def _touch_devices(connection: Connection, new: list[Sample]) -> None:
    """last_received_at from every new sample, last_seen_at (forward only) from fresh ones."""
    received: dict[str, datetime] = {}
    seen: dict[str, datetime] = {}
    for sample in new:
        device = sample.device_id
        if device not in received or received[device] < sample.received_at:
            received[device] = sample.received_at
        if not sample.stale and (device not in seen or seen[device] < sample.ts):
            seen[device] = sample.ts
    if not received:
        return
    # Sorted ids: concurrent ingesters (shared subscriptions spread one device's messages
    # over all of them) lock device rows in the same order, so they cannot deadlock.
    devices = sorted(received)
    if connection.dialect.name == "postgresql":
        ids = _text_array(devices)
        connection.exec_driver_sql(_POSTGRESQL_LOCK_DEVICES, (ids,))
        connection.exec_driver_sql(
            _POSTGRESQL_TOUCH,
            (
                ids,
                "{" + ",".join([received[d].isoformat() for d in devices]) + "}",
                "{"
                + ",".join([seen[d].isoformat() if d in seen else "NULL" for d in devices])
                + "}",
            ),
        )
    else:
        connection.exec_driver_sql(
            _SQLITE_TOUCH,
            [
                (d, _sqlite_time(received[d]), _sqlite_time(seen[d]) if d in seen else None)
                for d in devices
            ],
        )
