"""Taking mapped records into the store: idempotent upserts, quarantine, then the rules.

Every adapter (folder, HTTP, webhook, replay) ends here. A record identical to what the
store already holds changes nothing (the order's ``content_hash``); a shipment event is
stored once however often it is re-sent. Customers named by the feed are created or updated
from its contact fields, except those the config defines (the config wins for them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forewarn.config.schema import MILESTONES, FeedSettings, Settings
from forewarn.feeds.mapping import OrderRecord, RowProblem, map_record
from forewarn.feeds.readers import Numbered, Unreadable
from forewarn.feeds.watch import OrderWatch
from forewarn.store.models import Customer, Quarantine
from forewarn.store.orders import Order, ShipmentEvent

log = logging.getLogger(__name__)

MAX_QUARANTINED_BYTES = 4096


@dataclass
class IntakeCount:
    """What one batch did."""

    rows: int = 0
    accepted: int = 0
    unchanged: int = 0
    quarantined: int = 0
    problems: list[str] = field(default_factory=list)
    """The first few quarantine reasons, for logs and responses."""

    def add(self, other: IntakeCount) -> None:
        self.rows += other.rows
        self.accepted += other.accepted
        self.unchanged += other.unchanged
        self.quarantined += other.quarantined
        self.problems.extend(other.problems[: max(0, 10 - len(self.problems))])


class Intake:
    """Maps, quarantines and upserts feed records, and runs the rules on what changed."""

    def __init__(self, settings: Settings, watch: OrderWatch) -> None:
        self._settings = settings
        self._watch = watch
        self._configured = {c.id for c in settings.customers}
        self._feeds = {f.name: f for f in settings.feeds}

    @property
    def watch(self) -> OrderWatch:
        return self._watch

    def feed(self, name: str) -> FeedSettings:
        return self._feeds[name]

    def take(
        self,
        session: Session,
        feed: FeedSettings,
        items: Iterable[Numbered | Unreadable],
        origin: str,
        now: datetime,
    ) -> IntakeCount:
        """Map and store ``items`` (numbered records from ``origin``) at ``now``."""
        count = IntakeCount()
        for item in items:
            count.rows += 1
            if isinstance(item, Unreadable):
                self._quarantine(session, feed, f"{origin}:{item.line}", item.raw, item.reason, now)
                count.quarantined += 1
                _note(count, f"line {item.line}: {item.reason}")
                continue
            try:
                record = map_record(feed.mapping, item.record, self._settings.phone_region)
            except RowProblem as exc:
                self._quarantine(session, feed, f"{origin}:{item.line}", item.raw, str(exc), now)
                count.quarantined += 1
                _note(count, f"line {item.line}: {exc}")
                continue
            if self.upsert(session, feed.name, record, now):
                count.accepted += 1
                for problem in record.problems:
                    # Kept for inspection like a rejected row, but the order was taken.
                    where = f"{origin}:{item.line}"
                    self._quarantine(session, feed, where, item.raw, problem, now)
                    _note(count, f"line {item.line}: {problem}")
            else:
                count.unchanged += 1
        return count

    def upsert(self, session: Session, feed: str, record: OrderRecord, now: datetime) -> bool:
        """Store ``record`` and evaluate the order; ``False`` if it changed nothing."""
        digest = record.content_hash()
        order = session.get(Order, record.order_id)
        if order is not None and order.content_hash == digest:
            return False
        if record.contact is not None:
            self._customer(session, record)
        if order is None:
            order = Order(
                id=record.order_id,
                feed=feed,
                status="open",
                first_seen_at=now,
                content_hash=digest,
            )
            session.add(order)
        order.content_hash = digest
        order.updated_at = now
        if record.contact is not None:
            order.customer_id = record.contact.customer_id
        for attribute in ("carrier", "region"):
            value = getattr(record, attribute)
            if value is not None:
                setattr(order, attribute, value[:64])
        if record.promised is not None:
            order.promised_at = record.promised
        if record.source_status is not None:
            order.source_status = record.source_status[:64]
        for milestone, at in record.milestones.items():
            self._milestone(order, milestone, at)
        for event in record.events:
            self._event(session, feed, order, event.meaning, event.code, event.at, now)
        if record.exception_code is not None:
            if record.exception_code:
                if order.exception_code != record.exception_code:
                    order.exception_code = record.exception_code[:64]
                    order.exception_at = now
            else:
                order.exception_code = None
                order.exception_at = None
        if record.status == "canceled" and order.canceled_at is None:
            order.canceled_at = now
        elif record.status == "delivered" and order.delivered_at is None:
            # The source says delivered but gives no time: it was by now at the latest.
            order.delivered_at = now
        session.flush()
        self._watch.evaluate(session, order, now)
        return True

    def _milestone(self, order: Order, milestone: str, at: datetime) -> None:
        column = f"{milestone}_at"
        current = getattr(order, column)
        if current is None or at < current:
            setattr(order, column, at)  # the first scan of a milestone is the milestone
        if (
            order.exception_at is not None
            and at > order.exception_at
            and MILESTONES.index(milestone) >= MILESTONES.index("in_transit")
        ):
            # The carrier moved the parcel on after the exception: it is cleared.
            order.exception_code = None
            order.exception_at = None

    def _event(
        self,
        session: Session,
        feed: str,
        order: Order,
        meaning: str,
        code: str,
        at: datetime,
        now: datetime,
    ) -> None:
        exists = session.scalar(
            select(ShipmentEvent.id).where(
                ShipmentEvent.order_id == order.id,
                ShipmentEvent.meaning == meaning,
                ShipmentEvent.code == code,
                ShipmentEvent.at == at,
            )
        )
        if exists is not None:
            return
        try:
            with session.begin_nested():
                session.add(
                    ShipmentEvent(
                        order_id=order.id,
                        meaning=meaning,
                        code=code,
                        at=at,
                        received_at=now,
                        feed=feed,
                    )
                )
                session.flush()
        except IntegrityError:
            return  # a concurrent delivery of the same event stored it first
        if meaning in MILESTONES:
            self._milestone(order, meaning, at)
        elif meaning == "canceled":
            if order.canceled_at is None or at < order.canceled_at:
                order.canceled_at = at
        elif meaning == "exception":
            if order.exception_at is None or at >= order.exception_at:
                order.exception_code = code[:64]
                order.exception_at = at
        elif meaning == "exception_cleared" and (
            order.exception_at is not None and at >= order.exception_at
        ):
            order.exception_code = None
            order.exception_at = None

    def _customer(self, session: Session, record: OrderRecord) -> None:
        contact = record.contact
        assert contact is not None
        if contact.customer_id in self._configured:
            return
        customer = session.get(Customer, contact.customer_id)
        delays = self._settings.delays
        if customer is None:
            customer = Customer(
                id=contact.customer_id,
                name=contact.name or "",
                locale=contact.locale or delays.default_locale,
                timezone=delays.timezone,
                channels=["sms", "email"],
                opted_out=[],
            )
            session.add(customer)
        if contact.name:
            customer.name = contact.name[:200]
        if contact.phone:
            customer.phone = contact.phone
        if contact.email:
            customer.email = contact.email[:254]
        if contact.locale:
            customer.locale = contact.locale[:16]
        session.flush()

    def _quarantine(
        self,
        session: Session,
        feed: FeedSettings,
        origin: str,
        raw: bytes,
        reason: str,
        now: datetime,
    ) -> None:
        session.add(
            Quarantine(
                received_at=now,
                source=f"feed:{feed.name}"[:32],
                origin=origin,
                payload=raw[:MAX_QUARANTINED_BYTES],
                reason=reason,
            )
        )


def _note(count: IntakeCount, problem: str) -> None:
    if len(count.problems) < 10:
        count.problems.append(problem)
