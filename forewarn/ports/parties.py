"""Customers, and orders as the feeds keep them and ticketing reads them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from forewarn.feeds.mapping import EventRecord
from forewarn.monitors.transit import TransitKey, TransitTimes


@dataclass(frozen=True)
class Person:
    """A customer as ticketing needs them to write a notice (see
    :func:`forewarn.notifier.outbox.customer_recipient`)."""

    id: str
    name: str
    locale: str
    timezone: str
    phone: str | None = None
    email: str | None = None
    channels: tuple[str, ...] = ("sms", "email")
    opted_out: tuple[str, ...] = ()
    quiet_hours: str | None = None


@dataclass(frozen=True)
class OrderState:
    """One order as stored: what its feeds said so far (event times), and when the order
    rules must look at it again.

    ``status`` is ``open``, ``delivered`` or ``canceled`` as of the latest data;
    ``content_hash`` is the hash of the last record taken (the same record read again
    changes nothing); ``next_check_at`` is the next deadline at which the rules' verdict
    can change with no new data (None: on new data only).
    """

    id: str
    feed: str
    status: str
    first_seen_at: datetime
    updated_at: datetime
    content_hash: str
    customer_id: str | None = None
    source_status: str | None = None
    carrier: str | None = None
    region: str | None = None
    promised_at: datetime | None = None
    milestones: Mapping[str, datetime] = field(default_factory=dict)
    """Milestone -> when it was first reached (``placed``, ..., ``delivered``)."""
    canceled_at: datetime | None = None
    exception_code: str | None = None
    """The carrier exception still standing."""
    exception_at: datetime | None = None
    next_check_at: datetime | None = None

    @property
    def delivered_at(self) -> datetime | None:
        return self.milestones.get("delivered")

    @property
    def placed_at(self) -> datetime | None:
        return self.milestones.get("placed")


class ContactStore(Protocol):
    """Customers as ticketing reads them and the feeds write them."""

    def customer(self, customer_id: str) -> Person | None: ...

    def save_customer(self, person: Person) -> None:
        """Create the customer or write every field of ``person`` (other columns stay)."""
        ...


class OrderStore(Protocol):
    """Orders, their shipment events and the learned transit times.

    An order is one row per source id; a shipment event is stored once per order, meaning,
    code and time. ``get`` locks the order until the transaction ends.
    """

    def delivered(self, order_ids: Collection[str]) -> dict[str, datetime]:
        """When each of ``order_ids`` that has been delivered was delivered."""
        ...

    def get(self, order_id: str) -> OrderState | None:
        """The order, read afresh and locked; None if there is none."""
        ...

    def save(self, order: OrderState) -> None:
        """Store a new order or write every field of a stored one."""
        ...

    def add_event(self, order_id: str, feed: str, event: EventRecord, now: datetime) -> bool:
        """Store a shipment event of ``order_id`` received at ``now``; False (storing
        nothing, the transaction usable) if it is stored already."""
        ...

    def due(self, now: datetime, limit: int) -> list[OrderState]:
        """Open orders whose next check is at or before ``now``, earliest first."""
        ...

    def next_check(self) -> datetime | None:
        """The earliest next check of an open order, if any."""
        ...

    def recheck_open(self, now: datetime) -> None:
        """Make every open order due at ``now`` (its estimate may have moved)."""
        ...

    def deliveries(self, since: datetime, until: datetime) -> list[OrderState]:
        """Orders delivered in ``(since, until]`` (the transit times' history)."""
        ...

    def save_transit(self, groups: Mapping[TransitKey, TransitTimes], now: datetime) -> None:
        """Replace the learned transit times with ``groups`` (learned at ``now``)."""
        ...

    def transit(self) -> dict[TransitKey, TransitTimes]:
        """The learned transit times."""
        ...
