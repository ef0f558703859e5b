"""``/metrics``: the Prometheus exposition, built with ``prometheus_client``.

Everything is read at scrape time by custom collectors on a private
:class:`~prometheus_client.CollectorRegistry` per application (never the global one, so
two apps in one process, as in the tests, do not mix). The store's figures are one
grouped query each, so a scrape costs the same with ten devices or a million:

* ``forewarn_devices{state}``, ``forewarn_alerts_open{severity}``,
  ``forewarn_tickets_open{status}``, ``forewarn_notifications{status}`` (every known
  status present, zero or not), ``forewarn_quarantine_total``;
* per scheduled job (from ``job_runs``, so a web-only process shows the leader's):
  ``forewarn_job_last_success_timestamp_seconds``, ``..._last_failure_timestamp_seconds``,
  ``forewarn_job_interval_seconds``, ``forewarn_job_late``, ``forewarn_job_runs_total``;
* ``forewarn_scheduler_leader`` (this process), ``forewarn_mqtt_connected`` and
  ``forewarn_mqtt_last_message_timestamp_seconds`` (ingest), ``forewarn_outbox_due`` and
  ``forewarn_outbox_oldest_due_age_seconds``, ``forewarn_feed_*`` per polled feed;
* histograms computed from the rows: ``forewarn_detect_to_ticket_seconds``,
  ``forewarn_ticket_to_first_notice_seconds``, ``forewarn_notification_send_seconds``;
* ``forewarn_build_info``.

In-process counters (ingest statistics and the like) join through ``metrics_sources``:
callables returning ``(name, labels, value)`` samples. A sample whose name ends in
``_total`` is exposed as a counter, any other as a gauge. A source that raises or yields
an invalid sample is left out of that scrape and logged once, without failing the scrape.

What each series means and the alerts to set on them: docs/operations.md.
"""

from __future__ import annotations

import logging
import platform
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Float, and_, case, cast, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

import forewarn
from forewarn.store.models import Alert, Notification, Ticket
from forewarn.store.orders import FeedCursor
from forewarn.ticketing.lifecycle import WORKING
from forewarn.web import queries
from forewarn.web.auth import Role
from forewarn.web.dependencies import ConsoleDep, api_access

if TYPE_CHECKING:
    from forewarn.web.console import Console

log = logging.getLogger(__name__)

Sample = tuple[str, Mapping[str, str], float]
MetricsSource = Callable[[], Iterable[Sample]]
"""Called at each scrape; returns ``(metric name, labels, value)`` samples."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

NOTIFICATION_STATUSES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "bounced",
    "failed",
    "merged",
    "cancelled",
)
"""Every status an outbox row can have; each is exposed, zero or not (unknown ones too)."""

DETECT_TO_TICKET_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
FIRST_NOTICE_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
SEND_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

STORE_NAMES = frozenset(
    {
        "forewarn_devices",
        "forewarn_alerts_open",
        "forewarn_tickets_open",
        "forewarn_notifications",
        "forewarn_quarantine_total",
        "forewarn_quarantine",
        "forewarn_job_last_success_timestamp_seconds",
        "forewarn_job_last_failure_timestamp_seconds",
        "forewarn_job_interval_seconds",
        "forewarn_job_late",
        "forewarn_job_runs_total",
        "forewarn_job_runs",
        "forewarn_scheduler_leader",
        "forewarn_mqtt_connected",
        "forewarn_mqtt_last_message_timestamp_seconds",
        "forewarn_outbox_due",
        "forewarn_outbox_oldest_due_age_seconds",
        "forewarn_feed_last_success_timestamp_seconds",
        "forewarn_feed_consecutive_failures",
        "forewarn_detect_to_ticket_seconds",
        "forewarn_ticket_to_first_notice_seconds",
        "forewarn_notification_send_seconds",
        "forewarn_build_info",
        "forewarn_build",
        "forewarn_conversations_open",
        "forewarn_conversations_late",
    }
)
"""Names forewarn's own collectors export; in-process sources may not reuse them."""


class StoreCollector(Collector):
    """The figures read from the rows (and this process's live state) at each scrape."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def collect(self) -> Iterator[Metric]:
        console = self._console
        now = console.clock.now()
        with console.sessions() as session:
            yield from _store(session, now, console)
            yield from _jobs(session, now, console)
            yield from _process(console)
            yield from _outbox_and_feeds(session, now, console)
            yield from _histograms(session)
            yield from _conversations(session, now, console)


def _store(session: Session, now: datetime, console: Console) -> Iterator[Metric]:
    devices = GaugeMetricFamily(
        "forewarn_devices",
        "Devices by whether they reported within the shortest offline monitor's window "
        "(reporting) or not (silent).",
        labels=["state"],
    )
    for state, n in queries.device_states(session, now, console.silent_after).items():
        devices.add_metric([state], n)
    yield devices
    alerts = GaugeMetricFamily(
        "forewarn_alerts_open",
        "Open (pending or firing) alerts by severity; every severity present.",
        labels=["severity"],
    )
    for severity, n in queries.open_alerts_by_severity(session).items():
        alerts.add_metric([severity], n)
    yield alerts
    tickets = GaugeMetricFamily(
        "forewarn_tickets_open",
        "Tickets holding a fault episode, by status; every such status present.",
        labels=["status"],
    )
    counts = dict.fromkeys(WORKING, 0) | queries.open_tickets_by_status(session)
    for status, n in sorted(counts.items()):
        tickets.add_metric([status], n)
    yield tickets
    notifications = GaugeMetricFamily(
        "forewarn_notifications",
        "Outbox rows (one message to one recipient on one channel) by status; every "
        "known status present.",
        labels=["status"],
    )
    counts = dict.fromkeys(NOTIFICATION_STATUSES, 0) | queries.notifications_by_status(session)
    for status, n in sorted(counts.items()):
        notifications.add_metric([status], n)
    yield notifications
    quarantine = CounterMetricFamily(
        "forewarn_quarantine",
        "Rejected inputs (telemetry, feed rows, webhook bodies) kept in quarantine with "
        "their reason.",
    )
    quarantine.add_metric([], queries.quarantined(session))
    yield quarantine


def _conversations(session: Session, now: datetime, console: Console) -> Iterator[Metric]:
    queues = [q.id for q in console.config.settings.care.queues]
    open_ = GaugeMetricFamily(
        "forewarn_conversations_open",
        "Open conversations with customers by queue; every configured queue present.",
        labels=["queue"],
    )
    late = GaugeMetricFamily(
        "forewarn_conversations_late",
        "Open conversations past their response due time (waiting for a person) by queue; "
        "every configured queue present.",
        labels=["queue"],
    )
    counts = dict.fromkeys(queues, (0, 0)) | queries.open_conversations(session, now)
    for queue, (n, overdue) in sorted(counts.items()):
        open_.add_metric([queue], n)
        late.add_metric([queue], overdue)
    yield open_
    yield late


def _jobs(session: Session, now: datetime, console: Console) -> Iterator[Metric]:
    from forewarn.web.health import job_views

    views = job_views(session, now, console.config.settings, console.process)
    success = GaugeMetricFamily(
        "forewarn_job_last_success_timestamp_seconds",
        "Unix time of each scheduled job's last successful run, by any process (0: never). "
        "Alert when time() minus this exceeds 3 x forewarn_job_interval_seconds.",
        labels=["job"],
    )
    failure = GaugeMetricFamily(
        "forewarn_job_last_failure_timestamp_seconds",
        "Unix time of each scheduled job's last failed run (0: never failed).",
        labels=["job"],
    )
    interval = GaugeMetricFamily(
        "forewarn_job_interval_seconds", "How often each scheduled job runs.", labels=["job"]
    )
    late = GaugeMetricFamily(
        "forewarn_job_late",
        "1 when the job has not succeeded for health.late_after_intervals of its intervals "
        "(what makes /readyz answer 503), else 0.",
        labels=["job"],
    )
    runs = CounterMetricFamily(
        "forewarn_job_runs",
        "Runs of each scheduled job by outcome, summed over every process that ran it.",
        labels=["job", "outcome"],
    )
    for view in views:
        success.add_metric([view.name], _epoch(view.last_success))
        failure.add_metric([view.name], _epoch(view.last_error_at))
        interval.add_metric([view.name], view.interval.total_seconds())
        late.add_metric([view.name], 1.0 if view.late else 0.0)
        runs.add_metric([view.name, "success"], view.successes)
        runs.add_metric([view.name, "failure"], view.failures)
    yield from (success, failure, interval, late, runs)


def _process(console: Console) -> Iterator[Metric]:
    process = console.process
    election = process.election
    if election is not None and election.candidate:
        leader = GaugeMetricFamily(
            "forewarn_scheduler_leader",
            "1 while this process holds the scheduler lead, 0 while it stands by. The sum "
            "over all scheduler processes should be exactly 1.",
        )
        leader.add_metric([], 1.0 if election.is_leader else 0.0)
        yield leader
    if process.mqtt is not None:
        link = process.mqtt()
        connected = GaugeMetricFamily(
            "forewarn_mqtt_connected", "1 while the ingester is connected to the MQTT broker."
        )
        connected.add_metric([], 1.0 if link.connected else 0.0)
        yield connected
        last = GaugeMetricFamily(
            "forewarn_mqtt_last_message_timestamp_seconds",
            "Unix time of the last MQTT message this ingester received (0: none yet).",
        )
        last.add_metric([], link.last_message_at or 0.0)
        yield last
    info = InfoMetricFamily("forewarn_build", "The running forewarn: version and Python; always 1.")
    info.add_metric([], {"version": forewarn.__version__, "python": platform.python_version()})
    yield info


def _outbox_and_feeds(session: Session, now: datetime, console: Console) -> Iterator[Metric]:
    from forewarn.web.health import outbox_due

    count, age = outbox_due(session, now)
    due = GaugeMetricFamily(
        "forewarn_outbox_due",
        "Messages due to be sent now (queued and due, or their sender's lease expired).",
    )
    due.add_metric([], count)
    yield due
    oldest = GaugeMetricFamily(
        "forewarn_outbox_oldest_due_age_seconds",
        "How long the oldest due message has been waiting for a sender (0: none due).",
    )
    oldest.add_metric([], age)
    yield oldest
    success = GaugeMetricFamily(
        "forewarn_feed_last_success_timestamp_seconds",
        "Unix time of each polled feed's last successful poll (0: never).",
        labels=["feed"],
    )
    failures = GaugeMetricFamily(
        "forewarn_feed_consecutive_failures",
        "Failed polls of each feed since its last success (drives its backoff).",
        labels=["feed"],
    )
    for cursor in session.scalars(select(FeedCursor).order_by(FeedCursor.feed)):
        success.add_metric([cursor.feed], _epoch(cursor.last_success_at))
        failures.add_metric([cursor.feed], cursor.failures)
    yield success
    yield failures


def _histograms(session: Session) -> Iterator[Metric]:
    dialect = session.get_bind().dialect.name
    detect = _seconds(dialect, Alert.pending_since, Ticket.opened_at)
    yield _histogram(
        session,
        "forewarn_detect_to_ticket_seconds",
        "From the first breach of an alert (pending) to the ticket it opened.",
        DETECT_TO_TICKET_BUCKETS,
        select(detect.label("d"))
        .select_from(Alert)
        .join(Ticket, Alert.ticket_id == Ticket.id)
        .where(Alert.pending_since <= Ticket.opened_at),
    )
    first = (
        select(
            Notification.ticket_id.label("ticket_id"),
            func.min(Notification.sent_at).label("first_sent"),
        )
        .where(Notification.recipient_role == "customer", Notification.sent_at.is_not(None))
        .group_by(Notification.ticket_id)
        .subquery()
    )
    notice = _seconds(dialect, Ticket.opened_at, first.c.first_sent)
    yield _histogram(
        session,
        "forewarn_ticket_to_first_notice_seconds",
        "From a ticket's opening to the first customer message a provider accepted "
        "(quiet hours and merge windows included).",
        FIRST_NOTICE_BUCKETS,
        select(notice.label("d")).select_from(Ticket).join(first, first.c.ticket_id == Ticket.id),
    )
    send = _seconds(dialect, Notification.created_at, Notification.sent_at)
    yield _histogram(
        session,
        "forewarn_notification_send_seconds",
        "From an outbox row's creation to the provider accepting it (retries, quiet "
        "hours and merge windows included).",
        SEND_BUCKETS,
        select(send.label("d")).where(Notification.sent_at.is_not(None)),
    )


def _seconds(dialect: str, start: Any, end: Any) -> ColumnElement[float]:
    """``end - start`` in seconds, on either database."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _histogram(
    session: Session,
    name: str,
    documentation: str,
    buckets: Sequence[float],
    rows: Any,
) -> HistogramMetricFamily:
    """One aggregate query: a count per bucket, the total and the sum."""
    durations = rows.subquery()
    d = durations.c.d
    columns = [func.count(), func.coalesce(func.sum(d), 0.0)] + [
        func.coalesce(func.sum(_case_le(d, bound)), 0) for bound in buckets
    ]
    total, sum_, *cumulative = session.execute(select(*columns)).one()
    family = HistogramMetricFamily(name, documentation)
    family.add_metric(
        [],
        [(_bound(b), float(n)) for b, n in zip(buckets, cumulative, strict=True)]
        + [("+Inf", float(total))],
        sum_value=float(sum_),
    )
    return family


def _case_le(column: Any, bound: float) -> ColumnElement[int]:
    return case((and_(column.is_not(None), column <= bound), 1), else_=0)


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _epoch(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


class SourceReader:
    """Collects the samples of the in-process sources, logging each new problem once."""

    def __init__(self, sources: Sequence[MetricsSource]) -> None:
        self.sources = tuple(sources)
        self._reported: set[str] = set()

    def families(self, taken: frozenset[str] = STORE_NAMES) -> list[Metric]:
        """Families from every source; ``taken`` names (the store's) cannot be reused."""
        found: dict[str, Metric] = {}
        for source in self.sources:
            try:
                samples = [_checked(sample, taken) for sample in source()]
            except Exception as exc:  # noqa: BLE001 - a broken counter must not take the scrape down
                self._report(f"metrics source {_name_of(source)} left out: {exc}")
                continue
            for name, labels, value in samples:
                counter = name.endswith("_total")
                family_name = name.removesuffix("_total") if counter else name
                family = found.get(family_name)
                if family is None:
                    family = Metric(
                        family_name,
                        f"{name} (in-process counter of this process since it started)."
                        if counter
                        else f"{name} (in-process gauge of this process).",
                        "counter" if counter else "gauge",
                    )
                    found[family_name] = family
                family.add_sample(name, labels, value)
        return list(found.values())

    def _report(self, problem: str) -> None:
        if problem not in self._reported:
            self._reported.add(problem)
            log.error("%s", problem)


class SourcesCollector(Collector):
    def __init__(self, reader: SourceReader) -> None:
        self._reader = reader

    def collect(self) -> Iterator[Metric]:
        yield from self._reader.families()


def _name_of(source: MetricsSource) -> str:
    return getattr(source, "__qualname__", None) or repr(source)


def _checked(sample: Sample, taken: frozenset[str]) -> tuple[str, dict[str, str], float]:
    name, labels, value = sample
    if not _METRIC_NAME.match(name):
        raise ValueError(f"invalid metric name {name!r}")
    if name in taken or name.removesuffix("_total") in taken:
        raise ValueError(f"metric name {name!r} belongs to the store's gauges")
    for key in labels:
        if not _LABEL_NAME.match(key) or key.startswith("__"):
            raise ValueError(f"invalid label name {key!r} on {name}")
    return name, {str(k): str(v) for k, v in labels.items()}, float(value)


def registry_for(console: Console) -> CollectorRegistry:
    """A private registry with forewarn's collectors (never the process-global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(console))
    registry.register(SourcesCollector(console.metrics))
    return registry


router = APIRouter(tags=["metrics"], dependencies=[Depends(api_access(Role.viewer))])


@router.get("/metrics", response_class=Response)
def metrics(console: ConsoleDep, request: Request) -> Response:
    """The exposition; needs a viewer's bearer token when tokens are configured."""
    registry = getattr(request.app.state, "metrics_registry", None)
    if not isinstance(registry, CollectorRegistry):
        registry = request.app.state.metrics_registry = registry_for(console)
    try:
        body = generate_latest(registry)
    except SQLAlchemyError as exc:
        console.database_watch.observe(False, type(exc).__name__)
        return Response(
            "# the database is unreachable: no figures\n", status_code=503, media_type=CONTENT_TYPE
        )
    return Response(body, media_type=CONTENT_TYPE)
