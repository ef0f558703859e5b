"""The settings schema: every key of ``forewarn.yaml``, typed, frozen and validated.

Each model's field docstrings feed the generated config reference (``docs/config.md``),
so the reference cannot drift from what the loader accepts.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from forewarn.config.durations import parse_duration
from forewarn.phones import REGIONS, InvalidPhone, to_e164


def _duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        return parse_duration(value)
    return value


def _timezone(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an IANA time zone name")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Lisbon)") from exc
    return value


def _phone(value: str, info: ValidationInfo) -> str:
    # The loader passes the file's top-level ``phone_region`` as validation context.
    region = (info.context or {}).get("phone_region")
    try:
        return to_e164(value, region if isinstance(region, str) else None)
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from exc


def _region(value: Any) -> Any:
    if isinstance(value, str) and value.upper() in REGIONS:
        return value.upper()
    raise ValueError(f"{value!r} is not a region code for phone numbers (e.g. PT, BR, US)")


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Phone = Annotated[str, AfterValidator(_phone)]
"""A phone number in any common written form, stored as E.164 (``+351912345678``)."""
PhoneRegion = Annotated[str, BeforeValidator(_region)]
TimeZoneName = Annotated[str, BeforeValidator(_timezone)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
Severity = Literal["info", "minor", "major", "critical"]
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class Model(BaseModel):
    """Base for every settings model: frozen, and unknown keys are errors (typos)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class HoursWindow(Model):
    """A daily window of local time such as ``22:00-07:00`` (may cross midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _HOURS.match(value.strip())
            if not match:
                raise ValueError(f"{value!r} is not a time window like '22:00-07:00'")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            return cls(start=time(h1, m1), end=time(h2, m2))
        return value

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


Hours = Annotated[HoursWindow, BeforeValidator(HoursWindow.parse)]


class DatabaseSettings(Model):
    """The store."""

    url: str = "sqlite:///forewarn.db"
    """SQLAlchemy URL. ``FOREWARN_DATABASE_URL`` overrides it; put passwords there, not here."""
    echo: bool = False
    """Log every SQL statement (debugging only)."""

    @field_validator("url")
    @classmethod
    def _no_password_in_file(cls, value: str) -> str:
        if re.match(r"^[a-z+0-9]+://[^/@]*:[^/@]+@", value):
            raise ValueError(
                "the database URL carries a password; set FOREWARN_DATABASE_URL in the "
                "environment instead"
            )
        return value


class PayloadMapping(Model):
    """How an MQTT message becomes readings."""

    device_id_topic_level: int | None = 1
    """Which topic level (0-based) holds the device id, e.g. 1 for ``devices/<id>/telemetry``.
    Set to null to take it from ``device_id_field``."""
    device_id_field: str | None = None
    """JSON field with the device id, when the topic does not carry it."""
    timestamp_field: str = "ts"
    """JSON field with the device's own timestamp (ISO 8601 or Unix seconds)."""
    metrics: dict[str, str] = Field(default_factory=dict)
    """Metric name -> JSON field. Empty: every numeric top-level field is a metric."""
    status_field: str | None = "fault"
    """JSON field carrying a fault/status code, evaluated by ``fault_code`` monitors."""

    @model_validator(mode="after")
    def _device_id_source(self) -> PayloadMapping:
        if self.device_id_topic_level is None and not self.device_id_field:
            raise ValueError("set device_id_topic_level or device_id_field")
        return self


class BrokerSettings(Model):
    """The MQTT 5 broker (Mosquitto, EMQX, HiveMQ)."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = "forewarn-ingest-1"
    """Stable client id: the broker keeps this session's queue while forewarn is down."""
    topics: tuple[str, ...] = ("devices/+/telemetry",)
    """Topic filters to subscribe to (QoS 1). Use ``$share/forewarn/...`` to scale out."""
    session_expiry: Duration = timedelta(days=1)
    """How long the broker keeps queued messages for this client while it is offline."""
    keepalive: int = Field(30, ge=5)
    """Seconds between MQTT keep-alive pings."""
    username: str | None = None
    password_env: str | None = None
    """Name of the environment variable holding the broker password."""
    payload: PayloadMapping = PayloadMapping()
    """How a message's topic and JSON fields become readings."""


class IngestSettings(Model):
    """Batching and the data-quality gate."""

    batch_size: int = Field(5000, ge=1, le=50_000)
    """Readings committed per transaction (acks go out after the commit)."""
    batch_interval: Duration = timedelta(milliseconds=200)
    """Longest a reading waits before its batch is committed."""
    max_queue: int = Field(20_000, ge=100)
    """Bound of the in-process queue between the MQTT thread and the writer."""
    max_payload_bytes: int = Field(64 * 1024, ge=64)
    """Larger messages are quarantined."""
    max_future_skew: Duration = timedelta(minutes=5)
    """Readings stamped further in the future than this are quarantined."""
    max_age: Duration = timedelta(hours=1)
    """Readings older than this (at receipt) are stored as stale: they never fire or clear."""
    unknown_devices: Literal["quarantine", "accept"] = "quarantine"
    """What to do with messages from devices not in the config."""
    max_metrics_per_message: int = Field(100, ge=1, le=10_000)
    """With an empty ``metrics`` mapping every numeric field is a metric: a message with
    more numeric fields than this is quarantined instead of creating them all."""
    max_metrics_per_device: int = Field(500, ge=1, le=100_000)
    """Distinct metric names one device may have (counted per ingest process since its
    start); a message that would add more is quarantined with the names it tried."""


class Location(Model):
    """Coordinates in decimal degrees."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class CustomerSettings(Model):
    """A customer who receives proactive notices."""

    id: Identifier
    name: str
    phone: Phone | None = None
    """Mobile number for SMS, e.g. ``+351912345678`` (or ``912 345 678`` with
    ``phone_region: PT``); stored as E.164."""
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    locale: str = "en"
    """Language of messages (``pt-BR`` falls back to ``pt`` then the default)."""
    timezone: TimeZoneName = "UTC"
    channels: tuple[Literal["sms", "email"], ...] = ("sms", "email")
    """Channels in order of preference."""
    quiet_hours: Hours | None = None
    """Local hours with no non-critical messages, e.g. ``22:00-07:00``."""


class SiteSettings(Model):
    """A place with devices: a home, a plant, a shop."""

    id: Identifier
    name: str
    customer: Identifier
    address: str = ""
    """Street address: in work-order emails only, never in SMS."""
    region: str
    """Service region; technicians serve a list of regions."""
    timezone: TimeZoneName = "UTC"
    """IANA zone of the site (maintenance windows, local times in messages)."""
    location: Location | None = None
    """Used to measure technicians' distance."""


class DeviceSettings(Model):
    """One monitored device."""

    id: Identifier
    """The id the device publishes under (topic level or payload field)."""
    site: Identifier
    model: str
    """Product model; threshold overrides can target it."""
    kind: str
    """Product type, matched against technician skills (e.g. ``inverter``)."""
    serial: str = ""
    """Shown in work-order emails, never in SMS."""
    tags: tuple[str, ...] = ()
    """Free labels (``rooftop``, ``pilot-2027``) that silences can match."""
    parent: Identifier | None = None
    """The device this one reaches forewarn through (its gateway): while the parent is
    offline, this device's offline alerts are inhibited (see ``alerting.inhibit``)."""


class ShiftSettings(Model):
    """Working hours on some weekdays, e.g. ``{days: [mon, tue, wed, thu, fri], hours:
    "08:00-17:00"}``; a window like ``22:00-06:00`` ends the next morning."""

    # Spelled out rather than reusing ``Weekday`` (defined further down, with the order
    # rules), so this model does not depend on declaration order.
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = (
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    )
    """Weekdays the shift starts on."""
    hours: Hours
    """Local start and end, e.g. ``08:00-17:00``."""


class TechnicianSettings(Model):
    """A field technician who can be dispatched."""

    id: Identifier
    name: str
    phone: Phone | None = None
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    locale: str = "en"
    timezone: TimeZoneName = "UTC"
    skills: tuple[str, ...]
    """Product types this technician can repair."""
    regions: tuple[str, ...]
    max_jobs: int = Field(3, ge=1)
    """Open work orders this technician can carry at once."""
    home: Location | None = None
    """Home base; the nearer technician wins between equally loaded ones."""
    channels: tuple[Literal["sms", "email"], ...] = ("sms", "email")
    """Work orders go out on every listed channel."""
    shifts: tuple[ShiftSettings, ...] = ()
    """Working hours in the technician's time zone; none means always on duty (on call)."""
    days_off: tuple[date, ...] = ()
    """Local dates with no shift (holidays, leave), e.g. ``2026-12-25``."""
    radius_km: float | None = Field(None, gt=0)
    """Also serve any site within this distance of ``home``, whatever its region."""

    @model_validator(mode="after")
    def _radius_needs_home(self) -> TechnicianSettings:
        if self.radius_km is not None and self.home is None:
            raise ValueError("'radius_km' needs 'home' (the point the radius is measured from)")
        return self


class Selector(Model):
    """Which devices a monitor applies to; empty means every device; all given lists must
    match."""

    kinds: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()


class Override(Model):
    """A per-model, per-site or per-device change of a threshold's levels."""

    model: str | None = None
    site: str | None = None
    device: str | None = None
    above: float | None = None
    below: float | None = None
    clear: float | None = None
    for_: Duration | None = Field(None, alias="for")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class MonitorBase(Model):
    """Keys common to every monitor."""

    id: Identifier
    """Unique name of the rule; it appears in alerts, tickets and messages."""
    description: str = ""
    """What the rule is for, for the people tuning it."""
    severity: Severity = "major"
    """Severity of its alerts; drives ticket priority, SLA and quiet-hours bypass (critical)."""
    applies_to: Selector = Selector()
    """Which devices the rule watches (by kind, model, site or id); empty means all."""
    notify: bool = True
    """Open a ticket and notify when this monitor fires."""


class ThresholdMonitor(MonitorBase):
    """A metric above or below a level, optionally for a while, with hysteresis."""

    kind: Literal["threshold"]
    metric: str
    """The metric name (see ``broker.payload.metrics``)."""
    above: float | None = None
    """Fire when the value is above this level..."""
    below: float | None = None
    """...or below this one."""
    clear: float | None = None
    """Level the value must cross back over to resolve (hysteresis). Default: the firing level."""
    for_: Duration = Field(timedelta(0), alias="for")
    """How long the condition must hold before the alert fires."""
    count: int = Field(1, ge=1, le=1000)
    """N in a row: fire only after this many consecutive readings beyond the level (and
    ``for``, if set, has passed too)."""
    clear_for: Duration = timedelta(0)
    """How long the value must stay at the clear level before the alert resolves."""
    overrides: tuple[Override, ...] = ()
    """Levels for a model, site or single device (device beats site beats model)."""
    suggested_fix: str = ""
    """Goes into the technician's work order."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="after")
    def _one_direction(self) -> ThresholdMonitor:
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of 'above' or 'below'")
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(f"clear ({self.clear}) must not be above 'above' ({self.above})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(f"clear ({self.clear}) must not be below 'below' ({self.below})")
        return self


class OfflineMonitor(MonitorBase):
    """No reading from a device for a while; fires at the timeout, survives restarts."""

    kind: Literal["offline"]
    after: Duration
    """Fire when a device has sent nothing for this long."""
    metric: str | None = None
    """Absence of one metric: fire when the device has sent no reading of this metric for
    ``after``, even if it still sends others. Empty: any reading counts."""

    @field_validator("after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value


class FaultCode(Model):
    """What one fault code means."""

    severity: Severity = "major"
    description: str
    """Human description; appears in the work order and the customer's notice."""
    suggested_fix: str = ""
    """Knowledge-base advice for the technician."""


class FaultCodeMonitor(MonitorBase):
    """Fault/status codes reported by the device, evaluated as each reading arrives."""

    kind: Literal["fault_code"]
    codes: dict[str, FaultCode]
    """Code -> what it means. A more severe listed code while another's alert is open
    raises that alert's severity (and its ticket's priority)."""
    clear_codes: tuple[str, ...] = ("OK",)
    """Codes that mean the device is healthy again: they clear the alert. Any other
    unlisted code (junk, an unknown status) is stored but leaves a real fault open. Empty:
    any unlisted code clears."""


class RateMonitor(MonitorBase):
    """Rate of change: a metric rising (or falling) faster than a limit, measured as the
    least-squares slope of the readings in a sliding window."""

    kind: Literal["rate"]
    metric: str
    rise: float | None = None
    """Fire when the metric rises faster than this many units per ``per``..."""
    fall: float | None = None
    """...or falls faster than this many units per ``per`` (a positive number)."""
    per: Duration = timedelta(hours=1)
    """The time unit of ``rise`` and ``fall``."""
    window: Duration = timedelta(minutes=15)
    """Readings of the last ``window`` (event time) give the slope."""
    min_readings: int = Field(3, ge=2)
    """Fewer readings in the window decide nothing (noise, gaps)."""
    for_: Duration = Field(timedelta(0), alias="for")
    """How long the slope must stay beyond the limit before the alert fires."""
    suggested_fix: str = ""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="after")
    def _one_direction(self) -> RateMonitor:
        if (self.rise is None) == (self.fall is None):
            raise ValueError("set exactly one of 'rise' or 'fall'")
        if (self.rise is not None and self.rise <= 0) or (self.fall is not None and self.fall <= 0):
            raise ValueError("'rise' and 'fall' are positive rates")
        if self.window <= timedelta(0) or self.per <= timedelta(0):
            raise ValueError("'window' and 'per' must be positive durations")
        return self


class DriftMonitor(MonitorBase):
    """Trend: the moving average of the last ``window`` drifting from the device's own
    baseline (the average of the ``baseline`` before that window) by more than a limit."""

    kind: Literal["drift"]
    metric: str
    window: Duration = timedelta(hours=1)
    """The moving average: readings of the last ``window`` (event time)."""
    baseline: Duration = timedelta(days=1)
    """The device's own baseline: the average of the readings in this span just before
    ``window``."""
    by: float | None = Field(None, gt=0)
    """Fire when the moving average is more than this many units from the baseline..."""
    by_relative: float | None = Field(None, gt=0, le=10)
    """...or more than this fraction of the baseline (``0.15``: 15 %); with both, both."""
    direction: Literal["above", "below", "both"] = "both"
    """Which drift is a problem: upwards, downwards or either."""
    min_readings: int = Field(3, ge=1)
    """Fewer readings in the window, or in the baseline, decide nothing."""
    for_: Duration = Field(timedelta(0), alias="for")
    """How long the drift must last before the alert fires."""
    suggested_fix: str = ""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="after")
    def _limited(self) -> DriftMonitor:
        if self.by is None and self.by_relative is None:
            raise ValueError("set 'by' (units) or 'by_relative' (a fraction of the baseline)")
        if self.window <= timedelta(0) or self.baseline <= timedelta(0):
            raise ValueError("'window' and 'baseline' must be positive durations")
        return self


class PeerMonitor(MonitorBase):
    """Fleet-peer deviation: a device far from the median of its cohort (same model at the
    same site or region) by more than ``deviations`` robust deviations (MAD), for a while.

    Evaluated on the scheduler over every device's latest reading in one set-based query;
    devices already alarming are left out of the baseline."""

    kind: Literal["fleet_peer"]
    metric: str
    direction: Literal["below", "above", "both"] = "below"
    """Which side of the cohort is a problem."""
    deviations: float = Field(3.0, gt=0)
    """How many scaled MADs (1.4826 x median absolute deviation) away counts as far."""
    min_difference: float = Field(0.0, ge=0)
    """And at least this far from the median in absolute units (a flat cohort has MAD 0)."""
    min_relative: float = Field(0.0, ge=0, le=10)
    """And at least this fraction of the median, e.g. ``0.2`` for 20 % below the peers."""
    cohort: Literal["site", "region"] = "site"
    """Peers are devices of the same model at the same site, or in the same region."""
    min_cohort: int = Field(5, ge=3)
    """Cohorts with fewer fresh, non-alarming devices decide nothing."""
    fresh: Duration = timedelta(minutes=15)
    """Only latest readings younger than this (event time) count."""
    for_: Duration = Field(timedelta(0), alias="for")
    """How long the device must stay far from its peers before the alert fires."""
    suggested_fix: str = ""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )


MonitorSettings = Annotated[
    ThresholdMonitor | OfflineMonitor | FaultCodeMonitor | RateMonitor | DriftMonitor | PeerMonitor,
    Field(discriminator="kind"),
]


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
    percentile: int = Field(80, ge=50, le=99)
    """Which learned percentile of the remaining time counts as "typical": higher is more
    pessimistic (warns earlier and more often), lower warns only clearly slow orders."""
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


class TwilioSettings(Model):
    """Twilio SMS."""

    from_number: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    """Sending number. Credentials: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN."""
    timeout: Duration = timedelta(seconds=10)
    status_callback_url: str | None = None
    """Public URL of forewarn's ``/webhooks/twilio/status`` for delivery receipts."""
    api_url: str | None = Field(None, pattern=r"^https?://")
    """Send Twilio's API requests here instead of ``https://*.twilio.com`` (an egress
    proxy, or a local stand-in for tests); unset in production."""


class SendGridSettings(Model):
    """SendGrid email."""

    from_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    """Sender address. Credential: SENDGRID_API_KEY."""
    from_name: str = "forewarn"
    timeout: Duration = timedelta(seconds=10)
    api_url: str | None = Field(None, pattern=r"^https?://")
    """SendGrid's API host, e.g. ``https://api.eu.sendgrid.com`` for EU data residency
    (or a local stand-in for tests); unset: ``https://api.sendgrid.com``."""


class SmtpSettings(Model):
    """Email through an SMTP relay (instead of SendGrid). Password: SMTP_PASSWORD."""

    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` (port 587), ``tls`` (implicit TLS, port 465) or ``none`` (a local relay)."""
    username: str | None = None
    from_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    from_name: str = "forewarn"
    timeout: Duration = timedelta(seconds=10)


class WebhookChannelSettings(Model):
    """Messages POSTed as signed JSON to a URL of yours. Secret: FOREWARN_WEBHOOK_SECRET."""

    url: str = Field(pattern=r"^https?://")
    medium: Literal["sms", "email"] = "sms"
    """Which channel name it serves: your gateway then stands in for Twilio or email."""
    timeout: Duration = timedelta(seconds=10)


class NotificationSettings(Model):
    """Providers and delivery policy."""

    twilio: TwilioSettings | None = None
    """Without it (or without credentials) SMS goes to the development channel."""
    sendgrid: SendGridSettings | None = None
    """Without it (or without the API key) email goes to the development channel."""
    default_locale: str = "en"
    """Last step of the locale fallback (``pt-BR -> pt -> default``)."""
    development_log: str | None = None
    """File the development channel appends messages to (besides the console and store)."""
    give_up_after: Duration = timedelta(hours=24)
    """How long transient failures (provider down, 429, timeouts, an unreachable handset)
    keep being retried, counted from the message's first attempt. Only this budget or a
    permanent verdict ends a message as failed (then the next channel is tried). Twilio's
    own queue holds a message for 10 h; a longer budget here rides out longer outages."""
    retry_base: Duration = timedelta(seconds=5)
    """Ceiling of the first retry delay; the ceiling doubles per attempt up to
    ``retry_cap`` and each delay is drawn uniformly below it (full jitter)."""
    retry_cap: Duration = timedelta(minutes=15)
    """Largest delay between two attempts of one message (a provider's ``Retry-After``
    may ask for longer and is honoured)."""
    lease: Duration = timedelta(seconds=60)
    """How long a sender owns a claimed message before another may reclaim it."""
    sender_threads: int = Field(4, ge=1, le=8)
    """Threads each sender process sends on; each claims its own rows, so none is sent
    twice. At most 8: each holds a database connection while it sends, and a process's
    connection pool has 10."""
    smtp: SmtpSettings | None = None
    """Email through SMTP; used when SendGrid is not configured."""
    webhook: WebhookChannelSettings | None = None
    """A generic signed webhook; replaces the SMS or email channel it names."""
    contact_budget: int = Field(3, ge=1, le=100)
    """Proactive messages per customer per rolling day; more wait (critical ones do not)."""
    merge_window: Duration = timedelta(minutes=2)
    """Proactive notices wait this long so that several issues go out as one message."""
    follow_up_within: Duration = timedelta(hours=24)
    """A proactive notice with no update, all-clear or apology after this is an ops alert."""
    human_response_sla: Duration = timedelta(hours=2)
    """How soon a person must answer a customer who wrote HUMAN or free text."""
    webhook_max_age: Duration = timedelta(minutes=5)
    """Signed provider events older (or newer) than this are refused as replays."""
    stop_scope: Literal["all", "sms"] = "all"
    """STOP by SMS opts the customer out of every channel (``all``) or of SMS only."""


class SchedulerSettings(Model):
    """Periodic jobs."""

    offline_check_interval: Duration = timedelta(seconds=30)
    """How often offline monitors sweep; an alarm fires at most this late."""
    peer_check_interval: Duration = timedelta(minutes=5)
    """How often fleet-peer monitors compare every device with its cohort (a heavier,
    fleet-wide query; peer rules' ``for`` is usually much longer than this)."""
    outbox_interval: Duration = timedelta(seconds=1)
    """How often senders look for due messages."""
    orphan_check_interval: Duration = timedelta(minutes=1)
    """How often notices with no follow-up within ``notifications.follow_up_within`` are
    turned into ops tasks."""
    election_interval: Duration = timedelta(seconds=5)
    """How often each process checks (leader) or tries to take (standby) the PostgreSQL
    leader lock. A standby takes over within two of these after the leader dies, is cut off
    from the database or stops; each check is one small query per process."""

    @field_validator(
        "offline_check_interval",
        "peer_check_interval",
        "outbox_interval",
        "orphan_check_interval",
        "election_interval",
    )
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(milliseconds=100):
            raise ValueError("must be at least 100ms")
        return value


class HealthSettings(Model):
    """When ``/readyz`` says a role is not doing its work (answers 503)."""

    late_after_intervals: int = Field(3, ge=2, le=100)
    """A scheduled job is late (not ready) after this many of its intervals without a
    success."""
    mqtt_grace: Duration = timedelta(minutes=2)
    """An ingest process is not ready once its MQTT connection has been down this long
    (short outages are normal: the broker keeps the session and redelivers)."""
    outbox_due_grace: Duration = timedelta(minutes=5)
    """A sender process is not ready while a message has been due for longer than this
    (quiet hours and retry backoff move ``next_attempt_at``, so a held message is not due)."""


class RetentionSettings(Model):
    """How long rows are kept; a leader job enforces it in bounded batches
    (docs/retention.md). A lifetime of ``null`` keeps the rows forever."""

    readings: Duration | None = timedelta(days=90)
    """Telemetry, by device time. On PostgreSQL whole partitions are dropped, so a reading
    lives up to one partition longer than this."""
    quarantine: Duration | None = timedelta(days=30)
    """Rejected inputs kept for inspection, by arrival time."""
    notification_personal_data: Duration | None = timedelta(days=180)
    """After this, a notification's address, text, subject and template context are erased;
    the row (event, channel, status, times, recipient id) stays for the KPIs."""
    inbound_texts: Duration | None = timedelta(days=180)
    """After this, the text of an inbound SMS and our reply are erased (its intent stays),
    and so is the quote of it in a closed follow-up task."""
    provider_events: Duration | None = timedelta(days=180)
    """Delivery receipts as received (the notification keeps its final status)."""
    alert_events: Duration | None = None
    """Alert state changes (the evidence behind each alert); kept forever by default."""
    ticket_events: Duration | None = None
    """Ticket history (assign/accept/resolve times); kept forever by default."""
    interval: Duration = timedelta(hours=1)
    """How often the leader enforces these lifetimes (and creates reading partitions)."""
    batch_size: int = Field(5000, ge=100, le=100_000)
    """Rows deleted or erased per statement (one short transaction each)."""
    time_budget: Duration = timedelta(minutes=5)
    """Longest one run may take; what is left is done at the next run."""
    partition: Literal["day", "week"] = "day"
    """PostgreSQL: the time span of one readings partition (weeks start on Monday, UTC)."""
    create_ahead: Duration = timedelta(days=7)
    """PostgreSQL: readings partitions are created this far into the future."""

    @field_validator("interval", "time_budget", "create_ahead")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value


class LoggingSettings(Model):
    """What ``forewarn run`` writes to stderr. ``--log-level`` / ``--log-format`` (or
    ``FOREWARN_LOG_LEVEL`` / ``FOREWARN_LOG_FORMAT``) override these."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """INFO shows state changes (broker lost/back, leader elected, jobs failing); DEBUG
    adds detail. No level writes a credential, a message text or a clear phone/email."""
    format: Literal["text", "json"] = "text"
    """``text`` for people; ``json`` for log shippers: one object per line with ``time``,
    ``level``, ``logger``, ``message`` and any extra fields."""


class WebSettings(Model):
    """The console, the API and the provider webhooks."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str | None = None
    """The URL providers call back (used to verify webhook signatures)."""
    trust_proxy: bool = False
    """Behind a TLS-terminating reverse proxy: believe its ``X-Forwarded-Proto`` (the
    session cookie is then marked Secure) and ``X-Forwarded-For`` (the client address
    the login rate limit counts). Leave false when clients reach forewarn directly,
    or anyone could claim to be anyone."""
    session_lifetime: Duration = timedelta(days=14)
    """How long a console sign-in lasts (signing out ends it at once)."""
    login_failures_per_minute: int = Field(10, ge=1, le=10_000)
    """Wrong tokens one client may present per minute; then 429 with Retry-After."""
    allow_open_console: bool = False
    """With no access token configured the console is open to anyone who reaches it, with
    ops rights. forewarn refuses to start that way on a non-loopback ``host`` unless this is
    true (e.g. behind an authenticating proxy)."""


DEFAULT_SLA: dict[Severity, timedelta] = {
    "critical": timedelta(hours=4),
    "major": timedelta(hours=24),
    "minor": timedelta(days=3),
    "info": timedelta(days=7),
}


DEFAULT_ACK_WITHIN: dict[Severity, timedelta] = {
    "critical": timedelta(minutes=15),
    "major": timedelta(hours=1),
    "minor": timedelta(hours=4),
    "info": timedelta(hours=8),
}


class ContactSettings(Model):
    """A person forewarn alerts about tickets (the dispatcher, a supervisor)."""

    name: str
    phone: Phone | None = None
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    locale: str = "en"
    timezone: TimeZoneName = "UTC"
    channels: tuple[Literal["sms", "email"], ...] = ("sms", "email")
    """Alerts go out on every listed channel."""

    @model_validator(mode="after")
    def _reachable(self) -> ContactSettings:
        if not self.phone and not self.email:
            raise ValueError("give a phone or an email, or nobody will be told")
        return self


class EscalationSettings(Model):
    """What happens when an assigned technician does not answer."""

    ack_within: dict[Severity, Duration] = Field(default_factory=lambda: dict(DEFAULT_ACK_WITHIN))
    """How long a technician has to ACK before the job passes on, per severity."""
    handoffs: int = Field(1, ge=0, le=10)
    """How many further technicians are tried (next best each time) before the supervisor."""
    supervisor: ContactSettings | None = None
    """Told when the handoffs are used up; without one, the dispatcher is told."""


class PreferenceSettings(Model):
    """Preferred and excluded technicians for one customer or one site."""

    customer: Identifier | None = None
    site: Identifier | None = None
    preferred: tuple[Identifier, ...] = ()
    """Scored ahead of equally suited technicians (never over a hard filter)."""
    excluded: tuple[Identifier, ...] = ()
    """Never dispatched here."""

    @model_validator(mode="after")
    def _one_target(self) -> PreferenceSettings:
        if (self.customer is None) == (self.site is None):
            raise ValueError("set exactly one of 'customer' or 'site'")
        return self


class TicketingSettings(Model):
    """Tickets and work orders."""

    sla: dict[Severity, Duration] = Field(default_factory=lambda: dict(DEFAULT_SLA))
    """Time to resolution promised per severity."""
    reopen_within: Duration = timedelta(days=7)
    """A fault that comes back this soon after its ticket was resolved reopens that ticket
    (a repeat visit); later, a new ticket is opened and linked to the old one."""
    on_alert_cleared: Literal["auto_close", "keep"] = "auto_close"
    """When every alert of a ticket clears before anyone is on the way: ``auto_close``
    after ``cleared_grace``, or ``keep`` the ticket for inspection."""
    cleared_grace: Duration = timedelta(hours=2)
    """How long a cleared fault must stay cleared before its ticket is closed."""
    escalation: EscalationSettings = EscalationSettings()
    """No ACK in time: the next best technician, then the supervisor."""
    dispatcher: ContactSettings | None = None
    """Told when no eligible technician exists for a ticket (it waits in the dispatcher
    queue on the console either way)."""
    preferences: tuple[PreferenceSettings, ...] = ()
    """Preferred / excluded technicians per customer or site."""
    sweep_interval: Duration = timedelta(seconds=30)
    """How often escalations, declined jobs and auto-closes are processed."""


class SilenceSettings(Model):
    """A silence or maintenance window: matching alerts are recorded but open no ticket and
    notify nobody. Every given list must match (device, site, model, tag, rule)."""

    id: Identifier
    comment: str = ""
    """Why, for the people reading the alert later."""
    created_by: str = "config"
    devices: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    """Only these monitors' alerts; empty: every monitor."""
    starts: datetime | None = None
    """First moment; without a UTC offset it is local time in the site's zone."""
    ends: datetime | None = None
    """Last moment (exclusive); without a UTC offset it is local time in the site's zone."""
    days: tuple[Weekday, ...] = ()
    """Recurring: the local weekdays the ``hours`` start on; empty with ``hours``: daily."""
    hours: Hours | None = None
    """Recurring local hours such as ``22:00-06:00`` in the site's zone (DST-safe: wall
    clock time, so a window always covers the same local hours)."""
    timezone: TimeZoneName | None = None
    """Zone of ``starts``, ``ends`` and ``hours``; default: each device's site zone."""

    @model_validator(mode="after")
    def _bounded(self) -> SilenceSettings:
        if not (self.devices or self.sites or self.models or self.tags or self.rules):
            raise ValueError("match something: set devices, sites, models, tags or rules")
        if self.ends is None and self.hours is None:
            raise ValueError("set 'ends' or recurring 'hours' (a silence must end)")
        if self.days and self.hours is None:
            raise ValueError("'days' needs 'hours'")
        if self.starts is not None and self.ends is not None:
            if (self.starts.tzinfo is None) != (self.ends.tzinfo is None):
                raise ValueError("give both 'starts' and 'ends' a UTC offset, or neither")
            if self.ends <= self.starts:
                raise ValueError("'ends' must be after 'starts'")
        return self


class InhibitSettings(Model):
    """While a source alert fires (a site gateway offline), matching target alerts on the
    devices that depend on it are recorded but not announced."""

    source_rule: Identifier
    """The monitor whose firing alert inhibits, e.g. ``gateway-offline``."""
    source_kinds: tuple[str, ...] = ()
    """Only source alerts on devices of these kinds (e.g. ``gateway``); empty: any."""
    target_rules: tuple[Identifier, ...] = ()
    """The monitors whose alerts are inhibited; empty: every monitor."""
    scope: Literal["parent", "site"] = "parent"
    """``parent``: the source device is the target's ``parent``; ``site``: any source device
    at the target's site."""


class FlappingSettings(Model):
    """Flapping: a subject that changes state too often is held until it settles."""

    window: Duration = timedelta(hours=1)
    changes: int = Field(6, ge=2)
    """This many firing/resolved changes within ``window`` mark the subject flapping."""
    settle: Duration = timedelta(minutes=30)
    """A flapping alert that kept one state this long ends: resolved (one resolution) or
    firing (announced if it never was)."""


class AlertingSettings(Model):
    """The alert lifecycle: flapping, silences, inhibition and work-order suppression."""

    flapping: FlappingSettings = FlappingSettings()
    silences: tuple[SilenceSettings, ...] = ()
    """Silences and maintenance windows kept in the file (more can be added via the API)."""
    inhibit: tuple[InhibitSettings, ...] = ()
    """Parent-child suppression, e.g. a gateway offline inhibits its devices' offline alerts."""
    expiring_within: Duration = timedelta(hours=1)
    """Silences ending sooner than this are listed as about to expire."""
    work_order_statuses: tuple[str, ...] = ("accepted", "en_route", "on_site")
    """While the device's ticket is in one of these, new alerts attach to it and announce
    nothing new."""
    lateness: Duration = timedelta(0)
    """How late (in event time) a reading may arrive and still be judged in order: readings
    are held until the device's newest reading (or the clock) is this far past them, so a
    burst that arrives shuffled within the bound gives the alerts the sorted one gives,
    at the cost of this much delay. A reading older than what was already judged is
    stored with ``late`` set and drives nothing. 0: judge on arrival."""


class Settings(Model):
    """The whole of ``forewarn.yaml``."""

    phone_region: PhoneRegion | None = None
    """Region (ISO 3166 code such as ``PT``) for phone numbers written without
    ``+country``, in this file and in feeds; without it every number needs its ``+``."""
    database: DatabaseSettings = DatabaseSettings()
    """Where forewarn keeps everything (SQLite by default, PostgreSQL in production)."""
    broker: BrokerSettings = BrokerSettings()
    """The MQTT broker devices publish to, and how their messages map to readings."""
    ingest: IngestSettings = IngestSettings()
    """Batching and the data-quality gate for telemetry."""
    customers: tuple[CustomerSettings, ...] = ()
    """Who gets proactive notices, how and when."""
    sites: tuple[SiteSettings, ...] = ()
    """Where devices are installed (address, region, time zone)."""
    devices: tuple[DeviceSettings, ...] = ()
    """The monitored fleet."""
    technicians: tuple[TechnicianSettings, ...] = ()
    """Who can be dispatched, with skills, regions and capacity."""
    monitors: tuple[MonitorSettings, ...] = ()
    """The rules; each has a ``kind``: threshold, offline or fault_code."""
    notifications: NotificationSettings = NotificationSettings()
    """Providers (Twilio, SendGrid) and delivery retry policy."""
    ticketing: TicketingSettings = TicketingSettings()
    """SLA due times, escalation, dispatch preferences, recurrence and the cleared-alert
    policy (see docs/dispatch.md)."""
    scheduler: SchedulerSettings = SchedulerSettings()
    """How often scheduled checks and the outbox run."""
    web: WebSettings = WebSettings()
    """The console and API listener."""
    health: HealthSettings = HealthSettings()
    """Readiness thresholds for ``/readyz`` (see docs/operations.md)."""
    retention: RetentionSettings = RetentionSettings()
    """How long readings, quarantine, personal data and events are kept (docs/retention.md)."""
    logging: LoggingSettings = LoggingSettings()
    """Log level and format of ``forewarn run`` (docs/logging.md)."""
    feeds: tuple[FeedSettings, ...] = ()
    """Order and shipping feeds: watched folders, polled HTTP endpoints, webhooks."""
    delays: DelaySettings = DelaySettings()
    """Order rules and delay cases (see docs/delays.md)."""
    alerting: AlertingSettings = AlertingSettings()
    """Flapping, silences and maintenance windows, inhibition (see docs/rules.md)."""

    @model_validator(mode="after")
    def _references(self) -> Settings:
        _unique("customers", [c.id for c in self.customers])
        _unique("sites", [s.id for s in self.sites])
        _unique("devices", [d.id for d in self.devices])
        _unique("technicians", [t.id for t in self.technicians])
        _unique("monitors", [m.id for m in self.monitors])
        _unique("feeds", [f.name for f in self.feeds], key="name")
        _unique("delays.rules", [r.id for r in self.delays.rules])
        customers = {c.id for c in self.customers}
        sites = {s.id for s in self.sites}
        for i, site in enumerate(self.sites):
            if site.customer not in customers:
                raise ReferenceProblem(
                    f"sites[{i}].customer", f"unknown customer {site.customer!r}"
                )
        for i, device in enumerate(self.devices):
            if device.site not in sites:
                raise ReferenceProblem(f"devices[{i}].site", f"unknown site {device.site!r}")
        _alerting_references(self)
        return self


class ReferenceProblem(ValueError):
    """A cross-reference error; carries the key path it belongs to."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _alerting_references(settings: Settings) -> None:
    devices = {d.id for d in settings.devices}
    rules = {m.id for m in settings.monitors}
    for i, device in enumerate(settings.devices):
        if device.parent is not None and device.parent not in devices - {device.id}:
            raise ReferenceProblem(f"devices[{i}].parent", f"unknown device {device.parent!r}")
    _unique("alerting.silences", [s.id for s in settings.alerting.silences])
    for i, silence in enumerate(settings.alerting.silences):
        for rule in silence.rules:
            if rule not in rules:
                raise ReferenceProblem(f"alerting.silences[{i}].rules", f"unknown monitor {rule!r}")
    for i, inhibit in enumerate(settings.alerting.inhibit):
        for rule in (inhibit.source_rule, *inhibit.target_rules):
            if rule not in rules:
                raise ReferenceProblem(f"alerting.inhibit[{i}]", f"unknown monitor {rule!r}")


def _unique(section: str, ids: list[str], key: str = "id") -> None:
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            raise ReferenceProblem(f"{section}[{i}].{key}", f"duplicate {key} {ident!r}")
        seen.add(ident)
