"""The whole of ``forewarn.yaml`` and its cross-references."""

from __future__ import annotations

from pydantic import (
    model_validator,
)

from forewarn.config.schema.alerting import AlertingSettings
from forewarn.config.schema.backtest import BacktestSettings
from forewarn.config.schema.base import Model, PhoneRegion
from forewarn.config.schema.care import CareSettings
from forewarn.config.schema.fleet import (
    CustomerSettings,
    DeviceSettings,
    SiteSettings,
    TechnicianSettings,
)
from forewarn.config.schema.monitors import MonitorSettings
from forewarn.config.schema.notifications import NotificationSettings
from forewarn.config.schema.orders import DelaySettings, FeedSettings
from forewarn.config.schema.rules import RulesSettings
from forewarn.config.schema.service import (
    BrokerSettings,
    DatabaseSettings,
    HealthSettings,
    IngestSettings,
    LoggingSettings,
    RetentionSettings,
    SchedulerSettings,
    WebSettings,
)
from forewarn.config.schema.ticketing import TicketingSettings


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
    rules: RulesSettings = RulesSettings()
    """Rule versions from the console and API: reloading and the budget guard (see
    docs/rules.md)."""
    care: CareSettings = CareSettings()
    """Conversations with a person, routing of free text, maintenance notices
    (docs/notifications.md)."""
    backtest: BacktestSettings = BacktestSettings()
    """Prices, simulated technicians and limits of backtests (see docs/backtest.md)."""

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
        _care_references(self)
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
    for i, monitor in enumerate(settings.monitors):
        if monitor.requires is not None and monitor.requires.rule not in rules - {monitor.id}:
            raise ReferenceProblem(
                f"monitors[{i}].requires.rule",
                f"unknown monitor {monitor.requires.rule!r} (another monitor's id)",
            )
    for i, inhibit in enumerate(settings.alerting.inhibit):
        for rule in (inhibit.source_rule, *inhibit.target_rules):
            if rule not in rules:
                raise ReferenceProblem(f"alerting.inhibit[{i}]", f"unknown monitor {rule!r}")


def _care_references(settings: Settings) -> None:
    queues = {q.id for q in settings.care.queues}
    if settings.care.default_queue not in queues:
        raise ReferenceProblem(
            "care.default_queue", f"unknown queue {settings.care.default_queue!r}"
        )
    for i, rule in enumerate(settings.care.routing):
        if rule.queue not in queues:
            raise ReferenceProblem(f"care.routing[{i}].queue", f"unknown queue {rule.queue!r}")
    default = settings.notifications.default_locale
    for i, monitor in enumerate(settings.monitors):
        offers = [("", monitor.self_service)]
        codes = getattr(monitor, "codes", {})
        offers += [(f".codes.{code}", fault.self_service) for code, fault in codes.items()]
        for where, offer in offers:
            if offer is not None and default not in offer.steps:
                raise ReferenceProblem(
                    f"monitors[{i}]{where}.self_service.steps",
                    f"no steps in the default language {default!r}",
                )


def _unique(section: str, ids: list[str], key: str = "id") -> None:
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            raise ReferenceProblem(f"{section}[{i}].{key}", f"duplicate {key} {ident!r}")
        seen.add(ident)
