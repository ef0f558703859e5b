"""What the console reads: one frozen model per thing shown, shared by pages and JSON API.

Recipient addresses are masked before they get here (``recipient``); nothing in these
models carries a customer's phone number or email in clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

DeviceState = Literal["reporting", "silent"]


class Resource(BaseModel):
    """Base of every response: immutable once read."""

    model_config = ConfigDict(frozen=True)


class DeviceOut(Resource):
    """A device with its site, when it last reported and how many alerts it has open."""

    id: str
    site_id: str
    site_name: str
    model: str
    kind: str
    last_seen_at: datetime | None
    state: DeviceState
    """``silent`` when nothing arrived within the console's silence window."""
    open_alerts: int


class AlertOut(Resource):
    """An alert: which rule, about what, how bad, since when."""

    id: int
    rule_id: str
    rule_version: str
    subject: str
    state: str
    """pending, firing or resolved."""
    severity: str
    summary: str
    suggested_fix: str
    since: datetime
    """When it started firing, or pending if it has not fired yet."""
    pending_since: datetime
    firing_since: datetime | None
    resolved_at: datetime | None
    last_value: float | None
    ticket_id: int | None
    open: bool = False
    """Still open (pending, firing or flapping): it can be acknowledged."""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    subject_is_device: bool = False
    """The subject is a device (it has a page); else an order."""
    held: str | None = None
    """Why a firing alert has opened no ticket yet, in words ("waiting for confirmation
    by <rule>", "silenced by <silence>", ...); None when it has been handed on."""


class AlertEventOut(Resource):
    """One state change of an alert and the evidence that decided it."""

    id: int
    at: datetime
    from_state: str | None
    to_state: str
    rule_version: str
    evidence: dict[str, Any]


class AlertDetail(AlertOut):
    """An alert with its latest evidence and every state change."""

    evidence: dict[str, Any]
    events: list[AlertEventOut]
    """Oldest first: the story of the alert."""


class TicketOut(Resource):
    """A ticket with the names of its site, customer and technician."""

    id: int
    kind: str
    status: str
    priority: str
    title: str
    device_id: str | None
    site_id: str | None
    site_name: str | None
    customer_id: str | None
    customer_name: str | None
    technician_id: str | None
    technician_name: str | None
    alert_count: int
    opened_at: datetime
    updated_at: datetime
    sla_due_at: datetime | None
    closed_at: datetime | None


class TicketEventOut(Resource):
    """One entry of a ticket's timeline."""

    id: int
    at: datetime
    kind: str
    actor: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any]


class NotificationOut(Resource):
    """One message to one recipient on one channel, and how its delivery went."""

    id: int
    ticket_id: int | None
    event: str
    recipient_role: str
    recipient_id: str
    channel: str
    recipient: str
    """The address, masked (``+35191****678``, ``j***@example.com``)."""
    status: str
    critical: bool
    attempts: int
    provider: str | None
    last_error: str | None
    """The provider's error, with any address it quotes masked."""
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


class NotificationWithBody(NotificationOut):
    """A notification with the text that was sent."""

    subject: str | None
    body: str | None
    """The rendered text as sent."""


class TicketDetail(TicketOut):
    """Everything about one ticket."""

    fault: str
    suggested_fix: str
    dispatch: dict[str, Any]
    """Why this technician: chosen, candidates with scores, excluded with reasons."""
    alerts: list[AlertOut]
    events: list[TicketEventOut]
    """Oldest first."""
    notifications: list[NotificationWithBody]
    """Oldest first."""


class QuarantineOut(Resource):
    """A rejected input and why it was rejected."""

    id: int
    received_at: datetime
    source: str
    origin: str
    reason: str
    size: int
    """Bytes stored."""
    preview: str
    """The start of the payload as text: undecodable bytes and control characters escaped."""


class Page(Resource):
    """Where a list sits in the whole: ``total`` rows match, this is ``offset``..+``limit``."""

    total: int
    offset: int
    limit: int


class DeviceList(Page):
    """A page of devices."""

    items: list[DeviceOut]


class AlertList(Page):
    """A page of alerts."""

    items: list[AlertOut]


class TicketList(Page):
    """A page of tickets."""

    items: list[TicketOut]


class NotificationList(Page):
    """A page of the notification log."""

    items: list[NotificationOut]


class QuarantineList(Page):
    """A page of quarantined inputs."""

    items: list[QuarantineOut]


class Overview(Resource):
    """The dashboard's counts, each one a single grouped query."""

    now: datetime
    silent_after_seconds: float
    devices_total: int
    devices_reporting: int
    devices_silent: int
    alerts_open: dict[str, int]
    """Severity -> open (pending or firing) alerts."""
    alerts_firing: int
    tickets_open: dict[str, int]
    """Status -> open tickets."""
    notifications_24h: dict[str, int]
    """Status -> notifications created in the last 24 hours."""
    quarantined_24h: int
