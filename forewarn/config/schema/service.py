"""Settings of the running service: database, MQTT broker and payload mapping, ingest,
scheduler, web console, health, retention and logging."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from forewarn.config.schema.base import Duration, Model


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
    """Stable client id: the broker keeps this session's queue while forewarn is down.
    With several ingest processes each needs its own: write ``{instance}`` in it
    (``forewarn-ingest-{instance}``) and start each process with ``--instance N``."""
    topics: tuple[str, ...] = ("devices/+/telemetry",)
    """Topic filters to subscribe to (QoS 1)."""
    share_group: str | None = None
    """MQTT 5 shared subscription group: each topic is subscribed as
    ``$share/<group>/<topic>``, so the ingest processes of one group split the stream
    between them (each message goes to one of them). Every member needs a stable client
    id of its own (see ``client_id``) and a long ``session_expiry``: a member's
    unacknowledged and queued messages stay in its session until it comes back.
    See docs/scaling.md."""
    session_expiry: Duration = timedelta(days=1)
    """How long the broker keeps queued messages for this client while it is offline."""
    keepalive: int = Field(30, ge=5)
    """Seconds between MQTT keep-alive pings."""
    username: str | None = None
    password_env: str | None = None
    """Name of the environment variable holding the broker password."""
    payload: PayloadMapping = PayloadMapping()
    """How a message's topic and JSON fields become readings."""

    @field_validator("client_id")
    @classmethod
    def _client_id_placeholder(cls, value: str) -> str:
        bare = value.replace("{instance}", "")
        if "{" in bare or "}" in bare:
            raise ValueError("the only placeholder a client id may hold is {instance}")
        if not bare:
            raise ValueError("must not be empty")
        return value

    @field_validator("share_group")
    @classmethod
    def _share_group_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
            raise ValueError("a share group is 1-64 letters, digits or _.:- (no '/', '+' or '#')")
        return value

    @model_validator(mode="after")
    def _share_once(self) -> BrokerSettings:
        if self.share_group is not None:
            for topic in self.topics:
                if topic.startswith("$share/"):
                    raise ValueError(
                        f"topic {topic!r} is already a shared subscription; with "
                        "share_group set, list the plain topic"
                    )
        return self

    def subscription_filters(self) -> tuple[str, ...]:
        """The filters to SUBSCRIBE to: ``topics``, in the share group if there is one."""
        if self.share_group is None:
            return self.topics
        return tuple(f"$share/{self.share_group}/{topic}" for topic in self.topics)

    def client_id_for(self, instance: int) -> str:
        """The client id of ingest process ``instance`` (``{instance}`` filled in)."""
        return self.client_id.replace("{instance}", str(instance))


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
    care_interval: Duration = timedelta(minutes=1)
    """How often self-service deadlines, maintenance notices and late conversations are
    checked (three leader jobs: ``self-service``, ``maintenance-notices``,
    ``conversations``)."""
    election_interval: Duration = timedelta(seconds=5)
    """How often each process checks (leader) or tries to take (standby) the PostgreSQL
    leader lock. A standby takes over within two of these after the leader dies, is cut off
    from the database or stops; each check is one small query per process."""

    @field_validator(
        "offline_check_interval",
        "peer_check_interval",
        "outbox_interval",
        "orphan_check_interval",
        "care_interval",
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
