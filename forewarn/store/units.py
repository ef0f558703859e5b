"""Units of work over SQL: the stores of :mod:`forewarn.ports` bound to one session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from forewarn.ports import AlertSink
from forewarn.store.alerts import SqlAlertStore
from forewarn.store.baselines import SqlBaselineStore
from forewarn.store.readings import SqlReadingStore


class SqlStores:
    """The stores of one transaction (a :class:`forewarn.ports.Stores`)."""

    def __init__(self, session: Session, sink: Callable[[SqlStores], AlertSink]) -> None:
        self.session = session
        self._readings = SqlReadingStore(session)
        self._alerts = SqlAlertStore(session)
        self._baselines = SqlBaselineStore(session)
        self._sink = sink(self)

    @property
    def readings(self) -> SqlReadingStore:
        return self._readings

    @property
    def alerts(self) -> SqlAlertStore:
        return self._alerts

    @property
    def baselines(self) -> SqlBaselineStore:
        return self._baselines

    @property
    def sink(self) -> AlertSink:
        return self._sink


class SqlStorage:
    """A :class:`forewarn.ports.Storage` over a sessionmaker; ``sink`` builds the ticketing
    side of each unit of work."""

    def __init__(
        self, sessions: sessionmaker[Session], sink: Callable[[SqlStores], AlertSink]
    ) -> None:
        self.sessions = sessions
        self._sink = sink

    @contextmanager
    def begin(self) -> Iterator[SqlStores]:
        with self.sessions.begin() as session:
            yield self.bind(session)

    def bind(self, session: Session) -> SqlStores:
        """The stores of a transaction someone else opened (the ingest batch's)."""
        return SqlStores(session, self._sink)
