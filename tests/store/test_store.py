"""The store behaves the same on SQLite and PostgreSQL (each test runs on both)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, StatementError

from forewarn.config import parse_config
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Alert, Customer, Device, Reading
from forewarn.store.reference import sync_reference_data
from forewarn.store.schema import current_revision, head_revision, upgrade

NOW = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
FLEET = """
customers: [{id: c1, name: Marta, phone: "+351912000101", timezone: Europe/Lisbon}]
sites: [{id: s1, name: Home, customer: c1, region: west}]
devices: [{id: d1, site: s1, model: M, kind: inverter}]
technicians: [{id: t1, name: Ana, skills: [inverter], regions: [west]}]
"""


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_it_migrates_an_empty_database_to_the_head_revision(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    upgrade(engine)  # running it again is harmless
    assert current_revision(engine) == head_revision()


def test_it_returns_timestamps_as_the_same_aware_utc_instant(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    lisbon_summer = datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    with sessions.begin() as session:
        sync_reference_data(session, parse_config(FLEET, {}).settings, NOW)
        session.add(
            Reading(device_id="d1", metric="t", ts=lisbon_summer, value=1.0, received_at=NOW)
        )
    with sessions() as session:
        stored = session.scalars(select(Reading.ts)).one()
    assert stored == lisbon_summer
    assert stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)


def test_it_refuses_a_naive_timestamp_instead_of_guessing_its_zone(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    with pytest.raises(StatementError, match="naive datetime"), sessions.begin() as session:
        session.add(
            Reading(device_id="d1", metric="t", ts=datetime(2026, 1, 1), value=1.0, received_at=NOW)
        )
        session.flush()


def test_it_stores_a_reading_once_per_device_metric_and_time(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    with pytest.raises(IntegrityError), sessions.begin() as session:
        for _ in range(2):
            session.add(Reading(device_id="d1", metric="t", ts=NOW, value=1.0, received_at=NOW))
            session.flush()


def test_it_allows_one_open_alert_per_fingerprint_but_keeps_resolved_ones(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)

    def alert(open_fp: str | None) -> Alert:
        return Alert(
            fingerprint="hot:d1",
            open_fingerprint=open_fp,
            rule_id="hot",
            rule_version="v1",
            subject="d1",
            state="firing" if open_fp else "resolved",
            severity="major",
            summary="",
            pending_since=NOW,
            evidence={},
        )

    with sessions.begin() as session:
        session.add_all([alert(None), alert(None), alert("hot:d1")])
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(alert("hot:d1"))
        session.flush()


def test_syncing_the_config_again_keeps_what_forewarn_learnt(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    settings = parse_config(FLEET, {}).settings
    with sessions.begin() as session:
        sync_reference_data(session, settings, NOW)
    with sessions.begin() as session:
        customer = session.get(Customer, "c1")
        device = session.get(Device, "d1")
        assert customer is not None and device is not None
        customer.opted_out = ["sms"]
        device.last_seen_at = NOW
    with sessions.begin() as session:
        sync_reference_data(session, settings, NOW + timedelta(days=1))
    with sessions() as session:
        customer = session.get(Customer, "c1")
        device = session.get(Device, "d1")
        assert customer is not None and device is not None
        assert customer.opted_out == ["sms"]
        assert device.last_seen_at == NOW
        assert device.registered_at == NOW


def test_the_migrations_form_one_chain() -> None:
    # Several heads break `alembic revision --autogenerate` and make `db upgrade` print a
    # list; every new migration must name the one current head as its parent.
    head = head_revision()
    assert head is not None
    assert "," not in head
