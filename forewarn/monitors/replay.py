"""Replay: stored or CSV readings through the same monitors with a simulated clock.

The readings are written to a scratch store step by step, exactly as the ingester would
have written them (readings, the devices' last-seen time, then ``on_samples`` in the same
transaction), and the scheduled sweep runs at the end of every step with the clock at
that moment. Because rules run on the readings' own timestamps and timers on the clock
passed in, a replay of last week produces the alerts live operation did (to within one
``step`` for scheduled timers, which live fire to within one check interval).

Nothing is sent: tickets and outbox rows are written to the scratch store and counted.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config import Config
from forewarn.store.models import Alert, Device, Notification, Reading, Ticket
from forewarn.telemetry.sample import Sample

if TYPE_CHECKING:
    from forewarn.service import Forewarn


class ReplayError(ValueError):
    """The input cannot be replayed (a bad CSV row, an unusable scratch store)."""


@dataclass
class SimulatedClock:
    """The replay's clock: moved by the replay, read by every part of forewarn."""

    at: datetime

    def now(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class ReplayReport:
    """What the rules did over the replayed readings."""

    readings: int
    start: datetime | None
    end: datetime | None
    alerts_by_rule: dict[str, int] = field(default_factory=dict)
    """Alerts that fired (were announced or held), per rule."""
    suppressed: int = 0
    """Alerts that fired but were held (silence, inhibition, flapping)."""
    tickets: int = 0
    notifications_by_channel: dict[str, int] = field(default_factory=dict)
    max_notifications_per_recipient: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "readings": self.readings,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "alerts_by_rule": self.alerts_by_rule,
            "suppressed": self.suppressed,
            "tickets": self.tickets,
            "notifications_by_channel": self.notifications_by_channel,
            "max_notifications_per_recipient": self.max_notifications_per_recipient,
        }


def read_csv(source: TextIO, origin: str = "readings.csv") -> Iterator[Sample]:
    """Readings from a CSV with a header: ``device_id, metric, ts`` and ``value`` or
    ``code``; an optional ``stale`` column (``true``/``1``) keeps the gate's verdict."""
    reader = csv.DictReader(source)
    missing = {"device_id", "metric", "ts"} - set(reader.fieldnames or ())
    if missing:
        raise ReplayError(f"{origin}: missing column(s) {', '.join(sorted(missing))}")
    for line, row in enumerate(reader, start=2):
        try:
            ts = datetime.fromisoformat(row["ts"].strip())
            value_text = (row.get("value") or "").strip()
            value = float(value_text) if value_text else None
        except ValueError as exc:
            raise ReplayError(f"{origin}:{line}: {exc}") from exc
        if ts.tzinfo is None:
            raise ReplayError(f"{origin}:{line}: timestamp {row['ts']!r} has no UTC offset")
        code = (row.get("code") or "").strip() or None
        stale = (row.get("stale") or "").strip().lower() in {"1", "true", "yes"}
        yield Sample(
            row["device_id"].strip(),
            row["metric"].strip(),
            ts.astimezone(UTC),
            received_at=ts.astimezone(UTC),
            value=value,
            code=code,
            stale=stale,
        )


def stored_readings(config: Config, since: datetime, until: datetime) -> Iterator[Sample]:
    """Readings kept in the configured store between ``since`` and ``until``."""
    from forewarn.store.engine import make_engine, make_sessionmaker

    engine = make_engine(config.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(Reading)
                .where(Reading.ts >= since, Reading.ts < until)
                .order_by(Reading.ts, Reading.id)
                .execution_options(yield_per=5000)
            ).scalars()
            for r in rows:
                yield Sample(r.device_id, r.metric, r.ts, r.received_at, r.value, r.code, r.stale)
    finally:
        engine.dispose()


def replay(
    config: Config, readings: Iterable[Sample], scratch_url: str, step: timedelta
) -> ReplayReport:
    """Run ``readings`` (any order) through forewarn built on the scratch store at
    ``scratch_url``, which is migrated first and should be empty."""
    from forewarn.notifier.channels import Channel
    from forewarn.notifier.channels.development import DevelopmentChannel
    from forewarn.service import build
    from forewarn.store.engine import make_engine
    from forewarn.store.schema import upgrade

    if step <= timedelta(0):
        raise ReplayError("the step must be positive")
    ordered = sorted(readings, key=lambda s: s.ts)
    if not ordered:
        return ReplayReport(readings=0, start=None, end=None)
    engine = make_engine(scratch_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    start = ordered[0].ts
    clock = SimulatedClock(start)
    scratch = replace(config, secrets=replace(config.secrets, database_url=scratch_url))
    quiet = io.StringIO()
    channels: dict[str, Channel] = {
        "sms": DevelopmentChannel("sms", quiet),
        "email": DevelopmentChannel("email", quiet),
    }
    app = build(scratch, clock=clock, channels=channels)
    try:
        with app.sessions() as session:
            if session.scalar(select(func.count()).select_from(Alert)):
                raise ReplayError(f"the scratch store {scratch_url} is not empty")
        index = 0
        moment = start
        while index < len(ordered):
            moment += step
            batch: list[Sample] = []
            while index < len(ordered) and ordered[index].ts < moment:
                batch.append(ordered[index])
                index += 1
            clock.at = moment
            if batch:
                _ingest(app, batch, moment)
            app.monitors.sweep(moment)
        return _report(app.sessions, len(ordered), start, moment)
    finally:
        app.engine.dispose()


def _ingest(app: Forewarn, batch: list[Sample], now: datetime) -> None:
    """What the ingester does with a batch: store, move last-seen forward, then run the
    monitors in a savepoint of the same transaction."""
    samples = list({(s.device_id, s.metric, s.ts): s for s in batch}.values())
    with app.sessions.begin() as session:
        session.execute(
            insert(Reading),
            [
                {
                    "device_id": s.device_id,
                    "metric": s.metric,
                    "ts": s.ts,
                    "value": s.value,
                    "code": s.code,
                    "received_at": s.received_at,
                    "stale": s.stale,
                }
                for s in samples
            ],
        )
        seen: dict[str, datetime] = {}
        for s in samples:
            if not s.stale and (s.device_id not in seen or seen[s.device_id] < s.ts):
                seen[s.device_id] = s.ts
        for device_id, ts in sorted(seen.items()):
            session.execute(
                update(Device)
                .where(
                    Device.id == device_id,
                    or_(Device.last_seen_at.is_(None), Device.last_seen_at < ts),
                )
                .values(last_seen_at=ts, last_received_at=now)
            )
        with session.begin_nested():
            app.monitors.on_samples(session, samples, now)


def _report(
    sessions: sessionmaker[Session], count: int, start: datetime, end: datetime
) -> ReplayReport:
    with sessions() as session:
        fired = session.execute(
            select(Alert.rule_id, func.count())
            .where(Alert.firing_since.is_not(None))
            .group_by(Alert.rule_id)
        ).all()
        suppressed = session.scalar(
            select(func.count())
            .select_from(Alert)
            .where(Alert.firing_since.is_not(None), Alert.notified_at.is_(None))
        )
        tickets = session.scalar(select(func.count()).select_from(Ticket))
        channels = session.execute(
            select(Notification.channel, func.count()).group_by(Notification.channel)
        ).all()
        per_recipient = Counter(session.scalars(select(Notification.recipient_id)).all())
    return ReplayReport(
        readings=count,
        start=start,
        end=end,
        alerts_by_rule={rule: int(n) for rule, n in fired},
        suppressed=int(suppressed or 0),
        tickets=int(tickets or 0),
        notifications_by_channel={channel: int(n) for channel, n in channels},
        max_notifications_per_recipient=max(per_recipient.values(), default=0),
    )
