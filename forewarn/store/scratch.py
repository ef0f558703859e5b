"""A backtest's stores: readings and alerts in memory, ticketing on a scratch database.

The monitors run over :class:`~forewarn.store.memory.MemoryStore` (readings and alerts at
memory speed). Ticketing, dispatch and the outbox work on ORM rows, so they run on an
empty SQLite database in memory (:func:`~forewarn.store.engine.make_scratch_engine`)
holding the reference data; the alerts ticketing is told about are copied there just
before it is called (write-behind: an alert that changes a hundred times between two
ticketing calls is written once). Nothing touches the real store.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.alerting import AlertSink as TicketingSink
from forewarn.config.schema import DeviceSettings, SiteSettings
from forewarn.ports import AlertRecord
from forewarn.store.alerts import open_work_order, write_row
from forewarn.store.memory import MemoryStore
from forewarn.store.models import Alert
from forewarn.ticketing.storm import list_explained


class ScratchStore(MemoryStore):
    """:class:`MemoryStore` whose sink is ticketing on the scratch database ``sessions``.

    A unit of work (:meth:`begin`) opens a scratch transaction only when ticketing is
    called, and commits it when the unit ends; :attr:`scratch_units` counts those (the
    backtest's clock re-reads ticket and outbox timers only after one).
    """

    def __init__(
        self,
        devices: Sequence[DeviceSettings],
        sites: Sequence[SiteSettings],
        registered_at: datetime,
        sessions: sessionmaker[Session],
        ticketing: TicketingSink,
        work_order_statuses: Sequence[str],
    ) -> None:
        super().__init__(devices, sites, registered_at)
        self._sessions = sessions
        self._session: Session | None = None
        self._dirty: set[int] = set()
        self._scratch_sink = _Sink(self, ticketing, tuple(work_order_statuses))
        self.scratch_units = 0

    @property
    def sink(self) -> _Sink:
        return self._scratch_sink

    @contextmanager
    def begin(self) -> Iterator[ScratchStore]:
        try:
            yield self
        except BaseException:
            if self._session is not None:
                self._session.rollback()
                self._session.close()
                self._session = None
            raise
        self._end()

    def session(self) -> Session:
        """The scratch transaction of this unit of work, with every alert copied in."""
        if self._session is None:
            self._session = self._sessions()
            self._session.begin()
        self._copy_alerts(self._session)
        return self._session

    def sync(self) -> None:
        """Copy changed alerts to the scratch database in a transaction of their own
        (before the ticket sweep, which reads them)."""
        if self._dirty:
            self.session()
            self._end()

    def _end(self) -> None:
        if self._session is None:
            return
        self._copy_alerts(self._session)
        self._session.commit()
        self._session.close()
        self._session = None
        self.scratch_units += 1

    def _copy_alerts(self, session: Session) -> None:
        if not self._dirty:
            return
        # In id order: an episode's alert is resolved (its open fingerprint freed) before
        # the next episode of the same fingerprint is inserted.
        for alert_id in sorted(self._dirty):
            alert = self.get(alert_id)
            assert alert is not None
            row = session.get(Alert, alert_id)
            if row is None:
                row = Alert(id=alert_id)
                write_row(row, alert)
                session.add(row)
            else:
                write_row(row, alert)
            session.flush()
        self._dirty.clear()

    def insert(self, alert: AlertRecord) -> AlertRecord:
        stored = super().insert(alert)
        self._dirty.add(stored.id)
        return stored

    def update(self, alert: AlertRecord) -> None:
        super().update(alert)
        self._dirty.add(alert.id)

    def acknowledge(self, alert_id: int, by: str, now: datetime) -> AlertRecord | None:
        done = super().acknowledge(alert_id, by, now)
        if done is not None:
            self._dirty.add(alert_id)
        return done


class _Sink:
    """:class:`forewarn.ports.AlertSink`: ticketing on the scratch copy of the alert."""

    def __init__(
        self, store: ScratchStore, ticketing: TicketingSink, statuses: tuple[str, ...]
    ) -> None:
        self._store = store
        self._ticketing = ticketing
        self._statuses = statuses

    def alert_fired(self, alert: AlertRecord, now: datetime) -> AlertRecord:
        session = self._store.session()
        row = session.get(Alert, alert.id)
        assert row is not None
        self._ticketing.alert_fired(session, row, now)
        session.flush()
        return replace(alert, ticket_id=row.ticket_id)

    def alert_escalated(self, alert: AlertRecord, now: datetime) -> AlertRecord:
        session = self._store.session()
        row = session.get(Alert, alert.id)
        assert row is not None
        self._ticketing.alert_escalated(session, row, now)
        session.flush()
        return replace(alert, ticket_id=row.ticket_id)

    def alert_resolved(self, alert: AlertRecord, now: datetime) -> None:
        session = self._store.session()
        row = session.get(Alert, alert.id)
        assert row is not None
        self._ticketing.alert_resolved(session, row, now)

    def work_order(self, device_id: str) -> int | None:
        return open_work_order(self._store.session(), device_id, self._statuses)

    def alerts_fired(self, alerts: Sequence[AlertRecord], now: datetime) -> list[AlertRecord]:
        return [self.alert_fired(a, now) for a in alerts]

    def alerts_resolved(self, alerts: Sequence[AlertRecord], now: datetime) -> None:
        for alert in alerts:
            self.alert_resolved(alert, now)

    def alerts_explained(self, alerts: Sequence[AlertRecord], now: datetime) -> None:
        session = self._store.session()
        list_explained(session, alerts, now)
        # The source's ticket now lists them: keep that on the alerts in memory, which are
        # copied back over these rows when they next change.
        ids = [a.id for a in alerts]
        for alert_id, ticket_id in session.execute(
            select(Alert.id, Alert.ticket_id).where(Alert.id.in_(ids))
        ):
            current = self._store.get(alert_id)
            if current is not None and current.ticket_id != ticket_id:
                self._store.update(replace(current, ticket_id=ticket_id))

    def work_orders(self, device_ids: Collection[str]) -> dict[str, int]:
        found = {d: self.work_order(d) for d in device_ids}
        return {d: t for d, t in found.items() if t is not None}
