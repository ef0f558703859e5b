"""The order tables: orders and their shipment events, feed bookkeeping, learned transit
times and delay cases. They share :class:`forewarn.store.models.Base`'s metadata.

Idempotency is enforced here: an order is one row per id (re-reading a feed updates it in
place), a shipment event is unique per order, meaning, code and time, and a feed file is
processed once per content hash. A delay case belongs to one ``tickets`` row of kind
``delay`` whose ``open_fingerprint`` (``delay:<order>``) keeps one open case per order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from forewarn.config.schema import MILESTONES
from forewarn.feeds.mapping import EventRecord
from forewarn.monitors.transit import TransitKey, TransitTimes
from forewarn.ports import DelayCaseRecord, OrderState
from forewarn.store.models import Base


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_due", "status", "next_check_at"),)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    """The source's order id."""
    feed: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16))
    """open, delivered or canceled (as of the latest data, event time)."""
    source_status: Mapped[str | None] = mapped_column(String(64))
    """The status in the source's own words."""
    carrier: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(64))
    promised_at: Mapped[datetime | None]
    placed_at: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]
    handed_to_carrier_at: Mapped[datetime | None]
    in_transit_at: Mapped[datetime | None]
    out_for_delivery_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None] = mapped_column(index=True)
    canceled_at: Mapped[datetime | None]
    exception_code: Mapped[str | None] = mapped_column(String(64))
    """The carrier exception still standing (cleared by a later milestone or event)."""
    exception_at: Mapped[datetime | None]
    first_seen_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    next_check_at: Mapped[datetime | None]
    """When the rules must look again if no new data comes (a deadline); NULL: on data only."""
    content_hash: Mapped[str] = mapped_column(String(64))
    """Hash of the mapped record: the same row read again changes nothing."""


class ShipmentEvent(Base):
    __tablename__ = "shipment_events"
    __table_args__ = (
        UniqueConstraint("order_id", "meaning", "code", "at", name="uq_shipment_events_event"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(128), index=True)
    meaning: Mapped[str] = mapped_column(String(32))
    """A milestone, ``canceled``, ``exception`` or ``exception_cleared``."""
    code: Mapped[str] = mapped_column(String(64), default="")
    """The source's event or exception code."""
    at: Mapped[datetime]
    """When it happened (event time)."""
    received_at: Mapped[datetime]
    feed: Mapped[str] = mapped_column(String(64))


class FeedFile(Base):
    """A file of a watched folder that was processed (once per content)."""

    __tablename__ = "feed_files"
    __table_args__ = (UniqueConstraint("feed", "path", "sha256", name="uq_feed_files_content"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feed: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    processed_at: Mapped[datetime]
    rows: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    """Why the whole file could not be read (not valid JSON, not UTF-8...)."""


class FeedCursor(Base):
    """Where an HTTP feed stands: validators for conditional requests and its backoff."""

    __tablename__ = "feed_cursors"
    feed: Mapped[str] = mapped_column(String(64), primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(256))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    last_polled_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    next_poll_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class TransitStat(Base):
    """Learned time from one milestone to delivery for a carrier/region group."""

    __tablename__ = "transit_stats"
    __table_args__ = (
        UniqueConstraint("carrier", "region", "from_milestone", name="uq_transit_stats_group"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    carrier: Mapped[str] = mapped_column(String(64))
    """The carrier, or ``*`` for every carrier."""
    region: Mapped[str] = mapped_column(String(64))
    """The region, or ``*`` for every region."""
    from_milestone: Mapped[str] = mapped_column(String(32))
    samples: Mapped[int] = mapped_column(Integer)
    p50_hours: Mapped[float] = mapped_column(Float)
    p80_hours: Mapped[float] = mapped_column(Float)
    p95_hours: Mapped[float] = mapped_column(Float)
    percentiles: Mapped[list[Any]] = mapped_column()
    """p1..p99 in seconds."""
    learned_at: Mapped[datetime]


class DelayCase(Base):
    """The order side of a ``delay`` ticket: which order, why, what the customer was told."""

    __tablename__ = "delay_cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    order_id: Mapped[str] = mapped_column(String(128), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    first_rule: Mapped[str] = mapped_column(String(128))
    """The rule that opened the case."""
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    """Every rule that held, with when and why."""
    promised_at: Mapped[datetime | None]
    estimate_at: Mapped[datetime | None]
    """The new expected delivery, when one could be estimated."""
    opened_at: Mapped[datetime]
    notify_customer: Mapped[bool] = mapped_column(default=True)
    pending_notice: Mapped[str | None] = mapped_column(String(32))
    """``delay_notice`` or ``delivered_after_delay`` waiting for the merge window."""
    notice_due_at: Mapped[datetime | None] = mapped_column(index=True)
    notice_status: Mapped[str | None] = mapped_column(String(16))
    """What became of the delay notice: queued, no_contact, not_needed."""
    warned_at: Mapped[datetime | None]
    """When the customer's delay notice was queued (or would have been, with no contact)."""
    followed_up_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    escalation_reason: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(16))
    """delivered, canceled, or by_person (a person resolved, closed or cancelled the case)."""


# -- delay cases as values (the interface is documented in forewarn.ports) ----------------

_CASE_FIELDS = tuple(f.name for f in fields(DelayCaseRecord) if f.name != "id")


def _case(row: DelayCase) -> DelayCaseRecord:
    values: dict[str, Any] = {name: getattr(row, name) for name in _CASE_FIELDS}
    values["reasons"] = tuple(dict(r) for r in row.reasons or ())
    return DelayCaseRecord(id=row.id, **values)


def _write(row: DelayCase, case: DelayCaseRecord) -> None:
    for name in _CASE_FIELDS:
        setattr(row, name, getattr(case, name))
    row.reasons = [dict(r) for r in case.reasons]


class SqlDelayCaseStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def of_ticket(self, ticket_id: int) -> DelayCaseRecord | None:
        row = self._session.scalars(
            select(DelayCase).where(DelayCase.ticket_id == ticket_id)
        ).first()
        return None if row is None else _case(row)

    def insert(self, case: DelayCaseRecord) -> DelayCaseRecord:
        row = DelayCase()
        _write(row, case)
        self._session.add(row)
        self._session.flush()
        return _case(row)

    def update(self, case: DelayCaseRecord) -> None:
        row = self._session.get(DelayCase, case.id)
        if row is None:
            raise KeyError(f"delay case {case.id} is not stored")
        _write(row, case)
        self._session.flush()

    def resolved_as(self, order_id: str, resolution: str) -> bool:
        found = self._session.scalar(
            select(DelayCase.id)
            .where(DelayCase.order_id == order_id, DelayCase.resolution == resolution)
            .limit(1)
        )
        return found is not None

    def notice_due(self, customer_id: str, notice: str, other_than: int) -> datetime | None:
        return self._session.scalar(
            select(DelayCase.notice_due_at)
            .where(
                DelayCase.customer_id == customer_id,
                DelayCase.pending_notice == notice,
                DelayCase.id != other_than,
            )
            .order_by(DelayCase.notice_due_at)
            .limit(1)
        )

    def notices_due(self, now: datetime) -> list[DelayCaseRecord]:
        rows = self._session.scalars(
            select(DelayCase)
            .where(DelayCase.pending_notice.is_not(None), DelayCase.notice_due_at <= now)
            .order_by(DelayCase.id)
        )
        return [_case(r) for r in rows]

    def notices_waiting(
        self, customer_id: str, notice: str, due_after: datetime
    ) -> list[DelayCaseRecord]:
        rows = self._session.scalars(
            select(DelayCase)
            .where(
                DelayCase.customer_id == customer_id,
                DelayCase.pending_notice == notice,
                DelayCase.notice_due_at > due_after,
            )
            .order_by(DelayCase.id)
        )
        return [_case(r) for r in rows]

    def next_notice_due(self) -> datetime | None:
        return self._session.scalar(
            select(func.min(DelayCase.notice_due_at)).where(DelayCase.pending_notice.is_not(None))
        )


_MILESTONE_COLUMNS: dict[str, str] = {m: f"{m}_at" for m in MILESTONES}
_ORDER_FIELDS = (
    "feed",
    "status",
    "first_seen_at",
    "updated_at",
    "content_hash",
    "customer_id",
    "source_status",
    "carrier",
    "region",
    "promised_at",
    "canceled_at",
    "exception_code",
    "exception_at",
    "next_check_at",
)


def order_state(row: Order) -> OrderState:
    milestones: dict[str, datetime] = {
        m: at for m, c in _MILESTONE_COLUMNS.items() if (at := getattr(row, c)) is not None
    }
    values: dict[str, Any] = {name: getattr(row, name) for name in _ORDER_FIELDS}
    return OrderState(id=row.id, milestones=milestones, **values)


def _write_order(row: Order, order: OrderState) -> None:
    for name in _ORDER_FIELDS:
        setattr(row, name, getattr(order, name))
    for milestone, column in _MILESTONE_COLUMNS.items():
        setattr(row, column, order.milestones.get(milestone))


class SqlOrderStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def delivered(self, order_ids: Collection[str]) -> dict[str, datetime]:
        rows = self._session.execute(
            select(Order.id, Order.delivered_at).where(
                Order.id.in_(list(order_ids)), Order.delivered_at.is_not(None)
            )
        )
        return {order_id: at for order_id, at in rows if at is not None}

    def get(self, order_id: str) -> OrderState | None:
        row = self._session.get(Order, order_id, with_for_update=True, populate_existing=True)
        return None if row is None else order_state(row)

    def save(self, order: OrderState) -> None:
        row = self._session.get(Order, order.id)
        if row is None:
            row = Order(id=order.id)
            self._session.add(row)
        _write_order(row, order)
        self._session.flush()

    def add_event(self, order_id: str, feed: str, event: EventRecord, now: datetime) -> bool:
        exists = self._session.scalar(
            select(ShipmentEvent.id).where(
                ShipmentEvent.order_id == order_id,
                ShipmentEvent.meaning == event.meaning,
                ShipmentEvent.code == event.code,
                ShipmentEvent.at == event.at,
            )
        )
        if exists is not None:
            return False
        try:
            with self._session.begin_nested():
                self._session.add(
                    ShipmentEvent(
                        order_id=order_id,
                        meaning=event.meaning,
                        code=event.code,
                        at=event.at,
                        received_at=now,
                        feed=feed,
                    )
                )
                self._session.flush()
        except IntegrityError:
            return False  # a concurrent delivery of the same event stored it first
        return True

    def due(self, now: datetime, limit: int) -> list[OrderState]:
        rows = self._session.scalars(
            select(Order)
            .where(Order.status == "open", Order.next_check_at <= now)
            .order_by(Order.next_check_at, Order.id)
            .limit(limit)
        )
        return [order_state(r) for r in rows]

    def next_check(self) -> datetime | None:
        return self._session.scalar(
            select(func.min(Order.next_check_at)).where(Order.status == "open")
        )

    def recheck_open(self, now: datetime) -> None:
        self._session.execute(
            update(Order)
            .where(Order.status == "open")
            .values(next_check_at=now)
            .execution_options(synchronize_session=False)
        )

    def deliveries(self, since: datetime, until: datetime) -> list[OrderState]:
        rows = self._session.scalars(
            select(Order).where(
                Order.delivered_at.is_not(None),
                Order.delivered_at > since,
                Order.delivered_at <= until,
            )
        )
        return [order_state(r) for r in rows]

    def save_transit(self, groups: Mapping[TransitKey, TransitTimes], now: datetime) -> None:
        self._session.execute(delete(TransitStat))
        for (carrier, region, start), times in groups.items():
            self._session.add(
                TransitStat(
                    carrier=carrier,
                    region=region,
                    from_milestone=start,
                    samples=times.samples,
                    p50_hours=times.quantile(50) / 3600,
                    p80_hours=times.quantile(80) / 3600,
                    p95_hours=times.quantile(95) / 3600,
                    percentiles=list(times.percentiles),
                    learned_at=now,
                )
            )
        self._session.flush()

    def transit(self) -> dict[TransitKey, TransitTimes]:
        return {
            (s.carrier, s.region, s.from_milestone): TransitTimes(
                samples=s.samples, percentiles=tuple(float(p) for p in s.percentiles)
            )
            for s in self._session.scalars(select(TransitStat))
        }


def all_orders(session: Session) -> list[OrderState]:
    """Every order, in the order they were first stored (for a replay's report)."""
    return [order_state(r) for r in session.scalars(select(Order))]


def all_cases(session: Session) -> list[DelayCaseRecord]:
    """Every delay case, by id (for a replay's report)."""
    return [_case(r) for r in session.scalars(select(DelayCase).order_by(DelayCase.id))]
