"""The monitors wired to the SQL store and to ticketing: what the service runs.

:class:`Monitors` is :class:`forewarn.monitors.core.AlertCore` over
:class:`forewarn.store.units.SqlStorage`, with ticketing as the sink. The ingester calls
:meth:`Monitors.on_samples` inside its own transaction (a session); everything else opens
its own units of work.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import Settings, SilenceSettings
from forewarn.monitors import actions, sweeps
from forewarn.monitors.core import AlertCore
from forewarn.monitors.silences import Silence, SilenceStatus
from forewarn.monitors.sweeps import SweepReport
from forewarn.ports import AlertRecord
from forewarn.store.alerts import open_work_order, open_work_orders, to_record
from forewarn.store.models import Alert
from forewarn.store.units import SqlStorage, SqlStores
from forewarn.telemetry.sample import Sample
from forewarn.ticketing.storm import list_explained, open_tickets
from forewarn.ticketing.tickets import Ticketing

__all__ = ["AlertSink", "Monitors", "SweepReport"]


class AlertSink(Protocol):
    """Ticketing as it works on alert rows, in the alert's session (see
    :class:`forewarn.ports.AlertSink` for when each is called)."""

    def alert_fired(self, session: Session, alert: Alert, now: datetime) -> None: ...

    def alert_escalated(self, session: Session, alert: Alert, now: datetime) -> None: ...

    def alert_resolved(self, session: Session, alert: Alert, now: datetime) -> None: ...


class _TicketingSink:
    """:class:`forewarn.ports.AlertSink` for ticketing, which works on ORM rows."""

    def __init__(self, stores: SqlStores, tickets: AlertSink, statuses: Sequence[str]) -> None:
        self._stores = stores
        self._tickets = tickets
        self._statuses = statuses

    def alert_fired(self, alert: AlertRecord, now: datetime) -> AlertRecord:
        self._stores.alerts.update(alert)
        row = self._stores.alerts.row(alert.id)
        self._tickets.alert_fired(self._stores.session, row, now)
        return to_record(row)

    def alert_escalated(self, alert: AlertRecord, now: datetime) -> AlertRecord:
        self._stores.alerts.update(alert)
        row = self._stores.alerts.row(alert.id)
        self._tickets.alert_escalated(self._stores.session, row, now)
        return to_record(row)

    def alert_resolved(self, alert: AlertRecord, now: datetime) -> None:
        self._stores.alerts.update(alert)
        self._tickets.alert_resolved(self._stores.session, self._stores.alerts.row(alert.id), now)

    def work_order(self, device_id: str) -> int | None:
        return open_work_order(self._stores.session, device_id, self._statuses)

    def alerts_fired(self, alerts: Sequence[AlertRecord], now: datetime) -> list[AlertRecord]:
        if isinstance(self._tickets, Ticketing) and len(alerts) > 1:
            opened = open_tickets(self._tickets, self._stores.session, alerts, now)
            told = {a.id: a for a in opened.done}
            # Alerts that join or reopen a ticket are decided one by one, as before. Their
            # rows are written first: they were inserted behind the session's back.
            self._stores.alerts.update_many(opened.one_by_one)
            told.update((a.id, self.alert_fired(a, now)) for a in opened.one_by_one)
            return [told[a.id] for a in alerts]
        return [self.alert_fired(a, now) for a in alerts]

    def alerts_resolved(self, alerts: Sequence[AlertRecord], now: datetime) -> None:
        for alert in alerts:
            self.alert_resolved(alert, now)

    def alerts_explained(self, alerts: Sequence[AlertRecord], now: datetime) -> None:
        list_explained(self._stores.session, alerts, now)

    def work_orders(self, device_ids: Collection[str]) -> dict[str, int]:
        return open_work_orders(self._stores.session, device_ids, self._statuses)


class Monitors:
    """All configured monitors over the SQL store, telling ``sink`` (ticketing)."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], sink: AlertSink
    ) -> None:
        statuses = settings.alerting.work_order_statuses
        self.storage = SqlStorage(sessions, lambda s: _TicketingSink(s, sink, statuses))
        self.core = AlertCore(settings, self.storage)

    def load(self) -> None:
        self.core.load()

    def on_samples(self, session: Session, samples: Sequence[Sample], now: datetime) -> None:
        """Evaluate freshly stored samples inside the ingest transaction (``session``)."""
        self.core.on_samples(self.storage.bind(session), samples, now)

    def sweep(self, now: datetime, *, peers: bool = True) -> SweepReport:
        return sweeps.sweep(self.core, now, peers=peers)

    def sweep_offline(self, now: datetime) -> int:
        return sweeps.sweep_offline(self.core, now)

    def sweep_pending(self, now: datetime) -> int:
        return sweeps.sweep_pending(self.core, now)

    def sweep_peers(self, now: datetime) -> int:
        return sweeps.sweep_peers(self.core, now)

    def sweep_lifecycle(self, now: datetime) -> int:
        return sweeps.sweep_lifecycle(self.core, now)

    def acknowledge(self, alert_id: int, by: str, now: datetime, note: str = "") -> bool:
        return actions.acknowledge(self.core, alert_id, by, now, note)

    def add_silence(self, silence: SilenceSettings, now: datetime) -> None:
        actions.add_silence(self.core, silence, now)

    def expire_silence(self, silence_id: str, by: str, now: datetime) -> bool:
        return actions.expire_silence(self.core, silence_id, by, now)

    def extend_silence(self, silence_id: str, ends: datetime, by: str, now: datetime) -> bool:
        return actions.extend_silence(self.core, silence_id, ends, by, now)

    def is_configured_silence(self, silence_id: str) -> bool:
        return actions.is_configured_silence(self.core, silence_id)

    def silences(self, session: Session, now: datetime) -> list[Silence]:
        return self.core.silences(self.storage.bind(session), now)

    def silence_report(self, now: datetime) -> list[SilenceStatus]:
        return actions.silence_report(self.core, now)
