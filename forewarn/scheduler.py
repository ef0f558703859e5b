"""Which job runs when (APScheduler 3), and the guard that keeps one scheduler active.

Scheduled monitors must run on exactly one process: two schedulers sharing a job store
produce duplicate and missed runs. With PostgreSQL the active scheduler holds a session
advisory lock on a dedicated connection; if that process dies the connection closes, the
lock is released and another process takes over at its next attempt. With SQLite there is
one process, so it always leads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x666F7265  # "fore"


class LeaderLock:
    """Held by the one process allowed to run scheduled monitors."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._leader = engine.dialect.name != "postgresql"

    @property
    def is_leader(self) -> bool:
        return self._leader

    def try_acquire(self) -> bool:
        if self._engine.dialect.name != "postgresql" or self._leader_alive():
            return self._leader
        try:
            if self._connection is None:
                self._connection = self._engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            got = self._connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}
            )
        except SQLAlchemyError:
            log.warning("leader election: database unavailable", exc_info=True)
            self._drop()
            return False
        if got and not self._leader:
            log.info("this process is now the scheduler leader")
        self._leader = bool(got)
        return self._leader

    def _leader_alive(self) -> bool:
        if not self._leader or self._connection is None:
            return False
        try:
            self._connection.scalar(text("SELECT 1"))
        except SQLAlchemyError:
            log.warning("scheduler leader lost its database connection")
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        self._leader = False
        if self._connection is not None:
            try:
                # Invalidate rather than close: a closed connection goes back to the pool
                # still holding the session-level lock; an invalidated one is discarded.
                self._connection.invalidate()
                self._connection.close()
            except Exception:
                log.debug("closing the leader connection failed", exc_info=True)
            self._connection = None

    def release(self) -> None:
        """Give up the lead now (a clean stop), so another process takes over at once."""
        if self._leader and self._connection is not None:
            try:
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK_KEY}
                )
            except SQLAlchemyError:  # dropping the connection releases it anyway
                log.debug("explicit unlock failed", exc_info=True)
        self._drop()


class Scheduler:
    """Periodic jobs. ``leader_only`` jobs run only while this process holds the lock."""

    def __init__(self, lock: LeaderLock) -> None:
        self._lock = lock
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._after_stop: list[Callable[[], object]] = []

    def every(
        self, name: str, interval: timedelta, job: Callable[[], Any], *, leader_only: bool
    ) -> None:
        def run() -> None:
            if leader_only and not self._lock.try_acquire():
                return
            try:
                job()
            except Exception:
                log.exception("scheduled job %s failed; it will run again", name)

        self._scheduler.add_job(
            run,
            "interval",
            seconds=max(interval.total_seconds(), 0.1),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    def start(self) -> None:
        self._scheduler.start()

    def after_stop(self, cleanup: Callable[[], object]) -> None:
        """Run ``cleanup`` once the jobs have stopped (close what the jobs hold open)."""
        self._after_stop.append(cleanup)

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self._lock.release()
        for cleanup in self._after_stop:
            cleanup()
