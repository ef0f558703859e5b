"""Opting out and back in: what STOP, START, an unsubscribe event and Twilio's 21610 do.

An opt-out takes effect at once: the channel leaves the customer's usable addresses, and
every message still waiting for them on it is cancelled in the same transaction, so
nothing queued before the STOP can leave after it. The sender checks again right before
sending, for a row it had already claimed.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from forewarn.store.models import Customer, Notification

CHANNELS = ("sms", "email")


def opt_out(session: Session, customer: Customer, channels: Iterable[str], why: str) -> int:
    """Stop ``channels`` for ``customer``; returns how many waiting messages were cancelled."""
    stopped = set(channels)
    customer.opted_out = sorted(set(customer.opted_out or ()) | stopped)
    result = session.execute(
        update(Notification)
        .where(
            Notification.recipient_role == "customer",
            Notification.recipient_id == customer.id,
            Notification.channel.in_(stopped),
            Notification.status == "queued",
        )
        .values(status="cancelled", last_error=f"customer opted out ({why})", lease_until=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def opt_in(customer: Customer, channels: Iterable[str]) -> None:
    """Allow ``channels`` again (START)."""
    customer.opted_out = sorted(set(customer.opted_out or ()) - set(channels))


def is_opted_out(customer: Customer, channel: str) -> bool:
    return channel in set(customer.opted_out or ())
