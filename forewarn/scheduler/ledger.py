"""How each scheduled job is doing: in memory for this process, and as ``job_runs`` rows."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from forewarn.clock import SystemClock
from forewarn.store.jobs import JobRun

log = logging.getLogger(__name__)

Now = Callable[[], datetime]
_SYSTEM = SystemClock()


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

    def __init__(
        self, sessions: sessionmaker[Session], worker: str, now: Now = _SYSTEM.now
    ) -> None:
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
