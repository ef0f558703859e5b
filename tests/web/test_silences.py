"""Silences and acknowledgements through the HTTP API and the /silences page (TestClient
over ``create_app`` with the router the service mounts)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from forewarn.service import Forewarn
from forewarn.web.alert_actions import make_router
from forewarn.web.app import create_app
from tests.monitors.fleet import Fleet, alerts, report, running_fleet
from tests.web.html import visible_text

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
OPS = "ops-token-0123456789abcdef"
TECH = "technician-token-0123456789"
VIEWER = "viewer-token-0123456789abcdef"

CONFIG = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101"}
sites:
  - {id: s-farm, name: Solar farm, customer: c-silva, region: alentejo, timezone: Europe/Lisbon}
devices:
  - {id: inv-1, site: s-farm, model: SunPeak 5K, kind: inverter}
monitors:
  - {id: hot, kind: threshold, metric: temperature, above: 80}
alerting:
  expiring_within: 1h
  silences:
    - {id: typo, devices: [inv-404], ends: "2026-12-01T00:00:00+00:00"}
"""


@pytest.fixture
def fleet(tmp_path: object) -> Iterator[Fleet]:
    with running_fleet(f"sqlite:///{tmp_path}/forewarn.db", CONFIG, NOW) as fleet:
        yield fleet


def client(app: Forewarn) -> TestClient:
    web = create_app(
        app.config,
        app.sessions,
        app.clock,
        tokens={OPS: "ops", TECH: "technician", VIEWER: "viewer"},
        extra_routers=[make_router(app.monitors)],
    )
    return TestClient(web)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_ops_create_a_silence_that_viewers_see_flagged_as_expiring_soon(fleet: Fleet) -> None:
    app = fleet.start()
    body = {
        "id": "roof-work",
        "devices": ["inv-1"],
        "starts": "2026-11-25T09:00:00+00:00",
        "ends": "2026-11-25T10:30:00+00:00",
        "comment": "roof repairs",
    }
    with client(app) as http:
        created = http.post("/api/silences", json=body, headers=auth(OPS))
        listed = http.get("/api/silences", headers=auth(VIEWER))
        by_viewer = http.post("/api/silences", json={**body, "id": "x"}, headers=auth(VIEWER))
        again = http.post("/api/silences", json=body, headers=auth(OPS))

    assert created.status_code == 201
    assert created.json()["created_by"] == "ops"
    flags = {s["id"]: (s["matches_nothing"], s["expires_soon"], s["active"]) for s in listed.json()}
    assert flags == {"roof-work": (False, True, True), "typo": (True, False, False)}
    assert (by_viewer.status_code, again.status_code) == (403, 409)


def test_a_silence_created_through_the_api_holds_the_alert(fleet: Fleet) -> None:
    app = fleet.start()
    with client(app) as http:
        http.post(
            "/api/silences",
            json={"id": "maint", "sites": ["s-farm"], "ends": "2026-11-25T12:00:00+00:00"},
            headers=auth(OPS),
        )
    report(app, "inv-1", 90)

    (alert,) = alerts(app, "hot")
    assert alert.suppressed_by == "silence:maint"


def test_ops_expire_an_api_silence_but_not_one_from_the_file(fleet: Fleet) -> None:
    app = fleet.start()
    with client(app) as http:
        http.post(
            "/api/silences",
            json={"id": "maint", "sites": ["s-farm"], "ends": "2026-11-26T12:00:00+00:00"},
            headers=auth(OPS),
        )
        expired = http.post("/api/silences/maint/expire", headers=auth(OPS))
        twice = http.post("/api/silences/maint/expire", headers=auth(OPS))
        from_file = http.post("/api/silences/typo/expire", headers=auth(OPS))
        unknown = http.post("/api/silences/nope/expire", headers=auth(OPS))
    report(app, "inv-1", 90)

    assert expired.json()["expired"] is True
    assert (twice.status_code, from_file.status_code, unknown.status_code) == (409, 409, 404)
    (alert,) = alerts(app, "hot")
    assert alert.suppressed_by is None


def test_an_invalid_silence_is_refused_with_the_reason(fleet: Fleet) -> None:
    app = fleet.start()
    with client(app) as http:
        endless = http.post(
            "/api/silences", json={"id": "x", "sites": ["s-farm"]}, headers=auth(OPS)
        )
        unknown_rule = http.post(
            "/api/silences",
            json={"id": "y", "rules": ["nope"], "ends": "2026-11-26T00:00:00+00:00"},
            headers=auth(OPS),
        )
    assert endless.status_code == 422
    assert "must end" in endless.json()["detail"]
    assert unknown_rule.status_code == 422


def test_a_technician_acknowledges_an_open_alert_once(fleet: Fleet) -> None:
    app = fleet.start()
    report(app, "inv-1", 90)
    (alert,) = alerts(app, "hot")
    url = f"/api/alerts/{alert.id}/acknowledge"
    with client(app) as http:
        viewer = http.post(url, json={}, headers=auth(VIEWER))
        first = http.post(url, json={"by": "ana", "note": "on my way"}, headers=auth(TECH))
        second = http.post(url, json={}, headers=auth(OPS))
        missing = http.post("/api/alerts/9999/acknowledge", json={}, headers=auth(OPS))

    assert viewer.status_code == 403
    assert first.status_code == 200
    assert first.json()["acknowledged_by"] == "ana"
    assert second.status_code == 409
    assert missing.status_code == 404
    (acknowledged,) = alerts(app, "hot")
    assert acknowledged.acknowledged_by == "ana"


def test_the_silences_page_lists_a_typo_first(fleet: Fleet) -> None:
    app = fleet.start()
    with client(app) as http:
        page = http.get("/silences", headers=auth(VIEWER))
    assert page.status_code == 200
    assert "matches nothing" in page.text
    assert "typo" in page.text


def test_the_silences_page_shows_a_window_in_utc_and_in_the_sites_zone(fleet: Fleet) -> None:
    app = fleet.start()
    with client(app) as http:
        created = http.post(
            "/api/silences",
            json={
                "id": "tonight",
                "sites": ["s-farm"],
                "starts": "2026-11-25T22:00:00",
                "ends": "2026-11-26T06:00:00",
                "timezone": "Atlantic/Azores",
                "comment": "inverter swap",
            },
            headers=auth(OPS),
        )
        page = http.get("/silences", headers=auth(VIEWER))

    assert created.status_code == 201, created.text
    assert created.json()["starts"] == "2026-11-25T23:00:00Z"
    text = " ".join(page.text.split())
    assert "from <time" in text
    assert "2026-11-25 23:00 UTC" in text
    assert "2026-11-25 22:00 Atlantic/Azores" in text
    assert "2026-11-26 06:00 Atlantic/Azores" in text
    assert "2026-11-25T22:00:00" not in visible_text(page.text)
