"""Who leads: one thread per process that takes and keeps the PostgreSQL advisory lock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from forewarn.clock import SystemClock

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x666F7265  # "fore"


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
        self.since: datetime | None = SystemClock().now() if self._leader else None
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
            self.since = SystemClock().now()
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
