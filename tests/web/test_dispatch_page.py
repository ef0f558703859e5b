"""The dispatcher's desk through the HTTP API and the /dispatch page, and personal
technician tokens (TestClient over ``create_app`` with the routers the service mounts)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from forewarn.service import Forewarn
from forewarn.web.app import create_app
from forewarn.web.auth import tokens_from_environ
from forewarn.web.dispatching import router as dispatch_router
from forewarn.web.ticket_actions import router as ticket_router
from tests.ticketing.test_tickets import Fleet, fleet, overheat, tickets

__all__ = ["fleet"]

OPS = "ops-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
ANA = "ana-personal-token-0123456789"
SHARED = "technician-token-0123456789"

NOBODY_NEAR = """
technicians:
  - {id: t-joao, name: Joao Reis, email: joao@example.com, skills: [inverter],
     regions: [lisbon-south]}
  - {id: t-ana, name: Ana Costa, email: ana@example.com, skills: [inverter],
     regions: [lisbon-south], radius_km: 5, home: {lat: 38.0, lon: -8.0}}
"""


def client(app: Forewarn) -> TestClient:
    environ = {
        "FOREWARN_TOKENS": f"ops:{OPS},viewer:{VIEWER},technician:t-ana:{ANA},technician:{SHARED}"
    }
    web = create_app(
        app.config,
        app.sessions,
        app.clock,
        tokens=tokens_from_environ(environ),
        extra_routers=[ticket_router, dispatch_router],
    )
    return TestClient(web)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_ops_assign_a_queued_job_to_an_eligible_technician_and_are_told_why_not_otherwise(
    fleet: Fleet,
) -> None:
    app = fleet.start(NOBODY_NEAR)
    overheat(app, "inv-101", fleet.clock)
    (queued,) = tickets(app)
    assert queued.technician_id is None
    url = f"/api/tickets/{queued.id}/assign"
    with client(app) as http:
        ineligible = http.post(url, json={"technician": "t-joao"}, headers=auth(OPS))
        unknown = http.post(url, json={"technician": "t-nobody"}, headers=auth(OPS))
        by_viewer = http.post(url, json={"technician": "t-joao"}, headers=auth(VIEWER))
        missing = http.post(
            "/api/tickets/999/assign", json={"technician": "t-joao"}, headers=auth(OPS)
        )

    assert ineligible.status_code == 409
    assert ineligible.json()["detail"] == (
        "t-joao is not eligible: does not serve region 'lisbon-west'"
    )
    assert (unknown.status_code, by_viewer.status_code, missing.status_code) == (409, 403, 404)


def test_ops_assign_a_queued_job_and_the_technician_gets_the_work_order(fleet: Fleet) -> None:
    one = """
technicians:
  - {id: t-ana, name: Ana Costa, email: ana@example.com, skills: [inverter],
     regions: [lisbon-west], max_jobs: 1}
"""
    app = fleet.start(one)
    overheat(app, "inv-101", fleet.clock)
    overheat(app, "inv-201", fleet.clock)  # Ana is full: the second job is queued
    first, second = tickets(app)
    assert second.technician_id is None
    with client(app) as http:
        full = http.post(
            f"/api/tickets/{second.id}/assign", json={"technician": "t-ana"}, headers=auth(OPS)
        )
        http.post(
            f"/api/tickets/{first.id}/commands", json={"command": "cancel"}, headers=auth(OPS)
        )
        assigned = http.post(
            f"/api/tickets/{second.id}/assign", json={"technician": "t-ana"}, headers=auth(OPS)
        )

    assert full.status_code == 409
    assert "at capacity" in full.json()["detail"]
    assert assigned.json() == {"ticket": second.id, "status": "assigned", "technician": "t-ana"}
    assert tickets(app)[1].dispatch["reason"] == "chosen by ops"


def test_a_personal_technician_token_acts_only_as_its_technician(fleet: Fleet) -> None:
    app = fleet.start()
    overheat(app, "inv-101", fleet.clock)
    (ticket,) = tickets(app)
    assert ticket.technician_id == "t-ana"
    url = f"/api/tickets/{ticket.id}/commands"
    with client(app) as http:
        as_other = http.post(url, json={"command": "ack", "technician": "t-rui"}, headers=auth(ANA))
        as_self = http.post(url, json={"command": "ack"}, headers=auth(ANA))
        shared_nameless = http.post(url, json={"command": "enroute"}, headers=auth(SHARED))

    assert as_other.status_code == 403
    assert as_self.status_code == 200
    assert as_self.json()["status"] == "accepted"
    assert shared_nameless.status_code == 422  # the shared form still names who acts


def test_the_dispatch_page_shows_the_queue_with_reasons_and_closures_per_rule(
    fleet: Fleet,
) -> None:
    app = fleet.start(NOBODY_NEAR)
    overheat(app, "inv-101", fleet.clock)
    with client(app) as http:
        page = http.get("/dispatch", headers=auth(VIEWER))
        anonymous = http.get("/dispatch")

    assert page.status_code == 200
    assert "no eligible technician" in page.text
    assert "does not serve region" in page.text
    assert anonymous.status_code == 401


def test_personal_technician_tokens_are_parsed_beside_the_plain_forms() -> None:
    import pytest

    from forewarn.config.loading import ConfigError

    tokens = tokens_from_environ(
        {"FOREWARN_TOKENS": f"technician:t-ana:{ANA}, technician:{SHARED}, viewer:{VIEWER}"}
    )
    assert tokens == {ANA: "technician:t-ana", SHARED: "technician", VIEWER: "viewer"}
    with pytest.raises(ConfigError, match="entry 1: 'no way' is not a technician id"):
        tokens_from_environ({"FOREWARN_TOKENS": f"technician:no way:{ANA}"})
