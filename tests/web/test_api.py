from __future__ import annotations

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.web.app import create_app
from forewarn.web.pages import CONSOLE_TAG
from tests.web.conftest import NOW, ClientFactory, FixedClock, make_config
from tests.web.scenario import BAD_NUMBER, CUSTOMER_EMAIL, CUSTOMER_PHONE, Scenario, seed


@pytest.fixture
def api(any_store: sessionmaker[Session], make_client: ClientFactory) -> TestClient:
    """The open API over the scenario, on SQLite and on PostgreSQL."""
    with any_store() as session:
        seed(session, NOW)
    return make_client(any_store)


def test_it_lists_devices_with_state_site_and_open_alert_count(api: TestClient) -> None:
    body = api.get("/api/devices").json()

    assert body["total"] == 6
    assert body["offset"] == 0
    assert body["limit"] == 100
    by_id = {d["id"]: d for d in body["items"]}
    assert by_id["inv-opo-001"] == {
        "id": "inv-opo-001",
        "site_id": "site-opo-foz",
        "site_name": "Foz house",
        "model": "SunWave 8K",
        "kind": "inverter",
        "last_seen_at": "2026-11-25T00:51:00Z",
        "state": "silent",
        "open_alerts": 1,
    }
    assert by_id["inv-opo-002"]["last_seen_at"] is None
    assert by_id["inv-opo-002"]["state"] == "silent"
    assert by_id["gw-lis-belem"]["state"] == "reporting"
    silent = api.get("/api/devices", params={"show": "silent"}).json()
    assert [d["id"] for d in silent["items"]] == ["inv-opo-001", "inv-opo-002"]


def test_it_lists_open_alerts_firing_first_and_resolved_ones_on_request(api: TestClient) -> None:
    open_alerts = api.get("/api/alerts").json()
    resolved = api.get("/api/alerts", params={"show": "resolved"}).json()
    everything = api.get("/api/alerts", params={"show": "all"}).json()

    assert [(a["subject"], a["state"], a["severity"]) for a in open_alerts["items"]] == [
        ("inv-lis-002", "firing", "critical"),
        ("inv-opo-001", "firing", "major"),
        ("inv-lis-001", "pending", "minor"),
    ]
    assert open_alerts["items"][0]["since"] == "2026-11-25T02:59:00Z"
    assert [a["subject"] for a in resolved["items"]] == ["inv-lis-003"]
    assert everything["total"] == 4


def test_it_gives_an_alert_with_its_state_changes(api: TestClient) -> None:
    alert_id = api.get("/api/alerts").json()["items"][0]["id"]

    body = api.get(f"/api/alerts/{alert_id}").json()

    assert body["subject"] == "inv-lis-002"
    assert body["evidence"]["code"] == "F21"
    assert [(e["from_state"], e["to_state"]) for e in body["events"]] == [(None, "firing")]


def test_it_lists_open_tickets_most_urgent_first(api: TestClient) -> None:
    body = api.get("/api/tickets").json()
    closed = api.get("/api/tickets", params={"show": "closed"}).json()

    assert [(t["status"], t["priority"]) for t in body["items"]] == [
        ("assigned", "critical"),
        ("open", "minor"),
    ]
    first = body["items"][0]
    assert first["technician_name"] == "Rui Almeida"
    assert first["customer_name"] == "Joana Silva"
    assert first["site_name"] == "Alfama rooftop"
    assert first["sla_due_at"] == "2026-11-25T06:59:00Z"
    assert [t["title"] for t in closed["items"]] == ["Low output at Belém villa"]


def test_it_gives_a_ticket_with_dispatch_events_and_masked_notifications(
    api: TestClient,
) -> None:
    ticket_id = api.get("/api/tickets").json()["items"][0]["id"]

    response = api.get(f"/api/tickets/{ticket_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["dispatch"]["chosen"] == "tech-rui"
    assert body["dispatch"]["excluded"] == {"tech-tiago": "lacks skill 'inverter'"}
    assert [e["kind"] for e in body["events"]] == ["opened", "assigned"]
    assert [a["subject"] for a in body["alerts"]] == ["inv-lis-002"]
    assert [(n["channel"], n["recipient"], n["status"]) for n in body["notifications"]] == [
        ("sms", "+35196****111", "delivered"),
        ("sms", "+35191****678", "delivered"),
        ("email", "j***@example.com", "sent"),
    ]
    assert body["notifications"][2]["subject"] == "O seu inversor precisa de atenção"
    assert CUSTOMER_PHONE not in response.text
    assert CUSTOMER_EMAIL not in response.text


def test_it_lists_notifications_masked_newest_first_and_by_status(api: TestClient) -> None:
    response = api.get("/api/notifications")
    failed = api.get("/api/notifications", params={"status": "failed"}).json()

    body = response.json()
    assert body["total"] == 6
    assert body["items"][0]["event"] == "digest"
    assert body["items"][-1]["event"] == "all_clear"
    assert "body" not in body["items"][0]
    for raw in (CUSTOMER_PHONE, CUSTOMER_EMAIL, BAD_NUMBER, "dispatch@forewarn.example"):
        assert raw not in response.text
    assert [n["recipient"] for n in failed["items"]] == ["+35193****890"]
    assert failed["items"][0]["last_error"] == (
        "The 'To' number +35193****890 is not a valid phone number"
    )


def test_it_lists_quarantined_inputs_with_a_preview(api: TestClient) -> None:
    body = api.get("/api/quarantine").json()

    assert body["total"] == 3
    newest = body["items"][0]
    assert newest["source"] == "mqtt"
    assert newest["preview"] == '{"ts": 1790000000, "power_w": NaN}'
    assert body["items"][1]["preview"].startswith("\\xff\\xfe<script>")
    assert body["items"][1]["size"] == 2028


def test_it_gives_the_dashboard_counts(api: TestClient) -> None:
    body = api.get("/api/overview").json()

    assert body["devices_total"] == 6
    assert body["devices_silent"] == 2
    assert body["alerts_open"] == {"critical": 1, "major": 1, "minor": 1, "info": 0}
    assert body["tickets_open"] == {"assigned": 1, "open": 1}
    assert body["notifications_24h"] == {"delivered": 2, "failed": 1, "queued": 1, "sent": 1}
    assert body["quarantined_24h"] == 2


def test_it_pages_with_offset_and_limit(api: TestClient) -> None:
    first = api.get("/api/devices", params={"limit": 2}).json()
    rest = api.get("/api/devices", params={"limit": 2, "offset": 2}).json()

    assert first["total"] == rest["total"] == 6
    assert len(first["items"]) == len(rest["items"]) == 2
    assert not {d["id"] for d in first["items"]} & {d["id"] for d in rest["items"]}


@pytest.mark.parametrize("ticket_id", ["999", "0", "-1", "99999999999999999999"])
def test_it_answers_an_unknown_ticket_with_a_json_404(api: TestClient, ticket_id: str) -> None:
    response = api.get(f"/api/tickets/{ticket_id}")

    assert response.status_code == 404
    assert response.json() == {"detail": f"ticket {int(ticket_id)} not found"}


def test_it_answers_an_unknown_alert_with_a_json_404(api: TestClient) -> None:
    response = api.get("/api/alerts/4242", headers={"accept": "text/html"})

    assert response.status_code == 404
    assert response.json() == {"detail": "alert 4242 not found"}


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/tickets/abc", "ticket_id"),
        ("/api/devices?limit=0", "limit"),
        ("/api/devices?offset=x", "offset"),
        ("/api/tickets?show=maybe", "show"),
        ("/api/notifications?status=DROP%20TABLE", "status"),
    ],
)
def test_it_answers_a_bad_parameter_with_a_422_naming_it(
    client: TestClient, path: str, field: str
) -> None:
    response = client.get(path)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"][0]["loc"][-1] == field


def test_it_publishes_an_openapi_document_of_the_typed_responses(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()

    assert "/api/tickets/{ticket_id}" in document["paths"]
    assert "/" not in document["paths"]  # pages are not part of the API
    ticket = document["components"]["schemas"]["TicketDetail"]
    assert {"dispatch", "events", "notifications"} <= set(ticket["properties"])


def test_it_serves_no_swagger_ui_that_would_need_the_internet(client: TestClient) -> None:
    assert client.get("/docs").status_code == 404


def test_it_reports_an_unreachable_database_as_503(make_client: ClientFactory) -> None:
    engine = make_engine("sqlite:////nonexistent-directory/forewarn.db")
    try:
        client = make_client(make_sessionmaker(engine))

        api = client.get("/api/tickets")
        page = client.get("/tickets")
        health = client.get("/healthz")
    finally:
        engine.dispose()

    assert api.status_code == 503
    assert api.json() == {
        "detail": "The database is unavailable right now (the server log says why)."
    }
    assert page.status_code == 503
    assert "Database unavailable" in page.text
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "database": "unreachable"}


def test_it_reports_health_without_a_token(
    any_store: sessionmaker[Session], make_client: ClientFactory
) -> None:
    client = make_client(any_store, tokens={"a-viewer-token-0123456789": "viewer"})

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_it_gives_a_closed_ticket_by_id(scenario: Scenario, client: TestClient) -> None:
    body = client.get(f"/api/tickets/{scenario.closed_ticket_id}").json()

    assert body["status"] == "closed"
    assert body["closed_at"] == "2026-11-23T03:01:00Z"


def test_it_answers_a_bug_with_a_500_that_points_at_the_server_log(
    store: sessionmaker[Session],
) -> None:
    broken = APIRouter()

    @broken.get("/api/broken")
    def api_route() -> None:
        raise RuntimeError("a bug")

    @broken.get("/broken-page", tags=[CONSOLE_TAG])
    def page_route() -> None:
        raise RuntimeError("a bug")

    app = create_app(make_config(), store, FixedClock(NOW), extra_routers=[broken])
    with TestClient(app, raise_server_exceptions=False) as client:
        api = client.get("/api/broken")
        page = client.get("/broken-page")

    assert api.status_code == 500
    assert api.json() == {
        "detail": "Something went wrong in forewarn; the server log has the details."
    }
    assert page.status_code == 500
    assert "Internal error" in page.text
    assert "a bug" not in page.text
