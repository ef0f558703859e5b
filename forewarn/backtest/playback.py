"""``forewarn replay``: stored or CSV readings through the whole live path, simulated.

By default the replay runs :mod:`forewarn.backtest.live`: the monitors over the in-memory
store, ticketing, its sweep, the simulated technicians and the notifier in dry run on a
scratch database in memory; nothing is written anywhere and nothing is left behind.

With a scratch database URL the service itself is built on that (empty) store instead
and the same scheduled jobs run on the simulated clock, as slowly as a database is; its
rows stay for inspection. Both go through the same loop
(:func:`forewarn.monitors.replay.run`) and give the same alerts, tickets and messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from forewarn.backtest.live import Crew, Outcome, Scheduled, read_outcome, simulate
from forewarn.backtest.report import SENT
from forewarn.config import Config
from forewarn.monitors.replay import ReplayError, SimulatedClock, run
from forewarn.ports import AlertEventRecord, AlertRecord
from forewarn.store.alerts import to_record
from forewarn.store.models import Alert, AlertEvent
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
    """Readings kept in the configured store between ``since`` and ``until``, oldest
    first (one streamed query: :func:`forewarn.store.history.read_readings`)."""
    from forewarn.store.engine import make_engine
    from forewarn.store.history import read_readings

    engine = make_engine(config.database_url)
    try:
        yield from read_readings(engine, since, until)
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
    crew = Crew(settings.backtest.crew.accept_after, settings.backtest.crew.visit_hours)
    outcome = simulate(settings, ordered, step, crew, progress=progress)
    return _report(outcome)


def _report(outcome: Outcome) -> ReplayReport:
    assert outcome.start is not None
    assert outcome.end is not None
    fired = [a for a in outcome.alerts if a.firing_since is not None]
    sent = [m for m in outcome.messages if m.status in SENT]
    per_recipient = Counter((m.recipient_role, m.recipient_id) for m in sent)
    return ReplayReport(
        readings=outcome.readings,
        start=outcome.start,
        end=outcome.end,
        alerts_by_rule=dict(Counter(a.rule_id for a in fired)),
        suppressed=sum(1 for a in fired if a.notified_at is None),
        announced=sum(1 for a in fired if a.notified_at is not None),
        tickets=len(outcome.tickets),
        notifications_by_channel=dict(Counter(m.channel for m in sent)),
        max_notifications_per_recipient=max(per_recipient.values(), default=0),
        episodes=tuple(Episode.of(a) for a in outcome.alerts),
    )


def _on_scratch_store(
    config: Config,
    ordered: Sequence[Sample],
    step: timedelta,
    scratch_url: str,
    progress: Callable[[int], None] | None,
) -> ReplayReport:
    from forewarn.notifier.channels import Channel
    from forewarn.notifier.channels.dry_run import DryRunChannel
    from forewarn.notifier.render import Renderer
    from forewarn.notifier.sender import Sender, SenderPool
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
    channels: dict[str, Channel] = {"sms": DryRunChannel("sms"), "email": DryRunChannel("email")}
    app = build(scratch, clock=clock, channels=channels)
    app.sender.close()
    # One sender, in this thread: the replay's clock is not shared with sender threads.
    app.sender = SenderPool(
        [
            Sender(
                app.sessions,
                channels,
                Renderer(default_locale=config.settings.notifications.default_locale),
                clock,
                config.settings.notifications,
                "replay",
            )
        ]
    )
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

        settings = config.settings
        crew = Crew(settings.backtest.crew.accept_after, settings.backtest.crew.visit_hours)
        core = app.monitors.core
        timers = Scheduled(
            settings.ticketing,
            app.sessions,
            app.ticketing,
            app.sender,
            crew,
            changes=lambda: core.writes,
        )
        end = run(core, ordered, step, ingest, clock, progress=progress, timers=timers)
        with app.sessions() as session:
            alerts = [to_record(a) for a in session.scalars(select(Alert).order_by(Alert.id))]
            events = [
                AlertEventRecord(e.alert_id, e.at, e.from_state, e.to_state, e.rule_version)
                for e in session.scalars(select(AlertEvent).order_by(AlertEvent.id))
            ]
        outcome = read_outcome(app.sessions, alerts, events, len(ordered), start, end, crew.visit)
        return _report(outcome)
    finally:
        app.engine.dispose()
