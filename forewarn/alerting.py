"""The monitors wired to the SQL store and to ticketing: what the service runs.

:class:`Monitors` is :class:`forewarn.monitors.core.AlertCore` over
:class:`forewarn.store.units.SqlStorage`, with ticketing as the sink. The ingester calls
:meth:`Monitors.on_samples` inside its own transaction (a session); everything else opens
its own units of work.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import MonitorSettings, Settings, SilenceSettings
from forewarn.monitors import actions, sweeps
from forewarn.monitors.core import AlertCore
from forewarn.monitors.reevaluate import reevaluate
from forewarn.monitors.silences import Silence, SilenceStatus
from forewarn.monitors.sweeps import SweepReport
from forewarn.ports import AlertRecord, Stores
from forewarn.rulebook import Loaded, RuleBook
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


Audit = Callable[[Session], None] | None
"""Runs in the action's transaction once it is done (the audit row commits with it)."""


def _in_session(then: Audit) -> Callable[[Stores], None] | None:
    if then is None:
        return None

    def run(stores: Stores) -> None:
        assert isinstance(stores, SqlStores)
        then(stores.session)

    return run


class Monitors:
    """All configured monitors over the SQL store, telling ``sink`` (ticketing).

    With a :class:`RuleBook` the monitors run its current version: every ingest batch and
    sweep first asks it for a newer one (one primary-key read) and switches to it."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        sink: AlertSink,
        rules: RuleBook | None = None,
    ) -> None:
        statuses = settings.alerting.work_order_statuses
        self.storage = SqlStorage(sessions, lambda s: _TicketingSink(s, sink, statuses))
        self._settings = settings
        self.rules = rules
        self.core = AlertCore(rules.settings() if rules else settings, self.storage)
        if rules is not None:
            rules.listen(self._switch)

    def follow(self, rules: RuleBook) -> None:
        """Run ``rules``' current version from now on, and every later one."""
        self.rules = rules
        rules.listen(self._switch)
        if rules.loaded.monitors != self.core.rules_in_order:
            self._switch(rules.loaded, rules.loaded)

    def _switch(self, before: Loaded, after: Loaded) -> None:
        core = AlertCore(self._with(after.monitors), self.storage)
        core.carry_over(self.core)
        self.core = core  # an ingest batch already running finishes on the old one

    def _with(self, monitors: tuple[MonitorSettings, ...]) -> Settings:
        return self._settings.model_copy(update={"monitors": monitors})

    def refresh(self, session: Session | None = None) -> None:
        """Switch to the current rule version if this process runs an older one."""
        if self.rules is not None:
            self.rules.refresh(session)

    def reevaluate(
        self, before: Loaded, after: Loaded, now: datetime, cause: dict[str, Any]
    ) -> int:
        """Judge the open alerts of the rules that differ between two versions again under
        ``after``, each transition recorded as caused by the change (``cause``)."""
        old = {str(r["id"]): r for r in before.data}
        new = {str(r["id"]): r for r in after.data}
        changed = {i for i in old.keys() | new.keys() if old.get(i) != new.get(i)}
        if not changed:
            return 0
        subset = tuple(m for m in after.monitors if m.id in changed)
        checks = AlertCore(self._with(subset), self.storage)
        checks.cause = cause
        return reevaluate(
            AlertCore(self._with(before.monitors), self.storage),
            AlertCore(self._with(after.monitors), self.storage),
            changed,
            now,
            cause,
            checks,
        )

    def load(self) -> None:
        self.core.load()

    def on_samples(self, session: Session, samples: Sequence[Sample], now: datetime) -> None:
        """Evaluate freshly stored samples inside the ingest transaction (``session``)."""
        self.refresh(session)
        self.core.on_samples(self.storage.bind(session), samples, now)

    def sweep(self, now: datetime, *, peers: bool = True) -> SweepReport:
        self.refresh()
        return sweeps.sweep(self.core, now, peers=peers)

    def sweep_offline(self, now: datetime) -> int:
        return sweeps.sweep_offline(self.core, now)

    def sweep_pending(self, now: datetime) -> int:
        return sweeps.sweep_pending(self.core, now)

    def sweep_peers(self, now: datetime) -> int:
        self.refresh()
        return sweeps.sweep_peers(self.core, now)

    def sweep_lifecycle(self, now: datetime) -> int:
        return sweeps.sweep_lifecycle(self.core, now)

    def acknowledge(
        self, alert_id: int, by: str, now: datetime, note: str = "", then: Audit = None
    ) -> bool:
        return actions.acknowledge(self.core, alert_id, by, now, note, _in_session(then))

    def add_silence(self, silence: SilenceSettings, now: datetime, then: Audit = None) -> None:
        actions.add_silence(self.core, silence, now, _in_session(then))

    def expire_silence(self, silence_id: str, by: str, now: datetime, then: Audit = None) -> bool:
        return actions.expire_silence(self.core, silence_id, by, now, _in_session(then))

    def extend_silence(self, silence_id: str, ends: datetime, by: str, now: datetime) -> bool:
        return actions.extend_silence(self.core, silence_id, ends, by, now)

    def is_configured_silence(self, silence_id: str) -> bool:
        return actions.is_configured_silence(self.core, silence_id)

    def silences(self, session: Session, now: datetime) -> list[Silence]:
        return self.core.silences(self.storage.bind(session), now)

    def silence_report(self, now: datetime) -> list[SilenceStatus]:
        return actions.silence_report(self.core, now)
