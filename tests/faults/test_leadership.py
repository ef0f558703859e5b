"""Leadership with real ``forewarn run`` processes on PostgreSQL.

Every interval here is :data:`INTERVAL` (1 s; 2 s for the 50 starts), so "within 2
intervals" is 2 s (4 s). Times are measured between wall clocks of processes on the same
machine: the test's moment of the fault and the new leader's own ``leader_since`` from
``/readyz``. The figures are printed (``pytest -rP tests/faults`` shows them) for
docs/operations.md.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from forewarn.scheduler import LEADER_LOCK_KEY
from forewarn.store.engine import make_engine
from forewarn.store.schema import upgrade
from tests.faults.conftest import Spawn
from tests.faults.process import INTERVAL, Forewarn, wait_for
from tests.services import Mosquitto, scratch_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

LEADER_JOBS = {"leader", "monitor-sweep", "peer-sweep", "ticket-sweep", "orphan-notices"}


def leading(*children: Forewarn) -> list[Forewarn]:
    return [c for c in children if c.role() == "leader"]


def first_runs_after_taking_the_lead(child: Forewarn) -> dict[str, float]:
    """Seconds from ``leader_since`` to each leader job's first success in that process."""
    body = child.readyz()[1]["scheduler"]
    since = datetime.fromisoformat(body["leader_since"])
    return {
        name: (datetime.fromisoformat(job["first_success_here"]) - since).total_seconds()
        for name, job in body["jobs"].items()
        if job["leader_only"] and job["first_success_here"]
    }


def all_leader_jobs_ran(child: Forewarn) -> bool:
    try:
        return set(first_runs_after_taking_the_lead(child)) >= LEADER_JOBS
    except Exception:  # not up yet, or no leader yet
        return False


STARTS, LANES = 50, 2
START_INTERVAL = 2.0
"""The 50 starts use 2 s intervals: the first runs happen at once either way, and the
limit (2 intervals) then leaves room for a busy CI machine's scheduling hiccups."""


@pytest.mark.slow
@pytest.mark.mosquitto
@pytest.mark.timeout(600)
def test_fifty_consecutive_starts_all_run_their_leader_jobs_within_two_intervals(
    tmp_path: Path, migrated_postgres: str, mosquitto: Mosquitto
) -> None:
    """Fifty starts of ``forewarn run`` (every role), in two lanes of consecutive starts
    on two databases so that both CPU cores work; each start must lead and run every
    leader job within 2 intervals. Every other start follows a kill -9 of the previous
    process rather than a clean stop."""

    def lane(number: int, database_url: str) -> float:
        slowest = 0.0
        for n in range(STARTS // LANES):
            child = Forewarn(
                tmp_path,
                database_url,
                (),
                mosquitto.port,
                f"lane{number}-{n:02d}",
                client_id=f"lane{number}",
                interval=START_INTERVAL,
            )
            child.start()
            try:
                child.wait_up()
                wait_for(lambda c=child: all_leader_jobs_ran(c), timeout=10 * START_INTERVAL)
                delays = first_runs_after_taking_the_lead(child)
                assert max(delays.values()) <= 2 * START_INTERVAL, (child.name, delays)
                slowest = max(slowest, *delays.values())
                if n % 2:
                    child.kill()
                else:
                    assert child.stop() == 0, child.tail()
            finally:
                if child.process is not None and child.process.poll() is None:
                    child.process.kill()
                    child.process.wait(timeout=10)
                child.http.close()
        return slowest

    with scratch_postgres() as second_url:
        engine = make_engine(second_url)
        upgrade(engine)
        engine.dispose()
        with ThreadPoolExecutor(LANES) as pool:
            lanes = [pool.submit(lane, 0, migrated_postgres), pool.submit(lane, 1, second_url)]
            slowest = max(future.result() for future in lanes)
    print(
        f"FIGURE 50 starts: {STARTS}/{STARTS} led and ran every leader job; slowest first "
        f"run {slowest:.3f}s after taking the lead (limit {2 * START_INTERVAL:g}s)"
    )


def test_a_standby_leads_within_two_intervals_after_the_leader_is_killed(spawn: Spawn) -> None:
    first = spawn("first", "scheduler", "web")
    first.wait_up()
    wait_for(lambda: first.role() == "leader", timeout=10)
    standby = spawn("standby", "scheduler", "web")
    standby.wait_up()
    assert standby.role() == "standby"

    killed_at = datetime.now(UTC)
    first.kill()
    wait_for(lambda: standby.role() == "leader", timeout=10 * INTERVAL + 5)

    since = standby.leader_since()
    assert since is not None
    failover = (since - killed_at).total_seconds()
    print(f"FIGURE failover after kill -9: {failover:.3f}s (limit {2 * INTERVAL:g}s)")
    assert failover <= 2 * INTERVAL
    wait_for(lambda: all_leader_jobs_ran(standby), timeout=10)
    assert max(first_runs_after_taking_the_lead(standby).values()) <= 2 * INTERVAL


def test_a_leader_whose_lock_session_is_terminated_steps_down_and_someone_leads(
    spawn: Spawn, migrated_postgres: str
) -> None:
    first = spawn("first", "scheduler", "web")
    first.wait_up()
    wait_for(lambda: first.role() == "leader", timeout=10)
    standby = spawn("standby", "scheduler", "web")
    standby.wait_up()
    assert standby.role() == "standby"

    with psycopg.connect(migrated_postgres, autocommit=True) as admin:
        pid = admin.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (LEADER_LOCK_KEY,),
        ).fetchone()
        assert pid is not None
        terminated_at = datetime.now(UTC)
        start = time.monotonic()
        admin.execute("SELECT pg_terminate_backend(%s)", (pid[0],))

    # The old leader notices at its next check and stops doing leader work.
    def first_stepped_down() -> bool:
        since = first.leader_since()
        return since is None or since > terminated_at

    stepped_down = wait_for(first_stepped_down, timeout=10 * INTERVAL, step=0.02) - start
    # ... and exactly one process leads again.
    wait_for(lambda: len(leading(first, standby)) == 1, timeout=10 * INTERVAL)
    new = leading(first, standby)[0]
    since = new.leader_since()
    assert since is not None
    takeover = (since - terminated_at).total_seconds()
    print(
        f"FIGURE lock session terminated: old leader stepped down after {stepped_down:.3f}s, "
        f"{new.name} leads {takeover:.3f}s after (limits {INTERVAL:g}s / {2 * INTERVAL:g}s)"
    )
    assert stepped_down <= INTERVAL + 0.5  # one check, plus this test's polling
    assert takeover <= 2 * INTERVAL
    time.sleep(3 * INTERVAL)
    assert len(leading(first, standby)) == 1  # and it stays that way


def test_a_clean_stop_hands_the_lead_to_the_standby(spawn: Spawn) -> None:
    first = spawn("first", "scheduler", "web")
    first.wait_up()
    wait_for(lambda: first.role() == "leader", timeout=10)
    standby = spawn("standby", "scheduler", "web")
    standby.wait_up()
    assert standby.role() == "standby"

    stopping_at = datetime.now(UTC)
    assert first.stop() == 0, first.tail()
    wait_for(lambda: standby.role() == "leader", timeout=10 * INTERVAL)

    since = standby.leader_since()
    assert since is not None
    takeover = (since - stopping_at).total_seconds()
    print(f"FIGURE failover after a clean stop: {takeover:.3f}s (limit {2 * INTERVAL:g}s)")
    assert takeover <= 2 * INTERVAL
    assert "gave up the scheduler lead" in first.log.read_text()


def test_an_operator_sees_a_leader_job_that_stopped_within_three_intervals(
    spawn: Spawn, tmp_path: Path
) -> None:
    leader = spawn("leader", "scheduler")
    web = spawn("web", "web")
    web.wait_up()
    wait_for(lambda: web.readyz()[0] == 200, timeout=10 * INTERVAL + 10)
    assert web.readyz()[1]["scheduler"]["this_process"] == "not a candidate"

    # A hung leader: it still holds the lock (its connection is open), but does nothing.
    stopped_at = time.monotonic()
    leader.signal(signal.SIGSTOP)
    try:
        noticed = wait_for(lambda: web.readyz()[0] == 503, timeout=10 * INTERVAL, step=0.05)
        # The heartbeat and the sweep share one interval and either may have run last before
        # the stop, so either may turn late first: wait (boundedly) until both have.
        wait_for(
            lambda: all(
                web.readyz()[1]["scheduler"]["jobs"][job]["late"]
                for job in ("monitor-sweep", "leader")
            ),
            timeout=2 * INTERVAL,
        )
        status, body = web.readyz()
        metrics = web.metrics()
    finally:
        leader.signal(signal.SIGCONT)
    seen_after = noticed - stopped_at
    print(
        f"FIGURE stopped leader seen in /readyz of a web process after {seen_after:.3f}s "
        f"(limit {3 * INTERVAL:g}s)"
    )
    assert seen_after <= 3 * INTERVAL + 0.5  # the 3 intervals, plus this test's polling
    assert status == 503
    assert any("job monitor-sweep has not succeeded" in p for p in body["problems"])
    assert any("no live scheduler leader" in p for p in body["problems"])
    late = {name for name, job in body["scheduler"]["jobs"].items() if job["late"]}
    assert late >= {"monitor-sweep", "leader"}
    # The same, for Prometheus: the job's last success is old, and it is flagged late.
    stamps = _job_values(metrics, "forewarn_job_last_success_timestamp_seconds")
    assert time.time() - stamps["monitor-sweep"] > 3 * INTERVAL
    assert _job_values(metrics, "forewarn_job_late")["monitor-sweep"] == 1
    # Once it runs again, it is ready again.
    wait_for(lambda: web.readyz()[0] == 200, timeout=10 * INTERVAL)


def _job_values(metrics: str, name: str) -> dict[str, float]:
    prefix = name + '{job="'
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith(prefix):
            name, _, value = line[len(prefix) :].partition('"} ')
            out[name] = float(value)
    return out


def test_readyz_of_a_scheduler_shows_the_lead_and_every_job(spawn: Spawn) -> None:
    child = spawn("one", "scheduler", "web")
    child.wait_up()
    wait_for(lambda: all_leader_jobs_ran(child), timeout=10 * INTERVAL + 5)
    status, body = child.readyz()
    assert status == 200, body
    assert body["problems"] == []
    scheduler = body["scheduler"]
    assert scheduler["this_process"] == "leader"
    assert scheduler["election"] == "postgresql advisory lock"
    assert set(scheduler["jobs"]) >= LEADER_JOBS
    for job in scheduler["jobs"].values():
        assert job["late"] is False
        assert job["failures"] == 0
        # Within its own schedule (retention runs hourly: its age is not bounded by 1 s).
        assert job["age_seconds"] < 3 * job["interval_seconds"]
    # forewarn run says where its console is.
    assert f"console at http://127.0.0.1:{child.port}/" in child.log.read_text()
