"""Readings, latest readings and device timers in SQL (:class:`forewarn.ports.ReadingStore`).

The bulk paths for SQLite and PostgreSQL sit side by side here: statements handed to the
driver directly, because SQLAlchemy's per-value bind processing was most of their cost.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from forewarn.config.schema import OfflineMonitor, PeerMonitor, Selector
from forewarn.monitors.trends import Average, PeerReading
from forewarn.ports import Latest
from forewarn.store.alerting import LatestReading
from forewarn.store.models import (
    Alert,
    Device,
    Reading,
    postgresql_quoted,
    postgresql_text_array,
    sqlite_time,
)
from forewarn.store.peers import peer_readings
from forewarn.telemetry.sample import Sample

_CHUNK = 500
"""Ids per ``IN (...)`` list (well under every driver's parameter limit)."""
_SQLITE_UPSERT_LATEST = (
    "INSERT INTO latest_readings (device_id, metric, ts, value, code) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (device_id, metric) DO UPDATE SET ts = excluded.ts, value = excluded.value, "
    "code = excluded.code WHERE latest_readings.ts < excluded.ts"
)
_POSTGRESQL_UPSERT_LATEST = (
    "INSERT INTO latest_readings (device_id, metric, ts, value, code) "
    "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::timestamptz[], %s::float8[], "
    "%s::varchar[]) "
    "ON CONFLICT (device_id, metric) DO UPDATE SET ts = excluded.ts, value = excluded.value, "
    "code = excluded.code WHERE latest_readings.ts < excluded.ts"
)


class SqlReadingStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add_readings(self, samples: Sequence[Sample], now: datetime) -> int:
        if not samples:
            return 0
        rows = [
            {
                "device_id": s.device_id,
                "metric": s.metric,
                "ts": s.ts,
                "value": s.value,
                "code": s.code,
                "received_at": s.received_at,
                "stale": s.stale,
            }
            for s in {(s.device_id, s.metric, s.ts): s for s in samples}.values()
        ]
        insert = (
            sqlite_insert
            if self._session.get_bind().dialect.name == "sqlite"
            else postgresql_insert
        )
        added = 0
        for start in range(0, len(rows), _CHUNK):
            statement = (
                insert(Reading)
                .on_conflict_do_nothing(index_elements=["device_id", "metric", "ts"])
                .returning(Reading.id)
            )
            added += len(self._session.execute(statement, rows[start : start + _CHUNK]).all())
        seen: dict[str, datetime] = {}
        for s in samples:
            if not s.stale and (s.device_id not in seen or seen[s.device_id] < s.ts):
                seen[s.device_id] = s.ts
        for device_id, ts in sorted(seen.items()):  # one lock order for every worker
            self._session.execute(
                update(Device)
                .where(
                    Device.id == device_id,
                    or_(Device.last_seen_at.is_(None), Device.last_seen_at < ts),
                )
                .values(last_seen_at=ts, last_received_at=now)
            )
        return added

    def mark_late(self, samples: Sequence[Sample]) -> None:
        for s in sorted(samples, key=lambda s: (s.device_id, s.metric, s.ts)):
            self._session.execute(
                update(Reading)
                .where(
                    Reading.device_id == s.device_id, Reading.metric == s.metric, Reading.ts == s.ts
                )
                .values(late=True)
                .execution_options(synchronize_session=False)
            )

    def record_latest(self, samples: Sequence[Sample]) -> None:
        newest: dict[tuple[str, str], Sample] = {}
        for sample in samples:
            if sample.stale:
                continue
            key = (sample.device_id, sample.metric)
            if key not in newest or newest[key].ts < sample.ts:
                newest[key] = sample
        if not newest:
            return
        ordered = sorted(newest.items())  # one lock order for every worker
        connection = self._session.connection()
        if connection.dialect.name == "sqlite":
            texts: dict[datetime, str] = {}  # the samples of one message share their ts
            rows = []
            for (d, m), s in ordered:
                text = texts.get(s.ts)
                if text is None:
                    text = texts[s.ts] = sqlite_time(s.ts)
                rows.append((d, m, text, s.value, s.code))
            connection.exec_driver_sql(_SQLITE_UPSERT_LATEST, rows)
            return
        # One statement of column arrays: executemany through SQLAlchemy and psycopg cost
        # ~35 µs per row in per-value adaptation.
        connection.exec_driver_sql(
            _POSTGRESQL_UPSERT_LATEST,
            (
                postgresql_text_array([d for (d, _), _ in ordered]),
                postgresql_text_array([m for (_, m), _ in ordered]),
                "{" + ",".join([s.ts.isoformat() for _, s in ordered]) + "}",
                "{"
                + ",".join(["NULL" if s.value is None else repr(s.value) for _, s in ordered])
                + "}",
                "{" + ",".join([postgresql_quoted(s.code) for _, s in ordered]) + "}",
            ),
        )

    def latest(self, devices: Collection[str], metric: str) -> dict[str, Latest]:
        found: dict[str, Latest] = {}
        ordered = sorted(devices)
        for start in range(0, len(ordered), _CHUNK):
            rows = self._session.execute(
                select(
                    LatestReading.device_id,
                    LatestReading.ts,
                    LatestReading.value,
                    LatestReading.code,
                ).where(
                    LatestReading.metric == metric,
                    LatestReading.device_id.in_(ordered[start : start + _CHUNK]),
                )
            )
            for device, ts, value, code in rows:
                found[device] = Latest(ts, value, code)
        return found

    def history(
        self, device: str, metric: str, since: datetime, until: datetime
    ) -> list[tuple[datetime, float]]:
        rows = self._session.execute(
            select(Reading.ts, Reading.value)
            .where(
                Reading.device_id == device,
                Reading.metric == metric,
                Reading.ts >= since,
                Reading.ts <= until,
                Reading.stale.is_(False),
                Reading.value.is_not(None),
            )
            .order_by(Reading.ts)
        ).all()
        return [(ts, v) for ts, v in rows if v is not None]

    def averages(
        self, device: str, metric: str, split: datetime, since: datetime, until: datetime
    ) -> tuple[Average, Average]:
        # Aggregated by the database in one range scan of the readings index (a day of
        # readings per sample would otherwise travel to Python).
        recent = Reading.ts > split
        row = self._session.execute(
            select(
                func.avg(case((recent, Reading.value))),
                func.count(case((recent, Reading.value))),
                func.avg(case((~recent, Reading.value))),
                func.count(case((~recent, Reading.value))),
                func.min(case((~recent, Reading.ts))),
            ).where(
                Reading.device_id == device,
                Reading.metric == metric,
                Reading.ts > since,
                Reading.ts <= until,
                Reading.stale.is_(False),
                Reading.value.is_not(None),
            )
        ).one()
        recent_mean, recent_count, base_mean, base_count, first = row
        return (
            Average(None if recent_mean is None else float(recent_mean), int(recent_count or 0)),
            Average(
                None if base_mean is None else float(base_mean),
                int(base_count or 0),
                _aware(first),
            ),
        )

    def last_heard(self, rule: OfflineMonitor) -> dict[str, datetime]:
        query, _ = _heard(rule)
        rows = self._session.execute(query.where(*scope_clauses(rule.applies_to)))
        return {device: _aware_required(seen) for device, seen in rows}

    def offline_changes(self, rule: OfflineMonitor, cutoff: datetime) -> list[tuple[str, datetime]]:
        query, last_seen = _heard(rule)
        # Set-based: one query per direction, never a loop over every device. The open
        # alerts are joined in SQL too.
        open_fp = literal(f"{rule.id}:") + Device.id
        has_open = exists().where(
            Alert.open_fingerprint == open_fp,
            or_(Alert.condition.is_(None), Alert.condition != "clear"),
        )
        scope = scope_clauses(rule.applies_to)
        if rule.metric is None:
            # The steady sweep must cost less than reading the table: "silent" is a range
            # on the indexed last_seen_at (devices never heard are few), and "back" starts
            # from the rule's open alerts, not from every device.
            silent_now = or_(
                Device.last_seen_at <= cutoff,
                and_(Device.last_seen_at.is_(None), Device.registered_at <= cutoff),
            )
            silent = self._session.execute(query.where(silent_now, ~has_open, *scope)).all()
            back = self._session.execute(
                query.join(Alert, Alert.subject == Device.id).where(
                    Alert.open_fingerprint.is_not(None),
                    Alert.rule_id == rule.id,
                    or_(Alert.condition.is_(None), Alert.condition != "clear"),
                    last_seen > cutoff,
                    *scope,
                )
            ).all()
        else:
            silent = self._session.execute(
                query.where(last_seen <= cutoff, ~has_open, *scope)
            ).all()
            back = self._session.execute(query.where(last_seen > cutoff, has_open, *scope)).all()
        return [(device, _aware_required(seen)) for device, seen in [*silent, *back]]

    def peer_readings(
        self, rule: PeerMonitor, now: datetime, include: Collection[str]
    ) -> dict[str, PeerReading]:
        return peer_readings(
            self._session, rule, now, sorted(include), scope_clauses(rule.applies_to)
        )


def _heard(rule: OfflineMonitor) -> tuple[Select[str, datetime], ColumnElement[datetime]]:
    """Devices with when they were last heard under ``rule`` (the query, the column)."""
    if rule.metric is None:
        last_seen = func.coalesce(Device.last_seen_at, Device.registered_at)
        return select(Device.id, last_seen), last_seen
    last_seen = func.coalesce(LatestReading.ts, Device.registered_at)
    query = select(Device.id, last_seen).outerjoin(
        LatestReading,
        and_(LatestReading.device_id == Device.id, LatestReading.metric == rule.metric),
    )
    return query, last_seen


def scope_clauses(selector: Selector) -> list[ColumnElement[bool]]:
    """A rule's ``applies_to`` as conditions on ``devices``."""
    clauses: list[ColumnElement[bool]] = []
    if selector.kinds:
        clauses.append(Device.kind.in_(selector.kinds))
    if selector.models:
        clauses.append(Device.model.in_(selector.models))
    if selector.sites:
        clauses.append(Device.site_id.in_(selector.sites))
    if selector.devices:
        clauses.append(Device.id.in_(selector.devices))
    return clauses


def _aware(moment: datetime | str | None) -> datetime | None:
    # SQLite hands back aggregates of timestamps as naive datetimes (or text).
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _aware_required(moment: datetime | str) -> datetime:
    aware = _aware(moment)
    assert aware is not None
    return aware
