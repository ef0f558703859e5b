"""Visit windows: :class:`AppointmentStore` and :class:`AppointmentRecord`.

A ticket's windows are rows: each proposal is a ``batch`` of ``offered`` windows
(``option`` 1..N as the customer reads them); the one the customer picks becomes
``confirmed`` and the rest of its batch ``passed``; asking for other times passes the
whole batch and offers the next one. A confirmed window ends ``done`` with the visit, or
``cancelled`` when the ticket ends or moves to a technician who cannot keep it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

AppointmentStatus = Literal["offered", "passed", "confirmed", "cancelled", "done"]
HOLDING: tuple[AppointmentStatus, ...] = ("confirmed",)
"""Statuses in which a window keeps the technician's time. An offered window does not:
holding every offer would fill a technician's day with times nobody chose; two customers
may be offered the same hours, and the first to book them has them."""


@dataclass(frozen=True)
class AppointmentRecord:
    """One visit window of one ticket with one technician."""

    ticket_id: int
    technician_id: str
    start_at: datetime
    end_at: datetime
    status: AppointmentStatus
    batch: int
    option: int
    offered_at: datetime
    customer_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    """Where the visit is (the site), for the travel to and from the technician's next
    and previous visits."""
    confirmed_at: datetime | None = None
    confirmed_via: str | None = None
    """``sms``, ``link`` (the signed link in the email) or ``ops``."""
    remind_at: datetime | None = None
    reminded_at: datetime | None = None
    return_visit: bool = False
    id: int = 0


class AppointmentStore(Protocol):
    """Visit windows, bound to the caller's transaction."""

    def add(self, appointment: AppointmentRecord) -> AppointmentRecord:
        """Store a new window; returns it with its id."""
        ...

    def update(self, appointment: AppointmentRecord) -> None:
        """Write every field of a window read from this store."""
        ...

    def get(self, appointment_id: int) -> AppointmentRecord | None: ...

    def of_ticket(self, ticket_id: int) -> list[AppointmentRecord]:
        """Every window of the ticket, by batch and option."""
        ...

    def holding(
        self, technician_id: str, since: datetime, until: datetime, *, other_than: int
    ) -> list[AppointmentRecord]:
        """The technician's windows that keep their time between ``since`` and ``until``
        (booked), of tickets other than ``other_than``, by start."""
        ...

    def offered_to(self, customer_id: str) -> list[AppointmentRecord]:
        """The windows waiting for the customer's answer (the latest batch of each of
        their tickets), newest ticket first, then by option."""
        ...

    def reminders_due(self, now: datetime, limit: int) -> list[AppointmentRecord]:
        """Confirmed windows whose reminder is due at ``now`` and not yet sent."""
        ...
