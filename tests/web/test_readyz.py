"""``/readyz`` per role, with the clock given: what it reports and when it answers 503.

The same endpoint with real processes, failover and a hung leader: tests/faults/.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from forewarn.scheduler import LEADER_JOB, JobLedger
from forewarn.telemetry.ingest import MqttLink
from forewarn.web.app import create_app
from forewarn.web.health import ProcessStatus
from tests.web.conftest import NOW, FixedClock, make_config
from tests.web.scenario import seed

Probe = Callable[..., TestClient]


@pytest.fixture
def probe() -> Iterator[Probe]:
    with ExitStack() as stack:

        def factory(
            sessions: sessionmaker[Session], process: ProcessStatus, now: datetime
        ) -> TestClient:
            app = create_app(make_config(), sessions, FixedClock(now), process=process)
            return stack.enter_context(TestClient(app))

        yield factory


def test_a_web_process_says_no_leader_is_alive_after_three_election_intervals(
    store: sessionmaker[Session], probe: Probe
) -> None:
    web = ProcessStatus(roles=("web",), worker="web:1", started_at=NOW)

    early = probe(store, web, NOW + timedelta(seconds=14)).get("/readyz")
    late = probe(store, web, NOW + timedelta(seconds=16)).get("/readyz")

    assert early.status_code == 200, early.json()
    assert early.json()["scheduler"]["this_process"] == "not a candidate"
    assert late.status_code == 503
    assert late.json()["problems"] == [
        "scheduler: no live scheduler leader (none holds the lock, or it hangs) since "
        "start-up (interval 5s, late after 3 intervals)"
    ]


def test_a_web_process_judges_the_leaders_jobs_from_their_rows(
    store: sessionmaker[Session], probe: Probe
) -> None:
    moments = iter([NOW, NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=1)])
    leader = JobLedger(store, "sched:7", lambda: next(moments))
    leader.register(LEADER_JOB, timedelta(seconds=5), leader_only=True)
    leader.register("monitor-sweep", timedelta(seconds=30), leader_only=True)
    leader.succeeded(LEADER_JOB, leader.started(LEADER_JOB))
    leader.failed("monitor-sweep", leader.started("monitor-sweep"), OSError("disk full"))
    web = ProcessStatus(roles=("web",), worker="web:1", started_at=NOW - timedelta(hours=1))

    body = probe(store, web, NOW + timedelta(seconds=10)).get("/readyz").json()

    assert body["scheduler"]["leader"] == "sched:7"
    sweep = body["scheduler"]["jobs"]["monitor-sweep"]
    # Never succeeded: judged from this process's start an hour ago, so late.
    assert sweep["late"] is True
    assert sweep["last_success"] is None
    assert sweep["failures"] == 1
    assert sweep["last_error"] == "OSError"
    assert sweep["worker"] == "sched:7"
    assert body["scheduler"]["jobs"][LEADER_JOB]["late"] is False
    assert body["scheduler"]["jobs"][LEADER_JOB]["lag_seconds"] == 5.0
    assert body["problems"] == [
        "scheduler: job monitor-sweep has not succeeded since start-up "
        "(interval 30s, late after 3 intervals)"
    ]


def test_a_sender_is_not_ready_while_a_message_waits_longer_than_the_grace(
    store: sessionmaker[Session], probe: Probe
) -> None:
    with store() as session:
        seed(session, NOW)  # one queued message, due 12 seconds before NOW
    sender = ProcessStatus(roles=("sender",), started_at=NOW)

    now = probe(store, sender, NOW).get("/readyz")
    later = probe(store, sender, NOW + timedelta(minutes=5)).get("/readyz")

    assert now.status_code == 200
    assert now.json()["sender"] == {
        "due": 1,
        "oldest_due_age_seconds": 12.0,
        "grace_seconds": 300.0,
        "ok": True,
    }
    assert "scheduler" not in now.json()
    assert later.status_code == 503
    assert later.json()["problems"] == ["sender: a message has been due for 312s (grace 300s)"]


def test_an_ingester_is_not_ready_once_the_broker_is_gone_longer_than_the_grace(
    store: sessionmaker[Session], probe: Probe
) -> None:
    def link(connected: bool, seconds_ago: float) -> Callable[[], MqttLink]:
        return lambda: MqttLink(connected, time.time() - seconds_ago, time.time() - 3)

    brief = ProcessStatus(roles=("ingest",), mqtt=link(False, 30))
    long = ProcessStatus(roles=("ingest",), mqtt=link(False, 300))
    up = ProcessStatus(roles=("ingest",), mqtt=link(True, 3600))

    assert probe(store, brief, NOW).get("/readyz").status_code == 200
    gone = probe(store, long, NOW).get("/readyz")
    fine = probe(store, up, NOW).get("/readyz").json()

    assert gone.status_code == 503
    assert gone.json()["problems"][0].startswith("mqtt: not connected to the broker for 30")
    assert fine["mqtt"]["connected"] is True
    assert 2 < fine["mqtt"]["last_message_age_seconds"] < 60
    assert fine["problems"] == []
