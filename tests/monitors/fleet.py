"""Helpers for driving the monitors the way the ingester does, on a real store."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from forewarn.config import parse_config
from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.development import DevelopmentChannel
from forewarn.service import Forewarn, build
from forewarn.store.engine import make_engine
from forewarn.store.models import Alert, AlertEvent, Device, Notification, Reading, Ticket
from forewarn.store.schema import upgrade
from forewarn.telemetry.sample import STATUS_METRIC, Sample


class SteppingClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@dataclass
class Fleet:
    """One database; every :meth:`start` builds forewarn on it (a start or a restart)."""

    url: str
    config: str
    clock: SteppingClock
    apps: list[Forewarn] = field(default_factory=list)

    def start(self, config: str | None = None) -> Forewarn:
        channels: dict[str, Channel] = {
            "sms": DevelopmentChannel("sms", io.StringIO()),
            "email": DevelopmentChannel("email", io.StringIO()),
        }
        settings = parse_config(config or self.config, {"FOREWARN_DATABASE_URL": self.url})
        app = build(settings, clock=self.clock, channels=channels)
        self.apps.append(app)
        return app

    def stop(self, app: Forewarn) -> None:
        app.engine.dispose()


@contextmanager
def running_fleet(url: str, config: str, start: datetime) -> Iterator[Fleet]:
    """A migrated database at ``url``; every app built on it is disposed afterwards."""
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    fleet = Fleet(url, config, SteppingClock(start))
    try:
        yield fleet
    finally:
        for app in fleet.apps:
            app.engine.dispose()


def temperature(device: str, value: float, at: datetime, *, stale: bool = False) -> Sample:
    return Sample(device, "temperature", at, received_at=at, value=value, stale=stale)


def fault(device: str, code: str, at: datetime) -> Sample:
    return Sample(device, STATUS_METRIC, at, received_at=at, code=code)


def ingest(app: Forewarn, samples: Sequence[Sample], *, store: bool = True) -> None:
    """Store ``samples`` and evaluate them in one transaction, as the ingester does.

    ``store=False`` hands over samples already stored (a redelivery reaching the monitors).
    """
    now = app.clock.now()
    with app.sessions.begin() as session:
        if store:
            session.add_all(
                Reading(
                    device_id=s.device_id,
                    metric=s.metric,
                    ts=s.ts,
                    value=s.value,
                    code=s.code,
                    received_at=s.received_at,
                    stale=s.stale,
                )
                for s in samples
            )
            for s in samples:
                if not s.stale:
                    session.execute(
                        update(Device)
                        .where(
                            Device.id == s.device_id,
                            or_(Device.last_seen_at.is_(None), Device.last_seen_at < s.ts),
                        )
                        .values(last_seen_at=s.ts, last_received_at=now)
                    )
        app.monitors.on_samples(session, samples, now)


def report(app: Forewarn, device: str, value: float) -> Sample:
    """``device`` reports a temperature now."""
    sample = temperature(device, value, app.clock.now())
    ingest(app, [sample])
    return sample


def alerts(app: Forewarn, rule: str | None = None, device: str | None = None) -> list[Alert]:
    query = select(Alert).order_by(Alert.id)
    if rule is not None:
        query = query.where(Alert.rule_id == rule)
    if device is not None:
        query = query.where(Alert.subject == device)
    with app.sessions() as session:
        return list(session.scalars(query))


def transitions(app: Forewarn, alert: Alert) -> list[tuple[str | None, str]]:
    with app.sessions() as session:
        rows = session.execute(
            select(AlertEvent.from_state, AlertEvent.to_state)
            .where(AlertEvent.alert_id == alert.id)
            .order_by(AlertEvent.id)
        )
        return [(before, after) for before, after in rows]


def count(app: Forewarn, table: Any) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def totals(app: Forewarn) -> dict[str, int]:
    """How many rows each part of the story has: nothing may change on a redelivery."""
    tables = {"alerts": Alert, "alert_events": AlertEvent, "tickets": Ticket}
    summary = {name: count(app, table) for name, table in tables.items()}
    summary["notifications"] = count(app, Notification)
    return summary
