"""``forewarn replay``: stored or CSV readings through the monitors, in memory or on SQL.

By default the replay runs the monitors over the in-memory store
(:mod:`forewarn.store.memory`): alerts, their lifecycle, silences and inhibition exactly as
live, at memory speed, with nothing written anywhere. Ticketing is not simulated there:
the report counts the alerts that would have been handed to it (``announced``).

With a scratch database URL the whole live path runs on that store instead (tickets,
dispatch, outbox rows; nothing is sent), as slowly as a database is. Both go through the
same loop (:func:`forewarn.monitors.replay.run`) and give the same alerts.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config import Config
from forewarn.monitors.core import AlertCore
from forewarn.monitors.replay import ReplayError, SimulatedClock, run
from forewarn.ports import AlertRecord
from forewarn.store.alerts import to_record
from forewarn.store.memory import MemoryStore, RecordingSink
from forewarn.store.models import Alert, Notification, Reading, Ticket
from forewarn.store.readings import SqlReadingStore
from forewarn.telemetry.sample import Sample

__all__ = ["Episode", "ReplayError", "ReplayReport", "replay", "stored_readings"]


@dataclass(frozen=True)
class Episode:
    """One alert of a replay, as the comparison between stores sees it."""

    rule_id: str
    subject: str
    state: str
    severity: str
    pending_since: datetime
    firing_since: datetime | None
    resolved_at: datetime | None
    suppressed_by: str | None

    @classmethod
    def of(cls, alert: AlertRecord) -> Episode:
        return cls(
            alert.rule_id,
            alert.subject,
            alert.state,
            alert.severity,
            alert.pending_since,
            alert.firing_since,
            alert.resolved_at,
            alert.suppressed_by,
        )


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
    announced: int = 0
    """Alerts handed to ticketing."""
    tickets: int | None = None
    """Tickets opened (None: ticketing was not simulated, the in-memory replay)."""
    notifications_by_channel: dict[str, int] | None = None
    max_notifications_per_recipient: int | None = None
    episodes: tuple[Episode, ...] = ()
    """Every alert, in the order they were opened."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "readings": self.readings,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "alerts_by_rule": self.alerts_by_rule,
            "suppressed": self.suppressed,
            "announced": self.announced,
            "tickets": self.tickets,
            "notifications_by_channel": self.notifications_by_channel,
            "max_notifications_per_recipient": self.max_notifications_per_recipient,
        }


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
    config: Config,
    readings: Iterable[Sample],
    step: timedelta,
    *,
    scratch_url: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Run ``readings`` (any order) through the monitors with a simulated clock: in memory,
    or through the whole service built on the empty scratch store at ``scratch_url``."""
    if step <= timedelta(0):
        raise ReplayError("the step must be positive")
    ordered = sorted(readings, key=lambda s: s.ts)
    if not ordered:
        return ReplayReport(readings=0, start=None, end=None)
    if scratch_url is not None:
        return _on_scratch_store(config, ordered, step, scratch_url, progress)
    settings = config.settings
    start = ordered[0].ts
    sink = RecordingSink()
    store = MemoryStore(settings.devices, settings.sites, start, sink)
    core = AlertCore(settings, store)

    def ingest(batch: Sequence[Sample], now: datetime) -> None:
        store.add_readings(batch, now)
        core.on_samples(store, batch, now)

    end = run(core, ordered, step, ingest, SimulatedClock(start), progress=progress)
    alerts = store.all_alerts()
    return _report(len(ordered), start, end, alerts, announced=len(sink.fired))


def _report(
    count: int, start: datetime, end: datetime, alerts: Sequence[AlertRecord], **more: Any
) -> ReplayReport:
    fired = [a for a in alerts if a.firing_since is not None]
    return ReplayReport(
        readings=count,
        start=start,
        end=end,
        alerts_by_rule=dict(Counter(a.rule_id for a in fired)),
        suppressed=sum(1 for a in fired if a.notified_at is None),
        episodes=tuple(Episode.of(a) for a in alerts),
        **more,
    )


def _on_scratch_store(
    config: Config,
    ordered: Sequence[Sample],
    step: timedelta,
    scratch_url: str,
    progress: Callable[[int], None] | None,
) -> ReplayReport:
    from forewarn.notifier.channels import Channel
    from forewarn.notifier.channels.development import DevelopmentChannel
    from forewarn.service import build
    from forewarn.store.engine import make_engine
    from forewarn.store.schema import upgrade

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

        def ingest(batch: Sequence[Sample], now: datetime) -> None:
            # What the ingester does: store, move last-seen forward, then the monitors in
            # a savepoint of the same transaction.
            with app.sessions.begin() as session:
                SqlReadingStore(session).add_readings(batch, now)
                with session.begin_nested():
                    app.monitors.on_samples(session, batch, now)

        end = run(app.monitors.core, ordered, step, ingest, clock, progress=progress)
        return _scratch_report(app.sessions, len(ordered), start, end)
    finally:
        app.engine.dispose()


def _scratch_report(
    sessions: sessionmaker[Session], count: int, start: datetime, end: datetime
) -> ReplayReport:
    with sessions() as session:
        alerts = [to_record(a) for a in session.scalars(select(Alert).order_by(Alert.id))]
        tickets = session.scalar(select(func.count()).select_from(Ticket))
        channels = session.execute(
            select(Notification.channel, func.count()).group_by(Notification.channel)
        ).all()
        per_recipient = Counter(session.scalars(select(Notification.recipient_id)).all())
    return _report(
        count,
        start,
        end,
        alerts,
        announced=sum(1 for a in alerts if a.notified_at is not None),
        tickets=int(tickets or 0),
        notifications_by_channel={channel: int(n) for channel, n in channels},
        max_notifications_per_recipient=max(per_recipient.values(), default=0),
    )
