"""Small things an operator trips over: the tab icon, HEAD probes, the timeline's first row,
and what a viewer or technician may read of a message body."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from forewarn.store.models import Notification, TicketEvent
from tests.web.conftest import NOW, OPS_TOKEN, TECH_TOKEN, VIEWER_TOKEN, ClientFactory
from tests.web.html import visible_text
from tests.web.scenario import CUSTOMER_PHONE, Scenario

TOKENS = {VIEWER_TOKEN: "viewer", TECH_TOKEN: "technician", OPS_TOKEN: "ops"}
ADDRESS = "Rua dos Remédios 12, Lisboa"


def test_it_serves_a_tab_icon(client: TestClient) -> None:
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
    assert '<link rel="icon" href="/favicon.ico"' in client.get("/").text


@pytest.mark.parametrize("path", ["/", "/tickets", "/healthz", "/favicon.ico"])
def test_it_answers_head_like_get_without_a_body(client: TestClient, path: str) -> None:
    get = client.get(path)
    head = client.head(path)

    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


def test_the_timeline_does_not_show_a_status_that_did_not_change(
    store: sessionmaker[Session], scenario: Scenario, client: TestClient
) -> None:
    with store.begin() as session:
        session.add(
            TicketEvent(
                ticket_id=scenario.ticket_id,
                at=NOW,
                kind="escalated",
                actor="dispatch",
                from_status="open",
                to_status="open",
                detail={},
            )
        )

    text = visible_text(client.get(f"/tickets/{scenario.ticket_id}").text)

    assert "open → open" not in text
    assert "open → assigned" in text


@pytest.fixture
def revealing(store: sessionmaker[Session], scenario: Scenario) -> int:
    """A work order whose email quotes the customer's number and street address."""
    with store.begin() as session:
        row = Notification(
            dedupe_key="details:wo-email",
            ticket_id=scenario.ticket_id,
            event="work_order",
            recipient_role="technician",
            recipient_id="tech-rui",
            channel="email",
            address="rui@example.com",
            locale="en",
            context={},
            attempts=1,
            status="sent",
            subject=f"WO #1 at {ADDRESS}",
            body=f"Address:  {ADDRESS}\nCustomer: Joana Silva, {CUSTOMER_PHONE}\n",
            next_attempt_at=NOW,
            created_at=NOW,
        )
        session.add(row)
        session.flush()
        return row.id


@pytest.mark.parametrize("token", [VIEWER_TOKEN, TECH_TOKEN])
def test_a_viewer_or_technician_reads_bodies_without_number_or_address(
    store: sessionmaker[Session],
    scenario: Scenario,
    revealing: int,
    make_client: ClientFactory,
    token: str,
) -> None:
    client = make_client(store, tokens=TOKENS)
    bearer = {"authorization": f"Bearer {token}"}

    why = client.get(f"/api/notifications/{revealing}", headers=bearer).json()
    ticket = client.get(f"/api/tickets/{scenario.ticket_id}", headers=bearer).text
    page = client.get(f"/notifications/{revealing}", headers=bearer).text

    for shown in (why["body"], why["subject"], ticket, page):
        assert CUSTOMER_PHONE not in shown
        assert "Remédios" not in shown
    assert "Address:  [address hidden]" in why["body"]
    assert "+35191****678" in why["body"]


def test_ops_read_the_body_as_it_was_sent(
    store: sessionmaker[Session], scenario: Scenario, revealing: int, make_client: ClientFactory
) -> None:
    client = make_client(store, tokens=TOKENS)

    why = client.get(
        f"/api/notifications/{revealing}", headers={"authorization": f"Bearer {OPS_TOKEN}"}
    ).json()

    assert ADDRESS in why["body"]
    assert CUSTOMER_PHONE in why["body"]
