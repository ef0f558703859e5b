"""Periodic jobs on APScheduler 3; leader-only ones work only while this process leads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from forewarn.scheduler.leader import LeaderElection
from forewarn.scheduler.ledger import JobLedger

log = logging.getLogger(__name__)

LEADER_JOB = "leader"
"""A leader-only job that does nothing but succeed, every ``election_interval``: its
``job_runs`` row tells any process which worker leads and how recently it was alive."""


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
