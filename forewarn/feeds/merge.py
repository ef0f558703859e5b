"""What one feed record does to the order it names, and to its customer: pure.

The stored order (or none) and a mapped record -> the order as it is now. The first scan of
a milestone is the milestone; a later milestone from ``in_transit`` on clears a standing
carrier exception; a shipment event counts only the first time it is stored (the caller
passes the new ones). Live intake and the feed replay both go through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from forewarn.config.schema import MILESTONES
from forewarn.feeds.mapping import Contact, EventRecord, OrderRecord
from forewarn.ports import OrderState, Person

_IN_TRANSIT = MILESTONES.index("in_transit")


def merge_order(
    current: OrderState | None,
    feed: str,
    record: OrderRecord,
    new_events: Sequence[EventRecord],
    now: datetime,
) -> OrderState:
    """``current`` with ``record`` (received at ``now``) applied; ``new_events`` are the
    record's shipment events not stored before."""
    o: dict[str, Any]
    if current is None:
        o = {
            "id": record.order_id,
            "feed": feed,
            "status": "open",
            "first_seen_at": now,
            "customer_id": None,
            "source_status": None,
            "carrier": None,
            "region": None,
            "promised_at": None,
            "canceled_at": None,
            "exception_code": None,
            "exception_at": None,
            "next_check_at": None,
        }
        milestones: dict[str, datetime] = {}
    else:
        o = vars(current).copy()
        milestones = dict(current.milestones)
    o["content_hash"] = record.content_hash()
    o["updated_at"] = now
    if record.contact is not None:
        o["customer_id"] = record.contact.customer_id
    if record.carrier is not None:
        o["carrier"] = record.carrier[:64]
    if record.region is not None:
        o["region"] = record.region[:64]
    if record.promised is not None:
        o["promised_at"] = record.promised
    if record.source_status is not None:
        o["source_status"] = record.source_status[:64]

    def milestone(name: str, at: datetime) -> None:
        known = milestones.get(name)
        if known is None or at < known:
            milestones[name] = at  # the first scan of a milestone is the milestone
        if (
            o["exception_at"] is not None
            and at > o["exception_at"]
            and MILESTONES.index(name) >= _IN_TRANSIT
        ):
            # The carrier moved the parcel on after the exception: it is cleared.
            o["exception_code"] = o["exception_at"] = None

    for name, at in record.milestones.items():
        milestone(name, at)
    for event in new_events:
        if event.meaning in MILESTONES:
            milestone(event.meaning, event.at)
        elif event.meaning == "canceled":
            if o["canceled_at"] is None or event.at < o["canceled_at"]:
                o["canceled_at"] = event.at
        elif event.meaning == "exception":
            if o["exception_at"] is None or event.at >= o["exception_at"]:
                o["exception_code"] = event.code[:64]
                o["exception_at"] = event.at
        elif event.meaning == "exception_cleared" and (
            o["exception_at"] is not None and event.at >= o["exception_at"]
        ):
            o["exception_code"] = o["exception_at"] = None
    if record.exception_code is not None:
        if record.exception_code:
            if o["exception_code"] != record.exception_code:
                o["exception_code"] = record.exception_code[:64]
                o["exception_at"] = now
        else:
            o["exception_code"] = o["exception_at"] = None
    if record.status == "canceled" and o["canceled_at"] is None:
        o["canceled_at"] = now
    elif record.status == "delivered" and "delivered" not in milestones:
        # The source says delivered but gives no time: it was by now at the latest.
        milestones["delivered"] = now
    o["milestones"] = milestones
    return OrderState(**o)


def feed_customer(
    current: Person | None, contact: Contact, default_locale: str, timezone: str
) -> Person:
    """The customer as the feed's contact fields leave them (a new one gets the delay
    settings' locale and time zone)."""
    person = current or Person(
        id=contact.customer_id,
        name=contact.name or "",
        locale=contact.locale or default_locale,
        timezone=timezone,
        channels=("sms", "email"),
        opted_out=(),
    )
    changes: dict[str, Any] = {}
    if contact.name:
        changes["name"] = contact.name[:200]
    if contact.phone:
        changes["phone"] = contact.phone
    if contact.email:
        changes["email"] = contact.email[:254]
    if contact.locale:
        changes["locale"] = contact.locale[:16]
    return Person(**{**vars(person), **changes})
