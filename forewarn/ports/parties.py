"""Customers and orders, as ticketing reads them."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


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


class ContactStore(Protocol):
    """Customers as ticketing reads them."""

    def customer(self, customer_id: str) -> Person | None: ...


class OrderStore(Protocol):
    """Orders as ticketing reads them."""

    def delivered(self, order_ids: Collection[str]) -> dict[str, datetime]:
        """When each of ``order_ids`` that has been delivered was delivered."""
        ...
