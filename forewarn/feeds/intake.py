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

from sqlalchemy.orm import Session

from forewarn.config.schema import FeedSettings, Settings
from forewarn.feeds.mapping import OrderRecord, RowProblem, map_record
from forewarn.feeds.merge import feed_customer, merge_order
from forewarn.feeds.readers import Numbered, Unreadable
from forewarn.feeds.watch import OrderWatch
from forewarn.ports import TicketStores
from forewarn.store.feeds import quarantine
from forewarn.store.tickets import SqlTicketStores

log = logging.getLogger(__name__)


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
        return self.take_record(SqlTicketStores(session), feed, record, now)

    def take_record(
        self, stores: TicketStores, feed: str, record: OrderRecord, now: datetime
    ) -> bool:
        """:meth:`upsert` in any unit of work (the feed replay's is in memory)."""
        current = stores.orders.get(record.order_id)
        if current is not None and current.content_hash == record.content_hash():
            return False
        contact = record.contact
        if contact is not None and contact.customer_id not in self._configured:
            delays = self._settings.delays
            known = stores.contacts.customer(contact.customer_id)
            stores.contacts.save_customer(
                feed_customer(known, contact, delays.default_locale, delays.timezone)
            )
        fresh = [e for e in record.events if stores.orders.add_event(record.order_id, feed, e, now)]
        order = merge_order(current, feed, record, fresh, now)
        stores.orders.save(self._watch.evaluate(stores, order, now))
        return True

    def _quarantine(
        self,
        session: Session,
        feed: FeedSettings,
        origin: str,
        raw: bytes,
        reason: str,
        now: datetime,
    ) -> None:
        quarantine(session, feed.name, origin, raw, reason, now)


def _note(count: IntakeCount, problem: str) -> None:
    if len(count.problems) < 10:
        count.problems.append(problem)
