"""Technician commands and dispatch views over the HTTP API (``create_app`` + TestClient)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from forewarn.service import Forewarn
from forewarn.web.app import create_app
from forewarn.web.ticket_actions import router
from tests.ticketing.test_tickets import Fleet, fleet, overheat, tickets

__all__ = ["fleet"]

OPS = "ops-token-0123456789abcdef"
TECH = "technician-token-0123456789"
VIEWER = "viewer-token-0123456789abcdef"


def client(app: Forewarn) -> TestClient:
    web = create_app(
        app.config,
        app.sessions,
        app.clock,
        tokens={OPS: "ops", TECH: "technician", VIEWER: "viewer"},
        extra_routers=[router],
    )
    return TestClient(web)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_technician_accepts_and_closes_a_job_through_the_api(fleet: Fleet) -> None:
    app = fleet.start()
    overheat(app, "inv-101", fleet.clock)
    (ticket,) = tickets(app)
    url = f"/api/tickets/{ticket.id}/commands"
    with client(app) as http:
        accepted = http.post(
            url, json={"command": "ack", "technician": "t-ana"}, headers=auth(TECH)
        )
        done = http.post(
            url,
            json={
                "command": "done",
                "technician": "t-ana",
                "closure_code": "parts_needed",
                "note": "inverter fan on order",
            },
            headers=auth(TECH),
        )
        again = http.post(url, json={"command": "done", "technician": "t-ana"}, headers=auth(TECH))
        closures = http.get("/api/closures", headers=auth(VIEWER))

    assert accepted.status_code == 200
    assert accepted.json()["status"] == "accepted"
    # Parts needed is not a fix: the job stays open for the return visit.
    assert done.json() == {
        "ticket": ticket.id,
        "changed": True,
        "status": "awaiting_parts",
        "reply": (
            f"Job #{ticket.id} waits for parts; the customer is told. Reply PARTSIN "
            f"{ticket.id} when the parts are in and we plan the return visit."
        ),
    }
    assert again.status_code == 409
    assert closures.json() == []


def test_it_refuses_what_the_caller_may_not_do(fleet: Fleet) -> None:
    app = fleet.start()
    overheat(app, "inv-101", fleet.clock)
    (ticket,) = tickets(app)
    url = f"/api/tickets/{ticket.id}/commands"
    with client(app) as http:
        viewer = http.post(
            url, json={"command": "ack", "technician": "t-ana"}, headers=auth(VIEWER)
        )
        anonymous = http.post(url, json={"command": "ack", "technician": "t-ana"})
        nameless = http.post(url, json={"command": "ack"}, headers=auth(TECH))
        not_yours = http.post(
            url, json={"command": "ack", "technician": "t-rui"}, headers=auth(TECH)
        )
        cancel = http.post(
            url, json={"command": "cancel", "technician": "t-ana"}, headers=auth(TECH)
        )
        missing = http.post("/api/tickets/999/commands", json={"command": "ack"}, headers=auth(OPS))
        illegal = http.post(url, json={"command": "enroute"}, headers=auth(OPS))
        illegal2 = http.post(url, json={"command": "ack"}, headers=auth(OPS))
        by_ops = http.post(url, json={"command": "cancel", "note": "duplicate"}, headers=auth(OPS))

    assert viewer.status_code == 403
    assert anonymous.status_code == 401
    assert nameless.status_code == 422
    assert not_yours.status_code == 403
    assert cancel.status_code == 403
    assert missing.status_code == 404
    assert illegal.status_code == 200  # ops may move a job along for a technician
    assert illegal2.status_code == 409
    assert by_ops.json()["status"] == "cancelled"
    (cancelled,) = tickets(app)
    assert cancelled.closure_code == "cancelled"


def test_ops_see_the_dispatcher_queue(fleet: Fleet) -> None:
    nobody = """
technicians:
  - {id: t-joao, name: Joao Reis, email: joao@example.com, skills: [inverter],
     regions: [lisbon-south]}
"""
    app = fleet.start(nobody)
    overheat(app, "inv-101", fleet.clock)
    with client(app) as http:
        queue = http.get("/api/dispatch/queue", headers=auth(VIEWER))

    (row,) = queue.json()
    assert row["why"] == "no eligible technician"
    assert row["priority"] == "P2"


def test_a_decline_through_the_api_goes_to_the_next_technician_at_once(fleet: Fleet) -> None:
    two = """
technicians:
  - {id: t-ana, name: Ana Costa, email: ana@example.com, skills: [inverter],
     regions: [lisbon-west], home: {lat: 38.710, lon: -9.300}}
  - {id: t-bea, name: Bea Matos, email: bea@example.com, skills: [inverter],
     regions: [lisbon-west], home: {lat: 38.70, lon: -9.10}}
"""
    app = fleet.start(two)
    overheat(app, "inv-101", fleet.clock)
    (ticket,) = tickets(app)
    with client(app) as http:
        declined = http.post(
            f"/api/tickets/{ticket.id}/commands",
            json={"command": "decline", "technician": ticket.technician_id},
            headers=auth(TECH),
        )

    assert declined.status_code == 200
    (moved,) = tickets(app)
    assert moved.status == "assigned"
    assert moved.technician_id not in (None, ticket.technician_id)
