"""The settings schema: every key of ``forewarn.yaml``, typed, frozen and validated.

Each model's field docstrings feed the generated config reference (``docs/config.md``),
so the reference cannot drift from what the loader accepts.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from forewarn.config.durations import parse_duration


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


Duration = Annotated[timedelta, BeforeValidator(_duration)]
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

    batch_size: int = Field(500, ge=1, le=50_000)
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


class Location(Model):
    """Coordinates in decimal degrees."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class CustomerSettings(Model):
    """A customer who receives proactive notices."""

    id: Identifier
    name: str
    phone: str | None = Field(None, pattern=r"^\+[1-9]\d{6,14}$")
    """E.164 mobile number for SMS, e.g. ``+351912345678``."""
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


class TechnicianSettings(Model):
    """A field technician who can be dispatched."""

    id: Identifier
    name: str
    phone: str | None = Field(None, pattern=r"^\+[1-9]\d{6,14}$")
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
    """Code -> what it means. Any other code reported by the device clears the alert."""


MonitorSettings = Annotated[
    ThresholdMonitor | OfflineMonitor | FaultCodeMonitor, Field(discriminator="kind")
]


class TwilioSettings(Model):
    """Twilio SMS."""

    from_number: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    """Sending number. Credentials: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN."""
    timeout: Duration = timedelta(seconds=10)
    status_callback_url: str | None = None
    """Public URL of forewarn's ``/webhooks/twilio/status`` for delivery receipts."""


class SendGridSettings(Model):
    """SendGrid email."""

    from_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    """Sender address. Credential: SENDGRID_API_KEY."""
    from_name: str = "forewarn"
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
    max_attempts: int = Field(8, ge=1, le=50)
    """Transient failures are retried with backoff up to this many attempts."""
    retry_base: Duration = timedelta(seconds=5)
    """First retry delay; doubles per attempt (with jitter), capped at one hour."""
    lease: Duration = timedelta(seconds=60)
    """How long a sender owns a claimed message before another may reclaim it."""


class SchedulerSettings(Model):
    """Periodic jobs."""

    offline_check_interval: Duration = timedelta(seconds=30)
    """How often offline monitors sweep; an alarm fires at most this late."""
    outbox_interval: Duration = timedelta(seconds=1)
    """How often senders look for due messages."""


class WebSettings(Model):
    """The console, the API and the provider webhooks."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str | None = None
    """The URL providers call back (used to verify webhook signatures)."""


DEFAULT_SLA: dict[Severity, timedelta] = {
    "critical": timedelta(hours=4),
    "major": timedelta(hours=24),
    "minor": timedelta(days=3),
    "info": timedelta(days=7),
}


class TicketingSettings(Model):
    """Tickets and work orders."""

    sla: dict[Severity, Duration] = Field(default_factory=lambda: dict(DEFAULT_SLA))
    """Time to resolution promised per severity."""


class Settings(Model):
    """The whole of ``forewarn.yaml``."""

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
    """SLA due times."""
    scheduler: SchedulerSettings = SchedulerSettings()
    """How often scheduled checks and the outbox run."""
    web: WebSettings = WebSettings()
    """The console and API listener."""

    @model_validator(mode="after")
    def _references(self) -> Settings:
        _unique("customers", [c.id for c in self.customers])
        _unique("sites", [s.id for s in self.sites])
        _unique("devices", [d.id for d in self.devices])
        _unique("technicians", [t.id for t in self.technicians])
        _unique("monitors", [m.id for m in self.monitors])
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
        return self


class ReferenceProblem(ValueError):
    """A cross-reference error; carries the key path it belongs to."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _unique(section: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            raise ReferenceProblem(f"{section}[{i}].id", f"duplicate id {ident!r}")
        seen.add(ident)
