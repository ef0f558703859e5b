"""Order and shipping feeds, their field mapping, order rules and delay cases."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import (
    Field,
    model_validator,
)

from forewarn.config.schema.base import (
    Duration,
    Identifier,
    Model,
    PhoneRegion,
    Severity,
    TimeZoneName,
)

Milestone = Literal[
    "placed", "approved", "handed_to_carrier", "in_transit", "out_for_delivery", "delivered"
]
"""Order milestones in the order they normally happen."""


MILESTONES: tuple[Milestone, ...] = (
    "placed",
    "approved",
    "handed_to_carrier",
    "in_transit",
    "out_for_delivery",
    "delivered",
)


OrderStatus = Literal["open", "delivered", "canceled"]


EventMeaning = Literal[
    "placed",
    "approved",
    "handed_to_carrier",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "canceled",
    "exception",
    "exception_cleared",
]


class FeedMapping(Model):
    """How a feed's columns (CSV header names or JSON keys) become orders and shipment events.

    Every value names a column of the source; leave a key out when the source lacks it.
    """

    order_id: str
    """Column with the order id (required on every row)."""
    customer_id: str | None = None
    """Column with the customer id; without it the order has no customer to notify."""
    customer_name: str | None = None
    customer_phone: str | None = None
    """Column with the customer's mobile number; creates or updates the customer. Numbers
    without ``+country`` are read in ``phone_region``; an invalid one is dropped (the order
    is kept) and recorded in quarantine with the reason."""
    phone_region: PhoneRegion | None = None
    """Region (ISO 3166 code such as ``BR``) for this feed's numbers written without
    ``+country``; else the top-level ``phone_region``."""
    customer_email: str | None = None
    customer_locale: str | None = None
    """Column with the customer's language; else ``delays.default_locale``."""
    status: str | None = None
    """Column with the order's status in the source's own words (see ``status_values``)."""
    status_values: dict[str, OrderStatus] = Field(default_factory=dict)
    """Source status -> ``open``, ``delivered`` or ``canceled``; unlisted values mean open."""
    promised: str | None = None
    """Column with the promised / estimated delivery date."""
    carrier: str | None = None
    """Column with the carrier (groups the learned transit times)."""
    region: str | None = None
    """Column with the destination region, state or postcode area (groups transit times)."""
    milestones: dict[Milestone, str] = Field(default_factory=dict)
    """Milestone -> column holding when it happened (one row per order)."""
    exception_code: str | None = None
    """Column with a carrier exception code (empty: none)."""
    event_code: str | None = None
    """For feeds with one row per shipment event: the column with the event code."""
    event_time: str | None = None
    """For event feeds: the column with when the event happened."""
    event_codes: dict[str, EventMeaning] = Field(default_factory=dict)
    """Event code -> what it means; an unlisted code is an exception (an exception code the
    carrier invents is still a problem) unless ``unknown_events`` says otherwise."""
    unknown_events: Literal["exception", "ignore", "quarantine"] = "exception"
    timestamp_formats: tuple[str, ...] = ()
    """``strptime`` formats tried in order (e.g. ``%Y-%m-%d %H:%M:%S``); ISO 8601 and Unix
    seconds are always accepted."""
    timezone: TimeZoneName = "UTC"
    """Zone of timestamps written without an offset (e.g. ``America/Sao_Paulo``)."""
    promised_date_only_end_of_day: bool = True
    """A promised date with no time of day (or exactly midnight) means the end of that day."""

    @model_validator(mode="after")
    def _event_columns(self) -> FeedMapping:
        if (self.event_code is None) != (self.event_time is None):
            raise ValueError("set both 'event_code' and 'event_time' (an event feed) or neither")
        return self


class FeedSettings(Model):
    """One source of orders and shipment events."""

    name: Identifier
    """Name of the feed; bad rows are quarantined under ``feed:<name>``."""
    kind: Literal["folder", "http", "webhook"]
    """``folder``: a watched folder of CSV/JSON files; ``http``: poll a JSON endpoint;
    ``webhook``: events pushed to ``POST /webhooks/feeds/<name>``."""
    path: str | None = None
    """Folder: the directory to watch."""
    pattern: str = "*"
    """Folder: which files (glob), e.g. ``orders_*.csv``. ``.csv``, ``.json`` and
    ``.jsonl`` are read; other files are ignored."""
    url: str | None = None
    """HTTP: the JSON endpoint (a list of records, or an object holding one)."""
    records_key: str | None = None
    """JSON: the key of the list of records when the document is an object
    (dotted for nested keys, e.g. ``data.orders``)."""
    interval: Duration = timedelta(minutes=5)
    """Folder and HTTP: how often to look for new data."""
    max_backoff: Duration = timedelta(hours=1)
    """HTTP: longest wait between attempts after repeated errors."""
    timeout: Duration = timedelta(seconds=30)
    """HTTP: request timeout."""
    auth_header: str = "Authorization"
    """HTTP: header carrying the credential."""
    auth_env: str | None = None
    """HTTP: environment variable holding the header's value (e.g. ``Bearer abc``);
    webhook: the variable holding the shared secret (see ``webhook_auth``)."""
    webhook_auth: Literal["bearer", "hmac"] = "bearer"
    """Webhook: ``bearer``: callers send ``Authorization: Bearer <secret>``; ``hmac``: callers
    sign each body, ``X-Forewarn-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." +
    body>``, and a timestamp outside ``notifications.webhook_max_age`` is refused."""
    mapping: FeedMapping
    """How the source's fields become orders."""

    @model_validator(mode="after")
    def _kind_needs(self) -> FeedSettings:
        if self.kind == "folder" and not self.path:
            raise ValueError("a folder feed needs 'path'")
        if self.kind == "http" and not self.url:
            raise ValueError("an http feed needs 'url'")
        if self.kind == "webhook" and not self.auth_env:
            raise ValueError("a webhook feed needs 'auth_env' (the shared secret's variable)")
        return self


class OrderScope(Model):
    """Which orders an order rule applies to; empty means every order."""

    carriers: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()


class OrderRuleBase(Model):
    """Keys common to every order rule."""

    id: Identifier
    """Unique name of the rule; it appears in alerts, cases and the report."""
    description: str = ""
    severity: Severity = "major"
    applies_to: OrderScope = OrderScope()
    notify_customer: bool = True
    """Tell the customer when this rule opens the case (else the case is for ops only)."""


class MilestoneOverdueRule(OrderRuleBase):
    """A milestone not reached within a time of an earlier one."""

    kind: Literal["milestone_overdue"]
    notify_customer: bool = False
    """Tell the customer when this rule opens the case. Default: no: an order late in the
    warehouse often still arrives on time, so it is an ops case; a ``promise_at_risk`` rule
    tells the customer when the promise itself is at risk (docs/delays.md)."""
    milestone: Milestone
    """The milestone that should have happened, e.g. ``handed_to_carrier``."""
    after: Milestone
    """The earlier milestone the clock starts at, e.g. ``approved``."""
    within: Duration
    """E.g. ``48h``."""

    @model_validator(mode="after")
    def _order(self) -> MilestoneOverdueRule:
        if MILESTONES.index(self.after) >= MILESTONES.index(self.milestone):
            raise ValueError(f"'after' ({self.after}) must come before {self.milestone}")
        return self


class PromiseAtRiskRule(OrderRuleBase):
    """The time left before the promised date is shorter than the transit time learned from
    delivered history (per carrier and region), given how long the order has already taken."""

    kind: Literal["promise_at_risk"]
    probability: float | None = Field(None, gt=0, lt=1)
    """Fire when the learned probability that the order misses its promise (plus
    ``margin``) is at least this, e.g. ``0.3`` for an ops case, ``0.7`` to tell the
    customer. Choose it from ``forewarn feeds report``'s trade-off table. Set, it replaces
    ``percentile`` (which then only shapes the new estimate in messages)."""
    percentile: int = Field(80, ge=50, le=99)
    """Which learned percentile of the remaining time counts as "typical": higher is more
    pessimistic (warns earlier and more often), lower warns only clearly slow orders.
    Without ``probability``, percentile ``p`` warns at a risk of about ``1 - p/100``."""
    margin: Duration = timedelta(0)
    """Warn only if the estimate misses the promise by more than this."""
    min_samples: int = Field(30, ge=5)
    """Delivered orders needed before a carrier/region's own times are used (else the next
    wider group: carrier, region, then everything)."""


class CarrierExceptionRule(OrderRuleBase):
    """A carrier exception (damaged, address problem, held at customs...)."""

    kind: Literal["carrier_exception"]
    codes: dict[str, str] = Field(default_factory=dict)
    """Exception code -> description for messages; empty: every exception code."""


class PromisePassedRule(OrderRuleBase):
    """The promised date passed without delivery."""

    kind: Literal["promise_passed"]
    grace: Duration = timedelta(0)
    """Fire this long after the promised moment."""


OrderRuleSettings = Annotated[
    MilestoneOverdueRule | PromiseAtRiskRule | CarrierExceptionRule | PromisePassedRule,
    Field(discriminator="kind"),
]


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class DelaySettings(Model):
    """Order rules, delay cases and their customer notices."""

    rules: tuple[OrderRuleSettings, ...] = ()
    """Order rules; each has a ``kind``: milestone_overdue, promise_at_risk,
    carrier_exception or promise_passed."""
    merge_window: Duration = timedelta(minutes=10)
    """Late orders of one customer found within this window share one message."""
    transit_history: Duration = timedelta(days=90)
    """Delivered orders from this far back teach the transit times."""
    stats_interval: Duration = timedelta(days=1)
    """How often the transit-time percentiles are relearned."""
    sweep_interval: Duration = timedelta(minutes=5)
    """How often orders whose next check is due are evaluated."""
    working_days: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    """Days ops work: an exception not cleared by the end of the next one goes to a person."""
    holidays: tuple[date, ...] = ()
    """Dates that are not working days."""
    timezone: TimeZoneName = "UTC"
    """Zone of the working days and of dates in messages when the customer has none."""
    escalate_after_promise: Duration = timedelta(days=3)
    """A case still undelivered this long after the promise goes to a person."""
    default_locale: str = "en"
    """Language for customers created from a feed without a locale column."""
    survey_url: str | None = None
    """Link to the satisfaction survey in the delivered-after-delay message."""
