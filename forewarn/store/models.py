"""The tables. Everything that happens is a row: readings, alert changes, ticket events,
notifications and their attempts. The console, the KPIs and "why did I get this?" read them.

Uniqueness that the domain promises is enforced here, not in Python:

* ``alerts.open_fingerprint`` is the fingerprint while the alert is open and NULL once it
  is resolved, so at most one open alert exists per rule + subject;
* ``tickets.open_fingerprint`` likewise gives one open ticket per fault episode;
* ``notifications.dedupe_key`` makes a ticket event notify each recipient once per channel;
* ``readings`` are unique per device, metric and device timestamp, so an MQTT redelivery
  (DUP) stores nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned as timezone-aware UTC on every database.

    SQLite has no time zone type; without this a naive value read back would compare
    wrongly against an aware ``now``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_time(moment: datetime) -> str:
    """The text :class:`UtcDateTime` stores on SQLite for ``moment`` (naive UTC), for
    statements that go to the driver directly."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def postgresql_text_array(values: list[str]) -> str:
    """``values`` as a PostgreSQL array literal: psycopg adapts a Python list element by
    element in Python, several times slower for a batch (docs/benchmarks.md)."""
    joined = '","'.join(values)
    # Ids and metric names never hold a quote or a backslash (the gate's patterns), so
    # the quotes around each element (which keep a device called "null" from reading as
    # NULL) are all they need; anything else takes the slow, escaping path.
    if "\\" in joined or joined.count('"') != 2 * (len(values) - 1):
        return "{" + ",".join([postgresql_quoted(v) for v in values]) + "}"
    return '{"' + joined + '"}'


def postgresql_quoted(text: str | None) -> str:
    """One element of a PostgreSQL array literal."""
    if text is None:
        return "NULL"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    channels: Mapped[list[Any]] = mapped_column(default=list)
    quiet_hours: Mapped[str | None] = mapped_column(String(16))
    opted_out: Mapped[list[Any]] = mapped_column(default=list)
    """Channels the customer said STOP to."""


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    address: Mapped[str] = mapped_column(Text, default="")
    region: Mapped[str] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    model: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(128), default="")
    registered_at: Mapped[datetime]
    """Offline timers for a device that never spoke run from here."""
    last_seen_at: Mapped[datetime | None] = mapped_column(index=True)
    """Device time of the newest fresh reading (drives offline monitors)."""
    last_received_at: Mapped[datetime | None]


class Technician(Base):
    __tablename__ = "technicians"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    skills: Mapped[list[Any]] = mapped_column(default=list)
    regions: Mapped[list[Any]] = mapped_column(default=list)
    max_jobs: Mapped[int] = mapped_column(Integer, default=3)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    channels: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    shifts: Mapped[list[Any]] = mapped_column(default=list)
    """Working hours: ``[{"days": ["mon", ...], "hours": "08:00-17:00"}]``; empty = always."""
    days_off: Mapped[list[Any]] = mapped_column(default=list)
    """ISO dates (local to the technician) with no shift."""
    radius_km: Mapped[float | None] = mapped_column(Float)
    """Also serves sites within this distance of home base, whatever their region."""


class Reading(Base):
    """On PostgreSQL the table is partitioned by range on ``ts`` and its primary key is
    ``(id, ts)`` (migration 0020, forewarn.store.retention); on SQLite ``ts`` is indexed."""

    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint("device_id", "metric", "ts", name="uq_readings_device_metric_ts"),
    )
    # ``late`` comes from its server default; not fetching it back after an insert keeps
    # the ORM working against a database migrated only part of the way (0007).
    __mapper_args__ = {"eager_defaults": False}
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    """The device's own timestamp (event time)."""
    value: Mapped[float | None] = mapped_column(Float)
    code: Mapped[str | None] = mapped_column(String(64))
    """Fault/status code, for the ``status`` metric."""
    received_at: Mapped[datetime]
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    """Retained, replayed or too old: stored for history, never fires or clears a rule."""
    late: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """Arrived after readings later than it were judged (beyond ``alerting.lateness``):
    stored for history, never fires or clears a rule."""


class Quarantine(Base):
    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(32))
    """``mqtt``, ``feed:<name>``, ``webhook:<name>``."""
    origin: Mapped[str] = mapped_column(Text)
    """Topic, file and line, or URL the input came from."""
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    """The input as received (truncated to the configured maximum)."""
    reason: Mapped[str] = mapped_column(Text)


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(300), index=True)
    open_fingerprint: Mapped[str | None] = mapped_column(String(300), unique=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    rule_version: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(128), index=True)
    """The device (or order) the alert is about."""
    state: Mapped[str] = mapped_column(String(16))
    """pending, firing or resolved."""
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    suggested_fix: Mapped[str] = mapped_column(Text, default="")
    pending_since: Mapped[datetime]
    firing_since: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    last_value: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # The lifecycle beyond pending/firing/resolved (forewarn.monitors.lifecycle, migration 0003).
    last_ts: Mapped[datetime | None]
    """Event time of the last reading that moved this alert; older readings are ignored."""
    breaches: Mapped[int] = mapped_column(Integer, default=0)
    """Consecutive readings beyond the level so far (N-in-a-row rules)."""
    clearing_since: Mapped[datetime | None]
    """Since when the value has been at the clear level (rules with ``clear_for``)."""
    condition: Mapped[str | None] = mapped_column(String(16))
    """While ``flapping``: what the rule currently says (pending, firing or clear)."""
    condition_since: Mapped[datetime | None]
    """While ``flapping``: when ``condition`` last changed (it settles from here)."""
    notified_at: Mapped[datetime | None]
    """When ticketing was told it fired; NULL while silenced, inhibited or flapping."""
    suppressed_by: Mapped[str | None] = mapped_column(String(300))
    """Why it was not announced: ``silence:<id>``, ``inhibited:<alert>``, ``flapping`` or
    ``work_order:<ticket>`` (attached to the ticket being worked, nobody notified)."""
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))


class AlertEvent(Base):
    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    rule_version: Mapped[str] = mapped_column(String(64))
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The readings and levels that decided this change."""


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``repair`` (a device) or ``delay`` (an order)."""
    fingerprint: Mapped[str] = mapped_column(String(300), index=True)
    open_fingerprint: Mapped[str | None] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(String(128), index=True)
    site_id: Mapped[str | None] = mapped_column(String(128))
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    technician_id: Mapped[str | None] = mapped_column(ForeignKey("technicians.id"), index=True)
    fault: Mapped[str] = mapped_column(Text, default="")
    suggested_fix: Mapped[str] = mapped_column(Text, default="")
    dispatch: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Why this technician: the candidates, their scores and who was excluded and why."""
    alert_count: Mapped[int] = mapped_column(Integer, default=1)
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sla_due_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    severity: Mapped[str] = mapped_column(String(16), default="major")
    """The most severe alert attached so far; drives priority, SLA and escalation."""
    rule_id: Mapped[str | None] = mapped_column(String(128), index=True)
    """The rule whose alert opened the ticket (closure codes are counted per rule)."""
    closure_code: Mapped[str | None] = mapped_column(String(32))
    """fixed, no_fault_found, customer_cause, parts_needed, cleared_before_visit, cancelled."""
    resolution_note: Mapped[str] = mapped_column(Text, default="")
    repeat_visits: Mapped[int] = mapped_column(Integer, default=0)
    """How often the fault came back within the reopen window and reopened this ticket."""
    previous_ticket_id: Mapped[int | None] = mapped_column(Integer)
    """The earlier ticket of the same fault, when it recurred after the reopen window."""
    ack_due_at: Mapped[datetime | None] = mapped_column(index=True)
    """When the escalation job acts if nobody has accepted; NULL once someone has."""
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)
    """0 = first technician; 1.. = handed on after no ACK; the supervisor comes last."""
    passed_over: Mapped[list[Any]] = mapped_column(default=list)
    """Technicians who declined this job or let it time out; never offered it again."""
    accepted_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
    """When its alerts cleared before anyone started work (the auto-close grace runs from here)."""


class TicketEvent(Base):
    __tablename__ = "ticket_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(32))
    """opened, alert_attached, assigned, queued_for_dispatcher, status_changed, ..."""
    actor: Mapped[str] = mapped_column(String(128))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Notification(Base):
    """The outbox: one row per message to one recipient on one channel."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at"),
        # Rows whose personal data the retention job has still to erase (migration 0020).
        Index(
            "ix_notifications_unscrubbed",
            "created_at",
            sqlite_where=text("address <> ''"),
            postgresql_where=text("address <> ''"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    """Template name: ``work_order``, ``fault_notice``, ..."""
    recipient_role: Mapped[str] = mapped_column(String(16))
    """``customer``, ``technician`` or ``dispatcher``."""
    recipient_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))
    """``sms`` or ``email``."""
    address: Mapped[str] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(16))
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Everything the template needs, frozen at the time of the event."""
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    """queued -> sending -> sent -> delivered | undelivered | bounced; or failed."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(128), index=True)
    body: Mapped[str | None] = mapped_column(Text)
    """The rendered text as sent (for SMS, the message; for email, the plain-text part)."""
    subject: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    fallback_of: Mapped[int | None] = mapped_column(Integer)
    """The notification this one replaces after a permanent failure."""
    merged_into: Mapped[int | None] = mapped_column(Integer, index=True)
    """The notification that carried this one's content in one merged message."""
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    at: Mapped[datetime]
    provider: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    """sent, transient or permanent."""
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
