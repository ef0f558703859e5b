"""``/healthz`` (is the process up?) and ``/readyz`` (is it doing its work?). No token.

``/healthz`` stays a cheap liveness probe: ``SELECT 1``. ``/readyz`` reports, for the
roles this process serves, everything an operator needs to see that nothing has silently
stopped, and answers 503 when a role is not doing its work:

* database: reachable;
* mqtt (ingest role): connected, since when, age of the last message; not ready after
  ``health.mqtt_grace`` without a connection;
* scheduler (scheduler and web roles): whether this process leads or stands by, and per
  job its last success and lag, read from the ``job_runs`` rows so a web-only process
  sees the leader's jobs; not ready when a leader job has not succeeded for
  ``health.late_after_intervals`` of its intervals (the ``leader`` job covers "nobody
  leads at all");
* sender (sender role): the age of the oldest due outbox row; not ready beyond
  ``health.outbox_due_grace``;
* feeds: each polled feed's last successful poll (shown, never failing readiness: a
  partner's outage is not ours; alert on the metric instead).

What each field means and which alerts to set: docs/operations.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import func, or_, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from forewarn.config.schema import Settings
from forewarn.scheduler import LEADER_JOB, JobLedger, LeaderElection
from forewarn.store.jobs import JobRun
from forewarn.store.models import Notification
from forewarn.store.orders import FeedCursor
from forewarn.telemetry.ingest import MqttLink
from forewarn.web.console import Console
from forewarn.web.dependencies import ConsoleDep

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


class DatabaseWatch:
    """Logs when the database becomes unreachable and when it is back, not every probe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ok = True

    def observe(self, ok: bool, problem: str = "") -> None:
        """Record one probe's outcome; logs only when it differs from the last."""
        with self._lock:
            changed, self._ok = ok != self._ok, ok
        if changed and ok:
            log.info("health check: database reachable again")
        elif changed:
            log.error("health check: database unreachable: %s", problem)


@dataclass(frozen=True)
class ProcessStatus:
    """What the web role can see of the rest of its own process."""

    roles: tuple[str, ...] = ("web",)
    worker: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    election: LeaderElection | None = None
    ledger: JobLedger | None = None
    mqtt: Callable[[], MqttLink] | None = None


@router.get("/healthz")
def healthz(console: ConsoleDep) -> JSONResponse:
    """200 ``{"status": "ok", "database": "ok"}`` when ``SELECT 1`` works, else 503."""
    try:
        with console.sessions() as session:
            session.execute(text("SELECT 1")).scalar_one()
    except SQLAlchemyError as exc:
        # The type only: driver messages can name hosts and users.
        console.database_watch.observe(False, type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    console.database_watch.observe(True)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/readyz")
def readyz(console: ConsoleDep) -> JSONResponse:
    """200 when every role of this process is doing its work, else 503; the body says
    what was checked and, under ``problems``, what is wrong."""
    now = console.clock.now()
    try:
        with console.sessions() as session:
            report = readiness(session, now, console.config.settings, console.process)
            if console.rules is not None:
                report["rules"] = _rules(session, now, console, report["problems"])
                if report["problems"]:
                    report["status"] = "unavailable"
    except SQLAlchemyError as exc:
        console.database_watch.observe(False, type(exc).__name__)
        body = {
            "status": "unavailable",
            "roles": list(console.process.roles),
            "worker": console.process.worker,
            "database": {"ok": False},
            "problems": ["database: unreachable"],
        }
        return JSONResponse(body, status_code=503)
    console.database_watch.observe(True)
    return JSONResponse(report, status_code=200 if not report["problems"] else 503)


def _rules(
    session: Session, now: datetime, console: Console, problems: list[str]
) -> dict[str, Any]:
    """Which rule version this process runs; behind the current one for longer than three
    reload intervals (it cannot validate it, or cannot read it) is a problem."""
    from forewarn.store.rulesets import pointer_state

    assert console.rules is not None
    running = console.rules.number
    current, since = pointer_state(session)
    late = 3 * console.config.settings.rules.reload_interval
    if current is not None and current != running and since is not None and now - since > late:
        problems.append(f"rules: running version {running}, but version {current} is current")
    return {"running": running, "current": current}


def readiness(
    session: Session, now: datetime, settings: Settings, process: ProcessStatus
) -> dict[str, Any]:
    """The ``/readyz`` body for ``process`` as of ``now``; ``problems`` empty when ready."""
    problems: list[str] = []
    roles = set(process.roles)
    session.execute(text("SELECT 1")).scalar_one()
    body: dict[str, Any] = {
        "status": "ok",
        "roles": list(process.roles),
        "worker": process.worker,
        "database": {"ok": True},
    }
    if "ingest" in roles and process.mqtt is not None:
        body["mqtt"] = _mqtt(process.mqtt(), settings, problems)
    if roles & {"scheduler", "web"} or (process.ledger is not None and process.ledger.states()):
        body["scheduler"] = _scheduler(session, now, settings, process, problems)
    if "sender" in roles:
        body["sender"] = _sender(session, now, settings, problems)
    feeds = _feeds(session, now)
    if feeds:
        body["feeds"] = feeds
    body["problems"] = problems
    if problems:
        body["status"] = "unavailable"
    return body


def _mqtt(link: MqttLink, settings: Settings, problems: list[str]) -> dict[str, Any]:
    wall = time.time()
    state_age = max(0.0, wall - link.since)
    out: dict[str, Any] = {
        "connected": link.connected,
        "since": _iso_epoch(link.since),
        "seconds_in_state": round(state_age, 3),
        "last_message_age_seconds": (
            round(max(0.0, wall - link.last_message_at), 3)
            if link.last_message_at is not None
            else None
        ),
        "grace_seconds": settings.health.mqtt_grace.total_seconds(),
    }
    out["ok"] = link.connected or state_age <= settings.health.mqtt_grace.total_seconds()
    if not out["ok"]:
        problems.append(f"mqtt: not connected to the broker for {state_age:.0f}s")
    return out


@dataclass(frozen=True)
class JobView:
    """One scheduled job as this process sees it: its row, joined with its own state."""

    name: str
    interval: timedelta
    leader_only: bool
    last_success: datetime | None
    first_success_here: datetime | None
    age: float
    """Seconds since the last success (or since this process started, if never)."""
    late: bool
    """Judged here: no success for ``health.late_after_intervals`` intervals."""
    worker: str | None
    successes: int
    failures: int
    last_error_at: datetime | None
    last_error: str | None


def job_views(
    session: Session, now: datetime, settings: Settings, process: ProcessStatus
) -> list[JobView]:
    """Every job this process should watch: its own, and (scheduler or web role) the
    leader's from ``job_runs``, always including the ``leader`` heartbeat so that "nobody
    leads" shows as a late job."""
    late_after = settings.health.late_after_intervals
    rows = {row.job: row for row in session.scalars(select(JobRun))}
    expected: dict[str, tuple[timedelta, bool]] = {}
    if {"scheduler", "web"} & set(process.roles):
        expected[LEADER_JOB] = (settings.scheduler.election_interval, True)
        expected.update(
            {
                name: (timedelta(seconds=row.interval_seconds), True)
                for name, row in rows.items()
                if row.leader_only
            }
        )
    local = process.ledger.states() if process.ledger is not None else {}
    expected.update({name: (s.interval, s.leader_only) for name, s in local.items()})
    views = []
    for name in sorted(expected):
        interval, leader_only = expected[name]
        row = rows.get(name)
        mine = local.get(name)
        last_success = row.last_success_at if row is not None else None
        if mine is not None and mine.last_success is not None:
            last_success = max(filter(None, (last_success, mine.last_success)))
        reference = last_success or process.started_at
        age = max(0.0, (now - reference).total_seconds())
        late = age > interval.total_seconds() * late_after
        if not leader_only and "sender" not in process.roles:
            late = False  # another process's sender job: shown, not judged here
        views.append(
            JobView(
                name=name,
                interval=interval,
                leader_only=leader_only,
                last_success=last_success,
                first_success_here=mine.first_success if mine is not None else None,
                age=age,
                late=late,
                worker=row.worker if row is not None else None,
                successes=row.successes if row is not None else 0,
                failures=row.failures if row is not None else 0,
                last_error_at=row.last_error_at if row is not None else None,
                last_error=row.last_error if row is not None else None,
            )
        )
    return views


def _scheduler(
    session: Session,
    now: datetime,
    settings: Settings,
    process: ProcessStatus,
    problems: list[str],
) -> dict[str, Any]:
    late_after = settings.health.late_after_intervals
    views = job_views(session, now, settings, process)
    election = process.election
    if election is not None and election.candidate:
        this_process = "leader" if election.is_leader else "standby"
    else:
        this_process = "not a candidate"
    leader = next((v for v in views if v.name == LEADER_JOB), None)
    out: dict[str, Any] = {
        "this_process": this_process,
        "leader_since": _iso(election.since) if election is not None else None,
        "leader": leader.worker if leader is not None else None,
        "election": election.backend if election is not None else None,
        "election_interval_seconds": settings.scheduler.election_interval.total_seconds(),
        "late_after_intervals": late_after,
        "jobs": {},
    }
    for view in views:
        interval = view.interval.total_seconds()
        out["jobs"][view.name] = {
            "leader_only": view.leader_only,
            "interval_seconds": interval,
            "last_success": _iso(view.last_success),
            "first_success_here": _iso(view.first_success_here),
            "age_seconds": round(view.age, 3) if view.last_success is not None else None,
            "lag_seconds": round(max(0.0, view.age - interval), 3),
            "late": view.late,
            "worker": view.worker,
            "successes": view.successes,
            "failures": view.failures,
            "last_error_at": _iso(view.last_error_at),
            # The exception type only: the message can name hosts, paths or users.
            "last_error": (view.last_error or "").split(":", 1)[0] or None,
        }
        if view.late:
            what = (
                "no live scheduler leader (none holds the lock, or it hangs)"
                if view.name == LEADER_JOB
                else f"job {view.name} has not succeeded"
            )
            since = f"for {view.age:.0f}s" if view.last_success is not None else "since start-up"
            problems.append(
                f"scheduler: {what} {since} (interval {interval:g}s, "
                f"late after {late_after} intervals)"
            )
    return out


def outbox_due(session: Session, now: datetime) -> tuple[int, float]:
    """How many outbox rows are due (or have an expired lease), and the oldest's age."""
    due = or_(
        (Notification.status == "queued") & (Notification.next_attempt_at <= now),
        (Notification.status == "sending") & (Notification.lease_until < now),
    )
    count, oldest = session.execute(
        select(func.count(), func.min(Notification.next_attempt_at)).where(due)
    ).one()
    if isinstance(oldest, str):  # SQLite aggregates skip the column type
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return int(count or 0), age


def _sender(
    session: Session, now: datetime, settings: Settings, problems: list[str]
) -> dict[str, Any]:
    count, age = outbox_due(session, now)
    grace = settings.health.outbox_due_grace.total_seconds()
    out = {
        "due": count,
        "oldest_due_age_seconds": round(age, 3),
        "grace_seconds": grace,
        "ok": age <= grace,
    }
    if age > grace:
        problems.append(f"sender: a message has been due for {age:.0f}s (grace {grace:g}s)")
    return out


def _feeds(session: Session, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cursor in session.scalars(select(FeedCursor).order_by(FeedCursor.feed)):
        out[cursor.feed] = {
            "last_success": _iso(cursor.last_success_at),
            "age_seconds": (
                round((now - cursor.last_success_at).total_seconds(), 3)
                if cursor.last_success_at is not None
                else None
            ),
            "failures": cursor.failures,
        }
    return out


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _iso_epoch(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()
