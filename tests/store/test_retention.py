"""Retention: expired rows go in bounded batches, the rest stays (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session

from forewarn.config.schema import RetentionSettings
from forewarn.store.care import Conversation, ConversationMessage
from forewarn.store.contacts import FollowUp, InboundMessage, ProviderEvent
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Notification, Quarantine, Reading
from forewarn.store.retention import Retention
from forewarn.store.schema import upgrade
from forewarn.web.queries import notifications_by_status

DAY = timedelta(days=1)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def settings(**changes: Any) -> RetentionSettings:
    return RetentionSettings.model_validate(
        {"readings": "10d", "quarantine": "10d", "batch_size": 100, **changes}
    )


def add(engine: Engine, rows: list[Any]) -> None:
    with make_sessionmaker(engine).begin() as session:
        session.add_all(rows)


def reading(ts: datetime, n: int) -> Reading:
    return Reading(device_id=f"d{n % 7}", metric="p", ts=ts, value=float(n), received_at=ts)


def count(engine: Engine, model: type[Any]) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


class Statements:
    """Counts the deletes and updates the job sent, and the most rows any one touched."""

    def __init__(self, engine: Engine) -> None:
        self.writes = 0
        self.largest = 0
        event.listen(engine, "after_cursor_execute", self._seen)

    def _seen(self, _conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("DELETE", "UPDATE")):
            self.writes += 1
            self.largest = max(self.largest, cursor.rowcount)


def test_it_deletes_exactly_the_expired_rows_in_batches(engine: Engine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    cutoff = now - 10 * DAY
    expired = [reading(cutoff - timedelta(minutes=n + 1), n) for n in range(350)]
    kept = [reading(cutoff + timedelta(minutes=n), n) for n in range(120)]
    add(engine, [*expired, *kept])
    add(
        engine,
        [
            Quarantine(
                received_at=now - DAY * d, source="mqtt", origin="t", payload=b"x", reason="r"
            )
            for d in range(20)
        ],
    )
    statements = Statements(engine)

    report = Retention(engine, settings()).run(now)

    assert report.deleted["readings"] == 350 and report.finished
    assert report.deleted["quarantine"] == 9  # 11..19 days old; exactly 10 is not expired
    with Session(engine) as session:
        left = set(session.scalars(select(Reading.ts)))
    assert left == {r.ts for r in kept}
    assert statements.largest <= 100
    assert statements.writes >= 4  # 350 readings take four batches of at most 100
    assert count(engine, Quarantine) == 11


def test_it_stops_at_its_time_budget_and_finishes_at_the_next_run(engine: Engine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    add(engine, [reading(now - 20 * DAY - timedelta(minutes=n), n) for n in range(450)])
    ticks = itertools.count()
    # Every look at the clock takes 1 s: a 3 s budget allows a couple of batches.
    only_readings = settings(
        time_budget="3s",
        quarantine=None,
        provider_events=None,
        notification_personal_data=None,
        inbound_texts=None,
    )
    retention = Retention(engine, only_readings, monotonic=lambda: next(ticks))

    runs = [retention.run(now) for _ in range(3)]

    assert [r.deleted["readings"] for r in runs] == [200, 200, 50]
    assert [r.finished for r in runs] == [False, False, True]
    assert count(engine, Reading) == 0


def test_it_erases_old_personal_data_and_keeps_the_kpi_counts(engine: Engine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old, recent = now - 200 * DAY, now - DAY

    def notification(n: int, status: str, created: datetime) -> Notification:
        return Notification(
            dedupe_key=f"k{n}",
            event="fault_notice",
            recipient_role="customer",
            recipient_id="c-silva",
            channel="sms",
            address="+351912000101",
            locale="en",
            context={"customer": "Marta Silva", "site": "Rua das Flores 12"},
            status=status,
            next_attempt_at=created,
            created_at=created,
            body="Hello Marta",
            subject="Your inverter",
        )

    add(
        engine,
        [
            notification(1, "delivered", old),
            notification(2, "failed", old),
            notification(3, "queued", old),  # still to be sent: untouched
            notification(4, "delivered", recent),
            InboundMessage(
                provider="twilio",
                message_sid="SM1",
                sender_role="customer",
                sender_id="c-silva",
                sender_masked="+35191****101",
                body="my address is Rua das Flores 12",
                intent="text",
                reply="Thanks",
                received_at=old,
            ),
            InboundMessage(
                provider="twilio",
                message_sid="SM2",
                sender_role="customer",
                sender_id="c-silva",
                sender_masked="+35191****101",
                body="5",
                intent="csat",
                reply=None,
                received_at=recent,
            ),
            ProviderEvent(
                provider="twilio", event_id="e1", status="delivered", outcome="ok", received_at=old
            ),
            follow_up("f1", "free_text", "done", "my address is Rua das Flores 12", old),
            follow_up("f2", "free_text", "open", "still being handled", old),
            follow_up("f3", "orphan_notice", "done", "notice 7 had no update", old),
            follow_up("f4", "human", "done", "call me back", recent),
        ],
    )
    with Session(engine) as session:
        kpis_before = notifications_by_status(session)

    report = Retention(engine, settings()).run(now)

    assert report.scrubbed == {
        "notifications": 2,
        "inbound_messages": 1,
        "follow_ups": 1,
        "conversation_messages": 0,
    }
    assert report.deleted["provider_events"] == 1
    with Session(engine) as session:
        assert notifications_by_status(session) == kpis_before
        details = dict(session.execute(select(FollowUp.source_key, FollowUp.detail)).all())
    assert details == {
        "f1": "",
        "f2": "still being handled",
        "f3": "notice 7 had no update",
        "f4": "call me back",
    }
    with Session(engine) as session:
        rows = {n.dedupe_key: n for n in session.scalars(select(Notification))}
        texts = {m.message_sid: m for m in session.scalars(select(InboundMessage))}
    for key in ("k1", "k2"):
        row = rows[key]
        assert (row.address, row.body, row.subject, row.context) == ("", None, None, {})
        assert row.recipient_id == "c-silva" and row.event == "fault_notice"
    for key in ("k3", "k4"):
        assert rows[key].address == "+351912000101" and rows[key].body == "Hello Marta"
    assert (texts["SM1"].body, texts["SM1"].reply, texts["SM1"].intent) == ("", None, "text")
    assert texts["SM2"].body == "5"
    # Erased rows are not picked up again.
    assert Retention(engine, settings()).run(now).scrubbed == {
        "notifications": 0,
        "inbound_messages": 0,
        "follow_ups": 0,
        "conversation_messages": 0,
    }


def test_it_erases_what_was_said_in_old_closed_conversations_only(engine: Engine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - 200 * DAY

    def conversation(status: str) -> Conversation:
        return Conversation(
            customer_id="c-silva",
            queue="billing",
            reason="routed",
            status=status,
            opened_at=old,
            updated_at=old,
        )

    closed, still_open = conversation("closed"), conversation("open")
    add(engine, [closed, still_open])
    add(
        engine,
        [
            ConversationMessage(
                conversation_id=c.id, direction=d, author=a, channel="sms", body=b, at=old
            )
            for c in (closed, still_open)
            for d, a, b in (("in", "customer", "my bill is wrong"), ("out", "ops", "refunded"))
        ],
    )

    report = Retention(engine, settings()).run(now)

    assert report.scrubbed["conversation_messages"] == 2
    with Session(engine) as session:
        kept = session.execute(
            select(ConversationMessage.conversation_id, ConversationMessage.body)
        ).all()
    assert sorted(kept) == sorted(
        [
            (closed.id, ""),
            (closed.id, ""),
            (still_open.id, "my bill is wrong"),
            (still_open.id, "refunded"),
        ]
    )


def follow_up(key: str, kind: str, status: str, detail: str, opened: datetime) -> FollowUp:
    return FollowUp(
        source_key=key,
        kind=kind,
        customer_id="c-silva",
        detail=detail,
        status=status,
        opened_at=opened,
        due_at=opened + DAY,
    )


def test_a_lifetime_of_null_keeps_the_rows_forever(engine: Engine) -> None:
    now = datetime.now(UTC)
    add(engine, [reading(now - 1000 * DAY, 1)])
    report = Retention(engine, settings(readings=None)).run(now)
    assert "readings" not in report.deleted and count(engine, Reading) == 1


@pytest.mark.postgres
def test_it_drops_expired_partitions_and_creates_the_next_ones(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        upgrade(engine)  # partitions from today to a week ahead
        today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        now = today + 30 * DAY
        in_dropped_partition = [reading(today + DAY + timedelta(minutes=n), n) for n in range(5)]
        in_default_expired = [reading(today - 5 * DAY + timedelta(minutes=n), n) for n in range(5)]
        in_default_kept = [reading(today + 21 * DAY + timedelta(minutes=n), n) for n in range(5)]
        moved_into_new = [reading(now + 2 * DAY + timedelta(minutes=n), n) for n in range(5)]
        add(engine, [*in_dropped_partition, *in_default_expired, *in_default_kept, *moved_into_new])
        retention = Retention(engine, settings())

        report = retention.run(now)

        first_day = f"readings_p{today:%Y%m%d}"
        assert first_day in report.partitions_dropped
        assert f"readings_p{today + DAY:%Y%m%d}" in report.partitions_dropped
        assert report.deleted["readings"] == 5  # the default partition's expired rows
        assert f"readings_p{now + 2 * DAY:%Y%m%d}" in report.partitions_created
        remaining = {p.name for p in retention.partitions()}
        assert first_day not in remaining
        assert f"readings_p{now + 6 * DAY:%Y%m%d}" in remaining
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT ts, tableoid::regclass::text FROM readings"))
            where = {row[0]: row[1] for row in rows}
        assert set(where) == {r.ts for r in [*in_default_kept, *moved_into_new]}
        assert {where[r.ts] for r in moved_into_new} == {f"readings_p{now + 2 * DAY:%Y%m%d}"}
        assert {where[r.ts] for r in in_default_kept} == {"readings_default"}
        # A second run has nothing left to do.
        again = retention.run(now)
        assert again.partitions_dropped == [] and again.partitions_created == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_migration_partitions_an_existing_readings_table_without_losing_rows(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url)
    try:
        upgrade(engine, "0007")
        now = datetime.now(UTC).replace(microsecond=0)
        old = [reading(now - 900 * DAY + timedelta(hours=n), n) for n in range(10)]
        recent = [reading(now - timedelta(hours=n), n) for n in range(200)]
        add(engine, [*old, *recent])
        with Session(engine) as session:
            before = {
                tuple(r) for r in session.execute(select(Reading.id, Reading.ts, Reading.value))
            }

        upgrade(engine)

        with Session(engine) as session:
            after = {
                tuple(r) for r in session.execute(select(Reading.id, Reading.ts, Reading.value))
            }
            kind = session.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'readings'"))
            # New rows keep counting from the old ids, and the unique key still holds.
            session.add(reading(now + timedelta(seconds=1), 1))
            session.flush()
            newest = session.scalar(select(func.max(Reading.id)))
        assert after == before and kind == "p"
        assert newest is not None and newest > max(row[0] for row in before)
        with engine.begin() as connection:
            inserted = connection.execute(
                text(
                    "INSERT INTO readings (device_id, metric, ts, value, received_at, stale) "
                    "VALUES (:d, 'p', :ts, 1, :ts, false) "
                    "ON CONFLICT (device_id, metric, ts) DO NOTHING"
                ),
                {"d": recent[0].device_id, "ts": recent[0].ts},
            ).rowcount
        assert inserted == 0
    finally:
        engine.dispose()


def test_the_running_service_enforces_retention_as_a_leader_job(tmp_path: Path) -> None:
    db = tmp_path / "forewarn.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    now = datetime.now(UTC)
    add(
        engine,
        [
            Quarantine(
                received_at=now - d * DAY, source="mqtt", origin="t", payload=b"x", reason="r"
            )
            for d in (0, 1, 40, 41)
        ],
    )
    config = tmp_path / "forewarn.yaml"
    config.write_text(
        f'database: {{url: "sqlite:///{db}"}}\nretention: {{interval: 200ms, quarantine: 30d}}\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "FOREWARN_DATABASE_URL"}
    child = subprocess.Popen(
        [sys.executable, "-m", "forewarn", "run", "-c", str(config), "--role", "scheduler"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while count(engine, Quarantine) != 2:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the retention job did not run within 30 s"
            time.sleep(0.1)
    finally:
        child.terminate()
        child.wait(20)
        if child.stderr is not None:
            log = child.stderr.read().decode()
            child.stderr.close()
        engine.dispose()
    assert "retention: deleted 2 quarantine" in log
