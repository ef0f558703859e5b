"""Alerts, alert events and API silences in SQL (:class:`forewarn.ports.AlertStore`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forewarn.config.schema import SilenceSettings
from forewarn.monitors.silences import WEEKDAYS, Silence
from forewarn.ports import AlertEventRecord, AlertExists, AlertRecord
from forewarn.store.alerting import Silence as SilenceRow
from forewarn.store.models import Alert, AlertEvent, Ticket
from forewarn.store.storm import reserve_ids

_CHUNK = 500
"""Ids per ``IN (...)`` list (well under every driver's parameter limit)."""
_FIELDS = [f.name for f in fields(AlertRecord) if f.name != "id"]


def to_record(row: Alert) -> AlertRecord:
    """The value of an alert row."""
    values: dict[str, Any] = {name: getattr(row, name) for name in _FIELDS}
    values["evidence"] = dict(row.evidence or {})
    values["breaches"] = row.breaches or 0
    values["suggested_fix"] = row.suggested_fix or ""
    return AlertRecord(id=row.id, **values)


def _write(row: Alert, alert: AlertRecord) -> None:
    for name in _FIELDS:
        value = getattr(alert, name)
        if name == "evidence":
            value = dict(value)
        if getattr(row, name) != value:
            setattr(row, name, value)
    row.open_fingerprint = alert.fingerprint if alert.is_open else None


def _values(alert: AlertRecord) -> dict[str, Any]:
    """The columns of an alert, for the set-based statements."""
    values: dict[str, Any] = {name: getattr(alert, name) for name in _FIELDS}
    values["evidence"] = dict(alert.evidence)
    values["open_fingerprint"] = alert.fingerprint if alert.is_open else None
    return values


def _expire(session: Session, model: type[Any], ids: set[int]) -> None:
    """Forget loaded rows a set-based UPDATE changed behind the session's back, so that a
    later read or write of one of them starts from the database."""
    for instance in list(session.identity_map.values()):
        if isinstance(instance, model) and instance.id in ids:
            session.expire(instance)


class SqlAlertStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def row(self, alert_id: int) -> Alert:
        """The ORM row of an alert (for ticketing, which works on rows)."""
        self._session.flush()
        row = self._session.get(Alert, alert_id)
        assert row is not None
        return row

    def open_alerts(
        self,
        *,
        subjects: Collection[str] | None = None,
        fingerprints: Collection[str] | None = None,
        rule_ids: Collection[str] | None = None,
        states: Collection[str] | None = None,
    ) -> list[AlertRecord]:
        base = select(Alert).where(Alert.open_fingerprint.is_not(None)).order_by(Alert.id)
        if rule_ids is not None:
            base = base.where(Alert.rule_id.in_(sorted(rule_ids)))
        if states is not None:
            base = base.where(Alert.state.in_(sorted(states)))
        lists = [(Alert.subject, subjects), (Alert.open_fingerprint, fingerprints)]
        chunked = [(column, sorted(values)) for column, values in lists if values is not None]
        if not chunked:
            return [to_record(row) for row in self._session.scalars(base)]
        (column, values), *others = chunked
        found: dict[int, AlertRecord] = {}
        for start in range(0, len(values), _CHUNK):
            query = base.where(column.in_(values[start : start + _CHUNK]))
            for other, more in others:
                query = query.where(other.in_(more))
            for row in self._session.scalars(query):
                found[row.id] = to_record(row)
        return [found[k] for k in sorted(found)]

    def get(self, alert_id: int) -> AlertRecord | None:
        self._session.flush()  # populate_existing must not overwrite unflushed progress
        row = self._session.get(Alert, alert_id, with_for_update=True, populate_existing=True)
        return None if row is None else to_record(row)

    def insert(self, alert: AlertRecord) -> AlertRecord:
        row = Alert(open_fingerprint=alert.fingerprint)
        _write(row, alert)
        try:
            with self._session.begin_nested():
                self._session.add(row)
                self._session.flush()
        except IntegrityError as exc:
            raise AlertExists(alert.fingerprint) from exc
        return to_record(row)

    def lock(self, alert_ids: Collection[int]) -> dict[int, AlertRecord]:
        self._session.flush()
        ids = sorted(set(alert_ids))
        found: dict[int, AlertRecord] = {}
        for start in range(0, len(ids), _CHUNK):
            query = (
                select(Alert)
                .where(Alert.id.in_(ids[start : start + _CHUNK]))
                .order_by(Alert.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            for row in self._session.scalars(query):
                found[row.id] = to_record(row)
        return found

    def insert_many(self, alerts: Sequence[AlertRecord]) -> list[AlertRecord]:
        if not alerts:
            return []
        self._session.flush()
        ids = reserve_ids(self._session, Alert, len(alerts))
        rows = [{"id": i, **_values(a)} for i, a in zip(ids, alerts, strict=True)]
        try:
            with self._session.begin_nested():
                self._session.connection().execute(insert(Alert), rows)
        except IntegrityError as exc:
            raise AlertExists(f"{len(alerts)} alerts") from exc
        return [replace(a, id=i) for a, i in zip(alerts, ids, strict=True)]

    def update_many(self, alerts: Sequence[AlertRecord]) -> None:
        if not alerts:
            return
        self._session.flush()
        self._session.execute(update(Alert), [{"id": a.id, **_values(a)} for a in alerts])
        _expire(self._session, Alert, {a.id for a in alerts})

    def add_events(self, events: Sequence[AlertEventRecord]) -> None:
        if not events:
            return
        self._session.connection().execute(
            insert(AlertEvent),
            [
                {
                    "alert_id": e.alert_id,
                    "at": e.at,
                    "from_state": e.from_state,
                    "to_state": e.to_state,
                    "rule_version": e.rule_version,
                    "evidence": dict(e.evidence),
                }
                for e in events
            ],
        )

    def change_times(
        self, fingerprints: Collection[str], since: datetime
    ) -> dict[str, list[datetime]]:
        self._session.flush()
        wanted = sorted(set(fingerprints))
        found: dict[str, list[datetime]] = {}
        for start in range(0, len(wanted), _CHUNK):
            rows = self._session.execute(
                select(Alert.fingerprint, AlertEvent.at)
                .join(Alert, Alert.id == AlertEvent.alert_id)
                .where(
                    Alert.fingerprint.in_(wanted[start : start + _CHUNK]),
                    AlertEvent.at > since,
                    or_(
                        AlertEvent.to_state.in_(("firing", "flapping")),
                        AlertEvent.from_state.in_(("firing", "flapping")),
                    ),
                )
            )
            for fp, at in rows:
                found.setdefault(fp, []).append(at)
        return found

    def last_resolved_many(self, fingerprints: Collection[str]) -> dict[str, datetime]:
        self._session.flush()
        wanted = sorted(set(fingerprints))
        found: dict[str, datetime] = {}
        for start in range(0, len(wanted), _CHUNK):
            rows = self._session.execute(
                select(Alert.fingerprint, func.max(Alert.resolved_at))
                .where(
                    Alert.fingerprint.in_(wanted[start : start + _CHUNK]),
                    Alert.resolved_at.is_not(None),
                )
                .group_by(Alert.fingerprint)
            )
            found.update({fp: at for fp, at in rows if at is not None})
        return found

    def update(self, alert: AlertRecord) -> None:
        row = self._session.get(Alert, alert.id)
        assert row is not None, f"alert {alert.id} was not read from this store"
        _write(row, alert)

    def add_event(self, event: AlertEventRecord) -> None:
        self._session.add(
            AlertEvent(
                alert_id=event.alert_id,
                at=event.at,
                from_state=event.from_state,
                to_state=event.to_state,
                rule_version=event.rule_version,
                evidence=dict(event.evidence),
            )
        )

    def count_changes(self, fingerprint: str, since: datetime) -> int:
        self._session.flush()
        changes = self._session.scalar(
            select(func.count())
            .select_from(AlertEvent)
            .join(Alert, Alert.id == AlertEvent.alert_id)
            .where(
                Alert.fingerprint == fingerprint,
                AlertEvent.at > since,
                or_(
                    AlertEvent.to_state.in_(("firing", "flapping")),
                    AlertEvent.from_state.in_(("firing", "flapping")),
                ),
            )
        )
        return int(changes or 0)

    def last_resolved(self, fingerprint: str) -> datetime | None:
        self._session.flush()
        return self._session.scalar(
            select(func.max(Alert.resolved_at)).where(Alert.fingerprint == fingerprint)
        )

    def alerting_subjects(
        self, rule_ids: Collection[str], since: datetime, until: datetime
    ) -> set[str]:
        if not rule_ids:
            return set()
        self._session.flush()
        rows = self._session.scalars(
            select(Alert.subject)
            .where(
                Alert.rule_id.in_(sorted(rule_ids)),
                Alert.pending_since < until,
                or_(Alert.resolved_at.is_(None), Alert.resolved_at > since),
            )
            .distinct()
        )
        return set(rows)

    def fired_within(self, fingerprint: str, since: datetime) -> bool:
        self._session.flush()
        found = self._session.scalar(
            select(Alert.id)
            .where(
                Alert.fingerprint == fingerprint,
                Alert.firing_since.is_not(None),
                or_(Alert.resolved_at.is_(None), Alert.resolved_at >= since),
            )
            .limit(1)
        )
        return found is not None

    def acknowledge(self, alert_id: int, by: str, now: datetime) -> AlertRecord | None:
        result = self._session.execute(
            update(Alert)
            .where(
                Alert.id == alert_id,
                Alert.open_fingerprint.is_not(None),
                Alert.acknowledged_at.is_(None),
            )
            .values(acknowledged_at=now, acknowledged_by=by)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        row = self._session.get(Alert, alert_id, populate_existing=True)
        return None if row is None else to_record(row)

    def add_silence(self, silence: Silence, now: datetime) -> None:
        self._session.add(
            SilenceRow(
                id=silence.id,
                matchers={
                    "devices": sorted(silence.devices),
                    "sites": sorted(silence.sites),
                    "models": sorted(silence.models),
                    "tags": sorted(silence.tags),
                    "regions": sorted(silence.regions),
                    "rules": sorted(silence.rules),
                },
                starts=silence.starts,
                ends=silence.ends,
                days=[WEEKDAYS[d] for d in sorted(silence.days)],
                hours=(
                    f"{silence.hours.start:%H:%M}-{silence.hours.end:%H:%M}"
                    if silence.hours
                    else None
                ),
                timezone=silence.timezone,
                comment=silence.comment,
                created_by=silence.created_by,
                created_at=now,
                notify_customers=silence.notify_customers,
                notice_before_seconds=(
                    silence.notice_before.total_seconds() if silence.notice_before else None
                ),
            )
        )
        self._session.flush()

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        result = self._session.execute(
            update(SilenceRow)
            .where(
                SilenceRow.id == silence_id,
                or_(SilenceRow.ends.is_(None), SilenceRow.ends > now),
            )
            .values(ends=now)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    def extend_silence(self, silence_id: str, ends: datetime, now: datetime) -> bool:
        result = self._session.execute(
            update(SilenceRow)
            .where(SilenceRow.id == silence_id, SilenceRow.ends > now, SilenceRow.ends < ends)
            .values(ends=ends)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    def silences(self, ended_after: datetime) -> list[Silence]:
        rows = self._session.scalars(
            select(SilenceRow)
            .where(or_(SilenceRow.ends.is_(None), SilenceRow.ends > ended_after))
            .order_by(SilenceRow.id)
        )
        return [_from_row(row) for row in rows]


def _from_row(row: SilenceRow) -> Silence:
    matchers = row.matchers
    settings = SilenceSettings.model_validate(
        {
            "id": row.id,
            "devices": matchers.get("devices", []),
            "sites": matchers.get("sites", []),
            "models": matchers.get("models", []),
            "tags": matchers.get("tags", []),
            "regions": matchers.get("regions", []),
            "rules": matchers.get("rules", []),
            "starts": row.starts,
            "ends": row.ends,
            "days": row.days,
            "hours": row.hours,
            "timezone": row.timezone,
            "comment": row.comment,
            "created_by": row.created_by,
            "notify_customers": row.notify_customers,
            "notice_before": (
                timedelta(seconds=row.notice_before_seconds)
                if row.notice_before_seconds is not None
                else None
            ),
        }
    )
    return Silence.from_settings(settings, source="api")


def open_work_order(session: Session, device_id: str, statuses: Sequence[str]) -> int | None:
    """The id of the open ticket on ``device_id`` whose status says it is being worked."""
    return session.scalar(
        select(Ticket.id).where(
            Ticket.device_id == device_id,
            Ticket.open_fingerprint.is_not(None),
            Ticket.status.in_(list(statuses)),
        )
    )


def open_work_orders(
    session: Session, device_ids: Collection[str], statuses: Sequence[str]
) -> dict[str, int]:
    """:func:`open_work_order` for many devices at once."""
    wanted = sorted(set(device_ids))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), _CHUNK):
        rows = session.execute(
            select(Ticket.device_id, Ticket.id).where(
                Ticket.device_id.in_(wanted[start : start + _CHUNK]),
                Ticket.open_fingerprint.is_not(None),
                Ticket.status.in_(list(statuses)),
            )
        )
        found.update({device: ticket for device, ticket in rows if device is not None})
    return found


def write_row(row: Alert, alert: AlertRecord) -> None:
    """Copy every field of ``alert`` onto its ORM row (a backtest's scratch copy)."""
    _write(row, alert)
