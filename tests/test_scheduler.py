"""The leader election and the job ledger, one election round at a time (``check()``).

The races and timings between real processes are in tests/faults/; here each round is
driven explicitly, so nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from forewarn.scheduler import LEADER_LOCK_KEY, JobLedger, LeaderElection, job_rows
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.schema import upgrade

SECOND = timedelta(seconds=1)


def test_it_lets_exactly_one_process_lead_on_postgresql_and_fails_over(postgres_url: str) -> None:
    first_engine, second_engine = make_engine(postgres_url), make_engine(postgres_url)
    first, second = LeaderElection(first_engine, SECOND), LeaderElection(second_engine, SECOND)
    try:
        assert first.check() is True
        assert second.check() is False
        assert first.check() is True  # re-checking keeps the lead
        first.stop()  # a clean stop releases the lock at once
        assert second.check() is True
        assert first.is_leader is False
    finally:
        first.stop()
        second.stop()
        first_engine.dispose()
        second_engine.dispose()


def test_it_steps_down_when_its_lock_session_is_terminated(postgres_url: str) -> None:
    engine, other_engine = make_engine(postgres_url), make_engine(postgres_url)
    changes: list[bool] = []
    leader = LeaderElection(engine, SECOND, on_change=changes.append)
    other = LeaderElection(other_engine, SECOND)
    try:
        assert leader.check() is True
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND objid = %s AND granted",
                (LEADER_LOCK_KEY,),
            )
        assert leader.check() is False  # the next check notices and steps down
        assert other.check() is True
        assert leader.check() is False  # and the lock is the other's now
        assert changes == [True, False]
    finally:
        leader.stop()
        other.stop()
        engine.dispose()
        other_engine.dispose()


def test_it_never_leads_in_a_process_without_the_scheduler_role(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    bystander = LeaderElection(engine, SECOND, candidate=False)
    try:
        bystander.start()
        assert bystander.is_leader is False
        assert bystander.check() is False
    finally:
        bystander.stop()
        engine.dispose()


def test_it_always_leads_on_sqlite_where_there_is_one_process(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        election = LeaderElection(engine, SECOND)
        assert election.check() is True
        assert election.is_leader is True
    finally:
        engine.dispose()


class Ticking:
    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.moment += timedelta(milliseconds=250)
        return self.moment


def test_the_ledger_keeps_each_jobs_last_success_and_error_as_a_row(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    clock = Ticking()
    ledger = JobLedger(sessions, "host:1", clock)
    ledger.register("sweep", timedelta(seconds=30), leader_only=True)
    try:
        ledger.succeeded("sweep", ledger.started("sweep"))
        ledger.failed("sweep", ledger.started("sweep"), ValueError("bad threshold\nsecond line"))
        ledger.succeeded("sweep", ledger.started("sweep"))
        with sessions() as session:
            (row,) = job_rows(session)
        state = ledger.states()["sweep"]
    finally:
        engine.dispose()

    assert (row.job, row.worker, row.leader_only, row.interval_seconds) == (
        "sweep",
        "host:1",
        True,
        30.0,
    )
    assert (row.successes, row.failures) == (2, 1)
    assert row.last_success_at == state.last_success == clock.moment
    assert row.last_error == "ValueError: bad threshold"
    assert state.first_success is not None and state.first_success < clock.moment


def test_a_new_leader_forgets_the_rows_of_jobs_it_no_longer_runs(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    try:
        before = JobLedger(sessions, "old:1")
        for name in ("sweep", "feeds"):
            before.register(name, SECOND, leader_only=True)
            before.succeeded(name, before.started(name))
        before.register("outbox", SECOND, leader_only=False)
        before.succeeded("outbox", before.started("outbox"))
        now = JobLedger(sessions, "new:1")  # the config no longer has a feed
        now.register("sweep", SECOND, leader_only=True)

        now.forget_others()

        with sessions() as session:
            assert [row.job for row in job_rows(session)] == ["outbox", "sweep"]
    finally:
        engine.dispose()
