"""Units of work: the stores of one transaction, and where they come from."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from forewarn.ports.alerts import AlertSink, AlertStore
from forewarn.ports.baselines import BaselineStore
from forewarn.ports.outbox import Outbox
from forewarn.ports.parties import ContactStore, OrderStore
from forewarn.ports.readings import ReadingStore
from forewarn.ports.tickets import DelayCaseStore, TicketStore


class Stores(Protocol):
    """One unit of work: the stores the monitors use, bound to one transaction."""

    @property
    def readings(self) -> ReadingStore: ...

    @property
    def alerts(self) -> AlertStore: ...

    @property
    def baselines(self) -> BaselineStore: ...

    @property
    def sink(self) -> AlertSink: ...


class Storage(Protocol):
    """Where units of work come from."""

    def begin(self) -> AbstractContextManager[Stores]:
        """A new unit of work: committed when the block ends, rolled back if it raises."""
        ...


class TicketStores(Protocol):
    """One unit of work for ticketing: the stores it uses, bound to one transaction."""

    @property
    def tickets(self) -> TicketStore: ...

    @property
    def cases(self) -> DelayCaseStore: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def contacts(self) -> ContactStore: ...

    @property
    def orders(self) -> OrderStore: ...

    @property
    def alerts(self) -> AlertStore: ...


class TicketStorage(Protocol):
    """Where ticketing's units of work come from."""

    def begin(self) -> AbstractContextManager[TicketStores]:
        """A new unit of work: committed when the block ends, rolled back if it raises."""
        ...
