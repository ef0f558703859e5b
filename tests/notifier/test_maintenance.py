"""Planned maintenance tonight: the customers hear before, on extension and after; their
alerts are silenced meanwhile. Through the API, the console form and the leader job."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from forewarn.store.care import MaintenanceNotice
from forewarn.store.models import Ticket
from tests.fakes.providers import FakeTwilio
from tests.notifier.journey import MARTA, OPS_TOKEN, SOMCHAI, Desk, desk
from tests.web.html import visible_text

BEARER = {"Authorization": f"Bearer {OPS_TOKEN}"}
TONIGHT = {
    "id": "grid-works-lisbon-west",
    "regions": ["lisbon-west"],
    "starts": "2026-11-25T23:00:00",
    "ends": "2026-11-26T03:00:00",
    "timezone": "Europe/Lisbon",
    "notify_customers": True,
    "notice_before": "6h",
    "comment": "grid operator works on the Cascais feeder",
}


@pytest.fixture
def journey(tmp_path: Path, fake_twilio: FakeTwilio) -> Iterator[Desk]:
    yield from desk(f"sqlite:///{tmp_path / 'forewarn.db'}", fake_twilio)


def at(journey: Desk, moment: str) -> None:
    journey.clock.at = datetime.fromisoformat(moment)


def test_maintenance_tonight_is_announced_before_silences_alerts_is_extended_and_ends(
    journey: Desk,
) -> None:
    created = journey.web.post("/api/silences", json=TONIGHT, headers=BEARER)
    assert created.status_code == 201, created.text
    assert created.json()["matched_devices"] == 1  # the area holds Marta's inverter only

    journey.run_jobs()  # 14:00: nine hours before, more than the six of notice
    assert journey.texts_to(MARTA) == []

    at(journey, "2026-11-25T17:00:00+00:00")
    journey.run_jobs()
    journey.run_jobs()  # a second leader run tells nobody twice

    [before] = journey.texts_to(MARTA)
    assert before == (
        "forewarn: Planned maintenance at Silva home from 2026-11-25 23:00 to 2026-11-26 "
        "03:00 (Europe/Lisbon). Your equipment may be offline or show unusual readings then; "
        "there is nothing you need to do, and we will tell you when it is over. Reply STOP "
        "to opt out."
    )
    assert journey.texts_to(SOMCHAI) == []  # Bangkok is not in the area

    at(journey, "2026-11-25T23:30:00+00:00")
    journey.readings("inv-101", "temperature", 90, minutes=3)  # maintenance heat: silenced
    with journey.app.sessions() as session:
        assert session.scalars(select(Ticket)).all() == []

    extended = journey.web.post(
        f"/api/silences/{TONIGHT['id']}/extend",
        json={"ends": "2026-11-26T05:00:00+00:00"},
        headers=BEARER,
    )
    assert extended.status_code == 200, extended.text
    journey.run_jobs()
    assert journey.texts_to(MARTA)[-1] == (
        "forewarn: The planned maintenance at Silva home is taking longer than planned: it "
        "now ends at 2026-11-26 05:00 (Europe/Lisbon). We will tell you when it is over."
    )

    at(journey, "2026-11-26T05:00:00+00:00")
    journey.run_jobs()
    journey.run_jobs()

    assert len(journey.texts_to(MARTA)) == 3
    assert journey.texts_to(MARTA)[-1] == (
        "forewarn: The planned maintenance at Silva home is over and monitoring is back to "
        "normal. If anything does not work as it should, reply HUMAN."
    )
    with journey.app.sessions() as session:
        told = session.get(MaintenanceNotice, TONIGHT["id"])
        assert told is not None
        assert (told.extensions, told.customers) == (1, 1)


def test_the_notice_is_in_the_customers_language_and_zone(journey: Desk) -> None:
    window = {
        **TONIGHT,
        "id": "bangkok-upgrade",
        "regions": [],
        "sites": ["s-bangna"],
        "starts": "2026-11-26T01:00:00+07:00",
        "ends": "2026-11-26T04:00:00+07:00",
        "timezone": None,
    }
    assert journey.web.post("/api/silences", json=window, headers=BEARER).status_code == 201

    journey.run_jobs()

    [notice] = journey.texts_to(SOMCHAI)
    assert "จะมีการบำรุงรักษาตามแผนที่Bang Na house" in notice
    assert "2026-11-26 01:00 ถึง 2026-11-26 04:00 (Asia/Bangkok)" in notice


def test_ops_create_a_maintenance_window_for_a_model_from_the_console(journey: Desk) -> None:
    login = journey.web.post("/login", data={"token": OPS_TOKEN}, follow_redirects=False)
    assert login.status_code == 303
    page = journey.web.get("/silences")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert 'value="model:SunPeak 5K"' in page.text and 'value="region:lisbon-west"' in page.text

    made = journey.web.post(
        "/silences",
        data={
            "csrf": csrf,
            "target": "model:SunPeak 5K",
            "starts": "2026-11-26T02:00",
            "ends": "2026-11-26T04:00",
            "comment": "firmware update",
            "notify": "yes",
            "notice_hours": "24",
        },
        follow_redirects=False,
    )

    assert made.status_code == 303, made.text
    listing = visible_text(journey.web.get("/silences").text)
    assert "models: SunPeak 5K" in listing and "customers told" in listing
    journey.run_jobs()
    assert len(journey.texts_to(MARTA)) == 1 and len(journey.texts_to(SOMCHAI)) == 1


def test_a_window_that_cannot_notify_is_refused_with_the_reason(journey: Desk) -> None:
    recurring = {**TONIGHT, "starts": None, "ends": None, "hours": "22:00-06:00"}

    refused = journey.web.post("/api/silences", json=recurring, headers=BEARER)

    assert refused.status_code == 422
    assert "'notify_customers' needs a one-off window" in refused.text
