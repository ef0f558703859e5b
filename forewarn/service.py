"""Wiring: one function builds forewarn from a Config; ``run`` starts the chosen roles.

Roles: ``ingest`` (MQTT -> store -> monitors), ``scheduler`` (offline sweeps, leader only),
``sender`` (outbox delivery) and ``web`` (console, API, webhooks). ``forewarn run`` starts
all four in one process; ``--role`` splits them across processes (PostgreSQL required).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from forewarn.alerting import Monitors
from forewarn.clock import Clock, SystemClock
from forewarn.config import Config
from forewarn.notifier import conversations, maintenance
from forewarn.notifier.channels import Channel
from forewarn.notifier.followups import check_overdue
from forewarn.notifier.links import LinkSigner
from forewarn.notifier.rates import TWILIO_RATES, SendRate
from forewarn.notifier.render import Renderer
from forewarn.notifier.sender import Sender, SenderPool
from forewarn.rulebook import RuleBook, RuleWatcher, provision
from forewarn.scheduler import LEADER_JOB, JobLedger, LeaderElection, Scheduler
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.reference import sync_reference_data
from forewarn.store.schema import current_revision, head_revision
from forewarn.telemetry.ingest import Ingester
from forewarn.ticketing import self_service
from forewarn.ticketing.self_service import SelfServiceCatalog
from forewarn.ticketing.tickets import Ticketing

if TYPE_CHECKING:  # the web stack is imported only by processes that serve it
    from fastapi import FastAPI

    from forewarn.web.health import ProcessStatus

log = logging.getLogger(__name__)

MetricSample = tuple[str, Mapping[str, str], float]

ROLES = ("ingest", "scheduler", "sender", "web")


class StartupError(Exception):
    """forewarn cannot start; the message is one line for the operator (exit status 2)."""


class NotMigrated(StartupError):
    """The database schema is older than this forewarn; run ``forewarn db upgrade``."""


@dataclass
class Forewarn:
    """Every part of forewarn, built but not started."""

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock
    monitors: Monitors
    ticketing: Ticketing
    sender: SenderPool
    channels: dict[str, Channel]
    channel_notes: list[str] = field(default_factory=list)
    worker: str = ""
    """Host and process id, naming this process in claims and ``job_runs``."""
    rules: RuleBook | None = None
    """The rule-set version this process runs (None: the file's, unversioned)."""


def build(
    config: Config,
    *,
    clock: Clock | None = None,
    channels: dict[str, Channel] | None = None,
    console: TextIO | None = None,
    worker_id: str | None = None,
) -> Forewarn:
    """Build forewarn against an already migrated database and sync the reference data."""
    clock = clock or SystemClock()
    engine = make_engine(config.database_url, echo=config.settings.database.echo)
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StartupError(f"cannot reach the database: {database_problem(exc)}") from exc
    if revision != head_revision():
        engine.dispose()
        raise NotMigrated(
            "the database schema is not up to date: run 'forewarn db upgrade -c <config>'"
        )
    sessions = make_sessionmaker(engine)
    rules = RuleBook(config, sessions)
    with sessions.begin() as session:
        sync_reference_data(session, config.settings, clock.now())
        provisioned = provision(session, config, clock.now())
    with sessions() as session:
        rules.start(session)
        before = (
            rules.read(session, provisioned.before)
            if provisioned.changed and provisioned.before is not None
            else None
        )
    notes: list[str] = []
    if channels is None:
        channels, notes = provider_channels(config, console)
    ticketing = Ticketing(config.settings.ticketing, self_service_catalog(config))
    monitors = Monitors(config.settings, sessions, ticketing, rules)
    monitors.load()
    if before is not None:
        # The file changed: its rules judge the open alerts of the rules it changed now.
        cause = {"rule_change": rules.number, "from_version": before.number, "by": "file"}
        monitors.reevaluate(before, rules.loaded, clock.now(), cause)
    worker = worker_id or f"{socket.gethostname()}:{os.getpid()}"
    renderer = Renderer(default_locale=config.settings.notifications.default_locale)
    rates = send_rates(config, channels)
    threads = config.settings.notifications.sender_threads
    # One worker id per thread: claims keep the threads apart as they keep processes apart.
    sender = SenderPool(
        [
            Sender(
                sessions,
                channels,
                renderer,
                clock,
                config.settings.notifications,
                worker if threads == 1 else f"{worker}/{n}",
                rates=rates,
            )
            for n in range(threads)
        ]
    )
    return Forewarn(
        config, engine, sessions, clock, monitors, ticketing, sender, channels, notes, worker, rules
    )


def self_service_catalog(config: Config) -> SelfServiceCatalog:
    """The monitors' self-service steps, with signed answer links in emails when
    ``web.public_url`` and ``FOREWARN_LINK_SECRET`` are set."""
    settings = config.settings
    links = (
        LinkSigner(settings.web.public_url, config.secrets.link_secret)
        if settings.web.public_url and config.secrets.link_secret
        else None
    )
    return SelfServiceCatalog(settings.monitors, settings.notifications.default_locale, links)


def database_problem(exc: SQLAlchemyError) -> str:
    """The driver's first line (it names host and port, never the password)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def provider_channels(
    config: Config, console: TextIO | None = None
) -> tuple[dict[str, Channel], list[str]]:
    """Twilio and SendGrid when configured with credentials; else the development channel."""
    settings = config.settings.notifications
    secrets = config.secrets
    channels: dict[str, Channel] = {}
    notes: list[str] = []
    dev_log = Path(settings.development_log) if settings.development_log else None
    if settings.twilio and secrets.twilio_account_sid and secrets.twilio_auth_token:
        from forewarn.notifier.channels.twilio_sms import TwilioSms

        channels["sms"] = TwilioSms(
            secrets.twilio_account_sid,
            secrets.twilio_auth_token,
            settings.twilio.from_number,
            timeout=settings.twilio.timeout.total_seconds(),
            status_callback=settings.twilio.status_callback_url,
            api_url=settings.twilio.api_url,
        )
    else:
        from forewarn.notifier.channels.development import DevelopmentChannel

        channels["sms"] = DevelopmentChannel("sms", console or sys.stdout, dev_log)
        notes.append(
            "SMS: development channel (no Twilio settings or TWILIO_ACCOUNT_SID / "
            "TWILIO_AUTH_TOKEN): messages are printed and stored, not sent"
        )
    if settings.sendgrid and secrets.sendgrid_api_key:
        from forewarn.notifier.channels.sendgrid_email import SendGridEmail

        channels["email"] = SendGridEmail(
            secrets.sendgrid_api_key,
            settings.sendgrid.from_email,
            from_name=settings.sendgrid.from_name,
            timeout=settings.sendgrid.timeout.total_seconds(),
            host=settings.sendgrid.api_url,
        )
    elif settings.smtp:
        from forewarn.notifier.channels.smtp_email import SmtpEmail

        channels["email"] = SmtpEmail(
            settings.smtp.host,
            settings.smtp.port,
            settings.smtp.from_email,
            from_name=settings.smtp.from_name,
            security=settings.smtp.security,
            username=settings.smtp.username,
            password=secrets.smtp_password,
            timeout=settings.smtp.timeout.total_seconds(),
        )
    else:
        from forewarn.notifier.channels.development import DevelopmentChannel

        channels["email"] = DevelopmentChannel("email", console or sys.stdout, dev_log)
        notes.append(
            "Email: development channel (no SendGrid settings or SENDGRID_API_KEY): "
            "messages are printed and stored, not sent"
        )
    if settings.webhook and secrets.webhook_secret:
        from forewarn.notifier.channels.webhook import WebhookChannel

        channels[settings.webhook.medium] = WebhookChannel(
            settings.webhook.url,
            secrets.webhook_secret,
            medium=settings.webhook.medium,
            timeout=settings.webhook.timeout.total_seconds(),
        )
    elif settings.webhook:
        notes.append("Webhook channel: FOREWARN_WEBHOOK_SECRET is not set; not used")
    return channels, notes


def send_rates(config: Config, channels: dict[str, Channel]) -> dict[str, SendRate]:
    """The pace of each channel whose provider meters its senders: Twilio per sending
    number, SendGrid per API key (see :mod:`forewarn.notifier.rates`)."""
    settings = config.settings.notifications
    rates: dict[str, SendRate] = {}
    sms = channels.get("sms")
    if settings.twilio and sms is not None and sms.provider == "twilio":
        twilio = settings.twilio
        per_second = twilio.rate or TWILIO_RATES[twilio.number_type]
        rates["sms"] = SendRate.of(f"twilio:{twilio.from_number}", per_second, twilio.burst)
    email = channels.get("email")
    if settings.sendgrid and email is not None and email.provider == "sendgrid":
        # The bucket is the key's, named by a digest: the key itself never reaches a row.
        key = config.secrets.sendgrid_api_key or settings.sendgrid.from_email
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        rates["email"] = SendRate.of(
            f"sendgrid:{digest}", settings.sendgrid.rate, settings.sendgrid.burst
        )
    return rates


def scheduled_jobs(app: Forewarn, roles: Iterable[str]) -> Scheduler:
    """The scheduler with the jobs of the given roles (not started)."""
    roles = set(roles)
    settings = app.config.settings.scheduler
    # Late binding: the election tells the scheduler when it takes the lead.
    took_lead: list[Callable[[bool], object]] = []
    election = LeaderElection(
        app.engine,
        settings.election_interval,
        candidate="scheduler" in roles,
        on_change=lambda leading: [hook(leading) for hook in took_lead],
    )
    scheduler = Scheduler(election, JobLedger(app.sessions, app.worker or "forewarn"))
    took_lead.append(scheduler.took_lead)
    if "scheduler" in roles:
        # Does nothing but succeed: its row says who leads and that the leader is alive.
        scheduler.every(LEADER_JOB, settings.election_interval, lambda: None, leader_only=True)
        # Offline/absence and pending timers, resolution from the latest readings,
        # flapping that settled and silences that ended.
        scheduler.every(
            "monitor-sweep",
            settings.offline_check_interval,
            lambda: app.monitors.sweep(app.clock.now(), peers=False),
            leader_only=True,
        )
        # Fleet-peer deviation reads every device's latest reading: its own, slower pace.
        scheduler.every(
            "peer-sweep",
            settings.peer_check_interval,
            lambda: app.monitors.sweep_peers(app.clock.now()),
            leader_only=True,
        )
        scheduler.every(
            "ticket-sweep",
            app.config.settings.ticketing.sweep_interval,
            lambda: sweep_tickets(app),
            leader_only=True,
        )
        scheduler.every(
            "orphan-notices",
            settings.orphan_check_interval,
            lambda: check_overdue(
                app.sessions, app.clock.now(), app.config.settings.notifications.follow_up_within
            ),
            leader_only=True,
        )
    if "scheduler" in roles:
        for name, job in care_jobs(app).items():
            scheduler.every(name, settings.care_interval, job, leader_only=True)
    if "scheduler" in roles and (app.config.settings.feeds or app.config.settings.delays.rules):
        from forewarn.feeds.runner import FeedRunner

        feeds = FeedRunner(app.config.settings, app.sessions, os.environ)
        scheduler.every(
            "feeds",
            feeds.tick,  # each feed is polled at its own interval; orders swept at theirs
            lambda: feeds.run_once(app.clock.now()),
            leader_only=True,
        )
        scheduler.after_stop(feeds.close)
    if "scheduler" in roles:
        from forewarn.store.retention import Retention

        retention = Retention(app.engine, app.config.settings.retention)
        scheduler.every(
            "retention",
            app.config.settings.retention.interval,
            lambda: retention.run(app.clock.now()),
            leader_only=True,
        )
    if "sender" in roles:
        # Every sender process may run this: rows are claimed with compare-and-set.
        scheduler.every("outbox", settings.outbox_interval, app.sender.run_once, leader_only=False)
    return scheduler


def care_jobs(app: Forewarn) -> dict[str, Callable[[], object]]:
    """The customer-care leader jobs, each in its own transaction with ``now`` injected."""
    settings = app.config.settings

    def self_service_deadlines() -> None:
        with app.sessions.begin() as session:
            self_service.sweep(session, app.clock.now(), settings.notifications.default_locale)

    def maintenance_notices() -> None:
        now = app.clock.now()
        with app.sessions.begin() as session:
            maintenance.announce(
                session,
                now,
                app.monitors.silences(session, now),
                settings.devices,
                {site.id: site for site in settings.sites},
                settings.care.maintenance_notice_before,
            )

    def late_conversations() -> None:
        with app.sessions.begin() as session:
            conversations.escalate_late(
                session,
                app.clock.now(),
                settings.care,
                supervisor=settings.ticketing.escalation.supervisor,
                dispatcher=settings.ticketing.dispatcher,
            )

    return {
        "self-service": self_service_deadlines,
        "maintenance-notices": maintenance_notices,
        "conversations": late_conversations,
    }


def sweep_tickets(app: Forewarn) -> None:
    """Escalations, declined jobs, auto-closes: one transaction per run (leader only)."""
    with app.sessions.begin() as session:
        app.ticketing.sweep(session, app.clock.now())


class Runtime:
    """A started forewarn: the roles' threads running until :meth:`stop`."""

    def __init__(self, app: Forewarn, roles: tuple[str, ...]) -> None:
        self.app = app
        self.roles = roles
        self.scheduler = scheduled_jobs(app, roles)
        self.started_at = datetime.now(UTC)
        self.ingester: Ingester | None = None
        self.web: WebServer | None = None
        self.watcher = (
            RuleWatcher(app.rules, app.config.settings.rules.reload_interval)
            if app.rules is not None
            else None
        )

    @classmethod
    def start(
        cls,
        config: Config,
        roles: tuple[str, ...] = ROLES,
        *,
        clock: Clock | None = None,
        console: TextIO | None = None,
        direct: bool = False,
        instance: int = 1,
    ) -> Runtime:
        """Build and start ``roles``. ``direct``: there is no broker; the ingester is built
        but not connected, and readings are handed to ``ingester.ingest_payloads``.
        ``instance`` numbers this ingest process (its MQTT client id)."""
        app = build(config, clock=clock, console=console)
        for note in app.channel_notes:
            log.warning(note)
        runtime = cls(app, roles)
        try:
            # Build every part before starting any, so a bad setting (an invalid API
            # token, say) stops start-up before a thread is running; the web port is
            # bound here too, so a port in use stops it as well.
            if "ingest" in roles:
                runtime.ingester = make_ingester(app, instance)
            if "web" in roles:
                runtime.web = WebServer(app, runtime.status(), runtime.ingester)
                runtime.web.bind()
        except Exception:
            if runtime.web is not None:
                runtime.web.close()
            app.engine.dispose()
            raise
        if runtime.ingester is not None and not direct:
            runtime.ingester.start()
        runtime.scheduler.start()
        if runtime.watcher is not None:
            runtime.watcher.start()
        if runtime.web is not None:
            runtime.web.start()
        return runtime

    def status(self) -> ProcessStatus:
        """What this process's ``/readyz`` and ``/metrics`` can see of its other roles."""
        from forewarn.web.health import ProcessStatus

        ingester = self.ingester
        return ProcessStatus(
            roles=self.roles,
            worker=self.app.worker,
            started_at=self.started_at,
            election=self.scheduler.election,
            ledger=self.scheduler.ledger,
            mqtt=ingester.link if ingester is not None else None,
        )

    def serve_until(self, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            pass

    def stop(self) -> None:
        if self.web is not None:
            self.web.stop()
        if self.ingester is not None:
            self.ingester.stop()
        self.scheduler.stop()
        if self.watcher is not None:
            self.watcher.stop()
        self.app.sender.close()
        self.app.engine.dispose()


def make_ingester(app: Forewarn, instance: int = 1) -> Ingester:
    settings = app.config.settings
    return Ingester(
        settings.broker,
        settings.ingest,
        client_id=settings.broker.client_id_for(instance),
        password=app.config.secrets.broker_password,
        sessions=app.sessions,
        clock=app.clock,
        on_batch=app.monitors.on_samples,
    )


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_app(
    app: Forewarn,
    environ: Mapping[str, str],
    ingester: Ingester | None = None,
    status: ProcessStatus | None = None,
) -> FastAPI:
    """The console, API and webhooks of ``app`` as one ASGI application (what ``run``
    serves; tests build the same one). ``status``: what ``/readyz`` sees of the process."""
    from forewarn.feeds.webhook import feed_webhook_router
    from forewarn.notifier.webhooks import configured_router
    from forewarn.telemetry.republish import publisher
    from forewarn.ticketing.commands import technician_commands
    from forewarn.web import alert_actions, dispatching, ticket_actions
    from forewarn.web.app import create_app
    from forewarn.web.auth import tokens_from_environ
    from forewarn.web.kpis import kpi_metrics

    sources = [ingest_metrics(ingester)] if ingester is not None else []
    sources.append(kpi_metrics(app.sessions, app.clock))
    return create_app(
        app.config,
        app.sessions,
        app.clock,
        tokens=tokens_from_environ(environ),
        metrics_sources=sources,
        process=status,
        publish=publisher(app.config.settings.broker, app.config.secrets.broker_password),
        monitors=app.monitors,
        rules=app.rules,
        extra_routers=[
            ticket_actions.router,
            alert_actions.make_router(app.monitors),
            dispatching.router,
            configured_router(
                app.config, app.sessions, app.clock, technician_commands(app.ticketing)
            ),
            feed_webhook_router(app.config.settings, app.sessions, app.clock, environ),
        ],
    )


class WebServer:
    """The console and API under uvicorn, in a background thread."""

    def __init__(
        self,
        app: Forewarn,
        status: ProcessStatus | None = None,
        ingester: Ingester | None = None,
    ) -> None:
        import uvicorn

        from forewarn.web.auth import tokens_from_environ

        web = app.config.settings.web
        self.open_console = not tokens_from_environ(os.environ) and not app.config.secrets.api_token
        if self.open_console and not is_loopback(web.host):
            if not web.allow_open_console:
                raise StartupError(
                    f"refusing to serve an open console (no FOREWARN_API_TOKEN or "
                    f"FOREWARN_TOKENS: anyone reaching it gets ops rights) on the non-loopback "
                    f"address {web.host}; set a token, bind web.host to 127.0.0.1, or set "
                    f"web.allow_open_console: true if something in front authenticates"
                )
            log.warning(
                "the console on %s is open (no token): every caller gets ops rights, "
                "because web.allow_open_console is true",
                web.host,
            )
        try:
            asgi = web_app(app, os.environ, ingester, status)
        except ValueError as exc:  # a token too short, an unknown role
            raise StartupError(str(exc)) from exc
        self._host, self._port = web.host, web.port
        # proxy_headers=False: X-Forwarded-* are believed only when web.trust_proxy says
        # so, by the console itself (forewarn.web.auth.client_of / is_secure).
        self._server = uvicorn.Server(
            # log_config=None: uvicorn's own handlers would bypass forewarn.logs' redaction.
            uvicorn.Config(
                asgi,
                host=web.host,
                port=web.port,
                log_level="warning",
                log_config=None,
                proxy_headers=False,
            )
        )
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        host = f"[{web.host}]" if ":" in web.host else web.host
        self.url = f"http://{host}:{web.port}/"

    def bind(self) -> None:
        """Take the port now, so that a port in use stops start-up with a clear error
        (uvicorn would only log it from its thread, leaving forewarn without a console)."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise StartupError(
                f"cannot listen on {self._host}:{self._port} for the console and webhooks: "
                f"{exc.strerror or exc} (is another forewarn running? change web.port)"
            ) from exc
        sock.set_inheritable(True)
        self._socket = sock

    def _serve(self) -> None:
        self._server.run(sockets=[self._socket] if self._socket is not None else None)

    def start(self) -> None:
        if self._socket is None:
            self.bind()
        self._thread.start()

    def close(self) -> None:
        """Release the port when start-up is abandoned before :meth:`start`."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.close()


def ingest_metrics(ingester: Ingester) -> Callable[[], Iterable[MetricSample]]:
    """The ingester's counters as ``forewarn_ingest_messages_total{outcome}`` and friends."""

    def samples() -> Iterable[MetricSample]:
        counts = ingester.stats.snapshot()
        for outcome in ("received", "accepted", "rejected"):
            yield (
                "forewarn_ingest_messages_total",
                {"outcome": outcome},
                float(getattr(counts, outcome)),
            )
        # Readings, not messages: one message carries several metrics.
        yield ("forewarn_ingest_readings_total", {"outcome": "stored"}, float(counts.stored))
        yield (
            "forewarn_ingest_readings_total",
            {"outcome": "duplicate"},
            float(counts.duplicates),
        )
        yield ("forewarn_ingest_batches_total", {"outcome": "committed"}, float(counts.batches))
        yield (
            "forewarn_ingest_batches_total",
            {"outcome": "failed"},
            float(counts.failed_batches),
        )
        yield ("forewarn_ingest_hook_failures_total", {}, float(counts.hook_failures))

    return samples
