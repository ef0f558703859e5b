"""Which job runs when (APScheduler 3), who leads, and how each job is doing.

Scheduled monitors must run on exactly one process: two schedulers sharing a job store
produce duplicate and missed runs. Leadership is one thing per process, held by one
thread (:class:`LeaderElection`): with PostgreSQL it takes a session advisory lock on a
connection of its own, checks every ``election_interval`` that the session still holds it,
and steps down the moment it does not (session terminated, database unreachable). If the
process dies its connection closes, the server releases the lock, and a standby takes it
at its next attempt. With SQLite there is one process, so it always leads.

Jobs never touch the lock: a leader-only job asks :attr:`LeaderElection.is_leader` and
does nothing on a standby. (Before, each job tried to take the lock itself; two jobs
starting at the same instant raced, the lock ended up on a pooled connection and the
process never led again while reporting itself healthy.)

Every run is recorded by :class:`JobLedger`: in memory for this process and as a
``job_runs`` row, so a web-only process can see whether the leader's jobs are running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection, Engine, create_engine, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from forewarn.store.jobs import JobRun

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x666F7265  # "fore"
LEADER_JOB = "leader"
"""A leader-only job that does nothing but succeed, every ``election_interval``: its
``job_runs`` row tells any process which worker leads and how recently it was alive."""

Now = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LeaderElection:
    """The one lock holder of a process: a thread that takes and keeps the leader lock.

    On PostgreSQL the lock lives on a dedicated connection (never pooled, so closing it
    really ends the session and releases the lock). The connection carries TCP keepalive
    and user-timeout settings of about one interval on both ends, so a check cannot hang
    on a dead network for minutes, and the server drops the orphaned session of a
    partitioned leader instead of holding its lock for the kernel's two hours.
    """

    def __init__(
        self,
        engine: Engine,
        interval: timedelta,
        *,
        candidate: bool = True,
        on_change: Callable[[bool], object] | None = None,
    ) -> None:
        self.interval = interval
        self.candidate = candidate
        """False in a process without the scheduler role: it never takes the lock."""
        self._postgresql = engine.dialect.name == "postgresql"
        self._leader = candidate and not self._postgresql
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        self._unreachable_logged = False
        self.since: datetime | None = _utcnow() if self._leader else None
        """When this process last became leader (``None`` while standby)."""
        self._lock_engine: Engine | None = None
        if self._postgresql and candidate:
            seconds = max(1, round(interval.total_seconds()))
            self._lock_engine = create_engine(
                engine.url,
                poolclass=NullPool,
                connect_args={
                    "connect_timeout": max(2, seconds),
                    "application_name": "forewarn-leader-lock",
                    "keepalives": 1,
                    "keepalives_idle": seconds,
                    "keepalives_interval": seconds,
                    "keepalives_count": 2,
                    # Unacknowledged data for longer than this breaks the connection.
                    "tcp_user_timeout": max(1000, int(interval.total_seconds() * 2000)),
                    "options": (
                        f"-c tcp_keepalives_idle={seconds} "
                        f"-c tcp_keepalives_interval={seconds} -c tcp_keepalives_count=2 "
                        f"-c statement_timeout={max(1000, int(interval.total_seconds() * 1000))}"
                    ),
                },
            )

    @property
    def is_leader(self) -> bool:
        """Whether this process leads now (as of its last check, at most one interval ago)."""
        return self._leader

    @property
    def candidate_needs_lock(self) -> bool:
        """Whether leading takes the PostgreSQL lock (else this process simply leads)."""
        return self._postgresql

    @property
    def backend(self) -> str:
        """How leadership is decided here, for ``/readyz``."""
        return "postgresql advisory lock" if self._postgresql else "single process (sqlite)"

    def start(self) -> None:
        """Try once now (so jobs that start right away already know), then keep checking."""
        if not self.candidate:
            return
        self.check()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval.total_seconds()):
            self.check()

    def check(self) -> bool:
        """One election round: confirm the lock if leading, else try to take it."""
        if not self._postgresql or not self.candidate:
            return self._leader
        try:
            leading = self._still_held() if self._leader else self._try_take()
        except SQLAlchemyError as exc:
            if self._leader or not self._unreachable_logged:
                log.warning(
                    "leader election: database unreachable (%s)%s",
                    type(getattr(exc, "orig", None) or exc).__name__,
                    "; stepping down" if self._leader else "",
                )
                self._unreachable_logged = True
            self._close()
            leading = False
        else:
            self._unreachable_logged = False
        if leading != self._leader:
            self._set(leading)
        return leading

    def _try_take(self) -> bool:
        if self._connection is None:
            assert self._lock_engine is not None
            self._connection = self._lock_engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
        got = self._connection.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}
        )
        return bool(got)

    def _still_held(self) -> bool:
        assert self._connection is not None
        # Not just "SELECT 1": the lock itself must still belong to this session.
        held = self._connection.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND objid = :key"
            ),
            {"key": LEADER_LOCK_KEY},
        )
        if not held:
            log.warning("leader election: this session no longer holds the leader lock")
            self._close()
        return bool(held)

    def _set(self, leading: bool) -> None:
        self._leader = leading
        if leading:
            self.since = _utcnow()
            log.info("this process is now the scheduler leader")
        else:
            self.since = None
            log.warning("this process is no longer the scheduler leader; standing by")
        if self._on_change is not None:
            self._on_change(leading)

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except Exception:
                log.debug("closing the leader connection failed", exc_info=True)
            self._connection = None

    def stop(self) -> None:
        """Stop checking and give up the lead now (a clean stop): a standby takes over at
        its next attempt instead of waiting for anything to time out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval.total_seconds() * 2 + 5)
        if self._postgresql and self.candidate:
            if self._leader and self._connection is not None:
                try:
                    self._connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK_KEY}
                    )
                except SQLAlchemyError:  # closing the session releases it anyway
                    log.debug("explicit unlock failed", exc_info=True)
            self._close()
            if self._leader:
                log.info("gave up the scheduler lead (stopping)")
            self._leader = False
            self.since = None
            if self._lock_engine is not None:
                self._lock_engine.dispose()


@dataclass(frozen=True)
class JobState:
    """How one scheduled job is doing in this process."""

    name: str
    interval: timedelta
    leader_only: bool
    last_started: datetime | None = None
    last_success: datetime | None = None
    first_success: datetime | None = None
    """The first success in this process (how soon a new leader got its jobs going)."""
    last_duration: float | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    successes: int = 0
    failures: int = 0


def describe_error(exc: BaseException) -> str:
    """Type and first line, short: never SQL parameters (which can hold message text)."""
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        return f"{type(exc).__name__} ({type(orig).__name__})" if orig else type(exc).__name__
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


class JobLedger:
    """Every scheduled job's last success and last error: in memory, and as ``job_runs``.

    The in-memory state answers this process's own questions at no cost; the rows let
    any other process (a ``--role web`` one, a scraper hitting a standby) see the leader's
    jobs. A failure to write a row is logged once and never fails the job.
    """

    def __init__(self, sessions: sessionmaker[Session], worker: str, now: Now = _utcnow) -> None:
        self._sessions = sessions
        self._worker = worker[:128]
        self._now = now
        self._lock = threading.Lock()
        self._jobs: dict[str, JobState] = {}
        self._write_failing = False
        self._dialect = sessions.kw["bind"].dialect.name if "bind" in sessions.kw else ""

    def register(self, name: str, interval: timedelta, *, leader_only: bool) -> None:
        with self._lock:
            self._jobs[name] = JobState(name, interval, leader_only)

    def states(self) -> dict[str, JobState]:
        """A copy of every registered job's state in this process."""
        with self._lock:
            return dict(self._jobs)

    def started(self, name: str) -> datetime:
        moment = self._now()
        with self._lock:
            self._jobs[name] = replace(self._jobs[name], last_started=moment)
        return moment

    def succeeded(self, name: str, started: datetime) -> None:
        moment = self._now()
        duration = (moment - started).total_seconds()
        with self._lock:
            state = replace(
                self._jobs[name],
                last_success=moment,
                first_success=self._jobs[name].first_success or moment,
                last_duration=duration,
                successes=self._jobs[name].successes + 1,
            )
            self._jobs[name] = state
        self._write(state, success=True)

    def failed(self, name: str, started: datetime, exc: BaseException) -> None:
        moment = self._now()
        with self._lock:
            state = replace(
                self._jobs[name],
                last_error_at=moment,
                last_error=describe_error(exc),
                last_duration=(moment - started).total_seconds(),
                failures=self._jobs[name].failures + 1,
            )
            self._jobs[name] = state
        self._write(state, success=False)

    def _write(self, state: JobState, *, success: bool) -> None:
        values: dict[str, Any] = {
            "interval_seconds": state.interval.total_seconds(),
            "leader_only": state.leader_only,
            "worker": self._worker,
            "last_started_at": state.last_started,
            "last_duration_seconds": state.last_duration,
        }
        if success:
            values["last_success_at"] = state.last_success
        else:
            values["last_error_at"] = state.last_error_at
            values["last_error"] = state.last_error
        counter = JobRun.successes if success else JobRun.failures
        try:
            with self._sessions.begin() as session:
                result = session.execute(
                    update(JobRun)
                    .where(JobRun.job == state.name)
                    .values(**values, **{counter.key: counter + 1})
                    .execution_options(synchronize_session=False)
                )
                if not result.rowcount:  # type: ignore[attr-defined]
                    insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
                    session.execute(
                        insert(JobRun)
                        .values(
                            job=state.name,
                            successes=int(success),
                            failures=int(not success),
                            **values,
                        )
                        .on_conflict_do_nothing(index_elements=["job"])
                    )
        except SQLAlchemyError as exc:
            if not self._write_failing:
                log.warning("cannot record the run of job %s: %s", state.name, describe_error(exc))
            self._write_failing = True
        else:
            if self._write_failing:
                log.info("recording job runs works again")
            self._write_failing = False

    def forget_others(self) -> None:
        """Delete the rows of leader jobs this (leading) process does not run: a job
        removed from the config (the last feed, say) would otherwise look late for ever
        to every ``/readyz``."""
        with self._lock:
            mine = [name for name, state in self._jobs.items() if state.leader_only]
        try:
            with self._sessions.begin() as session:
                session.execute(
                    delete(JobRun)
                    .where(JobRun.leader_only.is_(True), JobRun.job.not_in(mine))
                    .execution_options(synchronize_session=False)
                )
        except SQLAlchemyError as exc:
            log.warning("cannot tidy job_runs: %s", describe_error(exc))


def job_rows(session: Session) -> list[JobRun]:
    """Every job's row, by name."""
    return list(session.scalars(select(JobRun).order_by(JobRun.job)))


class Scheduler:
    """Periodic jobs. ``leader_only`` jobs do their work only while this process leads."""

    def __init__(self, election: LeaderElection, ledger: JobLedger) -> None:
        self.election = election
        self.ledger = ledger
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._after_stop: list[Callable[[], object]] = []
        self._failing: set[str] = set()
        self._leader_jobs: list[str] = []

    def every(
        self, name: str, interval: timedelta, job: Callable[[], Any], *, leader_only: bool
    ) -> None:
        self.ledger.register(name, interval, leader_only=leader_only)
        if leader_only:
            self._leader_jobs.append(name)

        def run() -> None:
            if leader_only and not self.election.is_leader:
                return
            started = self.ledger.started(name)
            try:
                job()
            except Exception as exc:
                if name not in self._failing:
                    log.exception("scheduled job %s failed; it will run again", name)
                else:
                    log.debug("scheduled job %s failed again", name, exc_info=True)
                self._failing.add(name)
                self.ledger.failed(name, started, exc)
            else:
                if name in self._failing:
                    log.info("scheduled job %s works again", name)
                    self._failing.discard(name)
                self.ledger.succeeded(name, started)

        self._scheduler.add_job(
            run,
            "interval",
            seconds=interval.total_seconds(),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),  # run once at start, then every interval
        )

    def took_lead(self, leading: bool) -> None:
        """A new leader tidies ``job_runs`` and runs its jobs now rather than up to one
        interval later."""
        if not leading:
            return
        if self._leader_jobs:
            self.ledger.forget_others()
        if not self._scheduler.running:
            return  # at start: every job's first run is already due now
        moment = datetime.now(UTC)
        for name in self._leader_jobs:
            job = self._scheduler.get_job(name)
            if job is not None:
                job.modify(next_run_time=moment)

    def start(self) -> None:
        self.election.start()
        if self.election.is_leader and not self.election.candidate_needs_lock:
            self.took_lead(True)  # SQLite: the one process leads without an election
        self._scheduler.start()

    def after_stop(self, cleanup: Callable[[], object]) -> None:
        """Run ``cleanup`` once the jobs have stopped (close what the jobs hold open)."""
        self._after_stop.append(cleanup)

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self.election.stop()
        for cleanup in self._after_stop:
            cleanup()
