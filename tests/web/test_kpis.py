"""KPIs read from the rows: /kpis, POST /api/contacts and the gauges on /metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.ticketing.test_tickets import overheat
from tests.web.console import sign_in
from tests.web.desk import OPS, VIEWER, Desk, running_desk
from tests.web.html import visible_text


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    """inv-101: forewarn tells Marta first; inv-201: Daniel phoned before it noticed."""
    with running_desk(tmp_path) as desk:
        desk.app.sender.run_once()  # Marta's fault notice leaves
        ops = TestClient(desk.web)
        called = ops.post(
            "/api/contacts",
            json={
                "customer_id": "c-okafor",
                "at": desk.fleet.clock.now().isoformat(),
                "channel": "phone",
                "external_id": "call-1",
                "note": "says the inverter shows zero output",
            },
            headers={"authorization": f"Bearer {OPS}"},
        )
        assert called.status_code == 201, called.text
        desk.fleet.clock.advance(minutes=1)
        overheat(desk.app, "inv-201", desk.fleet.clock)
        desk.app.sender.run_once()
        yield desk


def test_the_kpis_say_how_often_forewarn_was_first(desk: Desk) -> None:
    viewer = TestClient(desk.web)
    sign_in(viewer, VIEWER)

    page = viewer.get("/kpis")
    text = visible_text(page.text)

    assert page.status_code == 200
    assert "Proactive rate 50 % 1 of 2 episodes" in text
    assert "Time to detect 5.0 min" in text  # the rule holds 5 minutes before it fires
    assert "Self-service resolution — 0 of 0 offers closed by FIXED" in text
    assert re.search(r"inverter-overheating 2 50 %", text)
    assert '<svg class="chart bars"' in page.text
    assert viewer.get("/kpis?period=week").status_code == 200


def test_a_contact_is_recorded_once_and_checked(desk: Desk) -> None:
    ops = TestClient(desk.web)
    auth = {"authorization": f"Bearer {OPS}"}
    body = {"customer_id": "c-okafor", "at": "2026-11-03T03:00:00+00:00", "external_id": "call-1"}

    again = ops.post("/api/contacts", json=body, headers=auth)
    unknown = ops.post("/api/contacts", json={**body, "customer_id": "c-nobody"}, headers=auth)
    naive = ops.post(
        "/api/contacts",
        json={**body, "at": "2026-11-03T03:00:00", "external_id": "x"},
        headers=auth,
    )
    viewer = ops.post("/api/contacts", json=body, headers={"authorization": f"Bearer {VIEWER}"})

    assert again.status_code == 201 and again.json()["created"] is False
    assert unknown.status_code == 422 and "unknown customer" in unknown.text
    assert naive.status_code == 422
    assert viewer.status_code == 403


def test_the_same_figures_are_gauges_on_metrics(desk: Desk) -> None:
    ops = TestClient(desk.web)

    text = ops.get("/metrics", headers={"authorization": f"Bearer {OPS}"}).text

    assert 'forewarn_kpi_proactive_ratio{window="7d"} 0.5' in text
    assert 'forewarn_kpi_episodes{window="7d"} 2' in text
    assert 'forewarn_kpi_time_to_detect_seconds{quantile="0.5",window="7d"} 300' in text
    assert 'forewarn_kpi_self_service_resolutions{window="7d"} 0' in text
