"""Follow-up tasks, "why did I get this?" and ops status updates, through the HTTP routes."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.notifier.examples import example_context
from forewarn.notifier.followups import check_overdue
from forewarn.store.contacts import FollowUp
from forewarn.store.models import Notification
from tests.web.conftest import NOW, OPS_TOKEN, VIEWER_TOKEN, ClientFactory
from tests.web.scenario import CUSTOMER_PHONE, Scenario, seed

TOKENS = {OPS_TOKEN: "ops", VIEWER_TOKEN: "viewer"}


@pytest.fixture
def told(any_store: sessionmaker[Session]) -> tuple[Scenario, int]:
    """The scenario plus a fault notice sent to Joana 25 hours ago and never followed up,
    and a HUMAN reply from her that quotes her number."""
    with any_store() as session:
        scenario = seed(session, NOW)
    with any_store.begin() as session:
        notice = Notification(
            dedupe_key="why-test:notice",
            ticket_id=scenario.ticket_id,
            event="fault_notice",
            recipient_role="customer",
            recipient_id="cust-joana",
            channel="sms",
            address=CUSTOMER_PHONE,
            locale="pt",
            context=example_context(),
            critical=False,
            status="sent",
            attempts=1,
            next_attempt_at=NOW - timedelta(hours=25),
            created_at=NOW - timedelta(hours=25),
            sent_at=NOW - timedelta(hours=25),
        )
        session.add(notice)
        session.add(
            FollowUp(
                source_key="sms:SMhuman",
                kind="human",
                customer_id="cust-joana",
                ticket_id=scenario.ticket_id,
                detail=f"HUMAN please call me on {CUSTOMER_PHONE}",
                status="open",
                opened_at=NOW - timedelta(hours=3),
                due_at=NOW - timedelta(hours=1),
            )
        )
        session.flush()
        notice_id = notice.id
    check_overdue(any_store, NOW, timedelta(hours=24))
    return scenario, notice_id


def page_client(make_client: ClientFactory, store: sessionmaker[Session], token: str) -> TestClient:
    client = make_client(store, tokens=TOKENS)
    client.get(f"/follow-ups?token={token}")  # the token moves into the cookie
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None, "the page has no form"
    return found.group(1)


def open_tasks(store: sessionmaker[Session]) -> dict[str, FollowUp]:
    with store() as session:
        rows = session.scalars(select(FollowUp).where(FollowUp.status == "open"))
        return {task.kind: task for task in rows}


def test_the_follow_ups_page_lists_an_open_task_with_its_due_time_and_masks_the_reply(
    any_store: sessionmaker[Session], told: tuple[Scenario, int], make_client: ClientFactory
) -> None:
    client = page_client(make_client, any_store, VIEWER_TOKEN)

    page = client.get("/follow-ups")

    assert page.status_code == 200
    task = open_tasks(any_store)["human"]
    row = page.text[page.text.index(f'id="task-{task.id}"') :].split("</tr>")[0]
    assert f'id="task-{task.id}" class="overdue"' in page.text
    assert "asked for a person" in row and "Joana Silva" in row
    assert f'datetime="{(NOW - timedelta(hours=1)).isoformat()}"' in row
    assert CUSTOMER_PHONE not in page.text
    assert "+35191****678" in row
    assert "notice without follow-up" in page.text  # the orphan notice is a task too
    assert "<form" not in page.text  # a viewer gets no close button


def test_closing_a_task_needs_ops_and_a_form_from_the_console(
    any_store: sessionmaker[Session], told: tuple[Scenario, int], make_client: ClientFactory
) -> None:
    task = open_tasks(any_store)["human"]
    viewer = page_client(make_client, any_store, VIEWER_TOKEN)
    refused = viewer.post(f"/follow-ups/{task.id}/close", data={"csrf": "x"})
    assert refused.status_code == 403

    ops = page_client(make_client, any_store, OPS_TOKEN)
    forged = ops.post(f"/follow-ups/{task.id}/close", data={"csrf": "0" * 64})
    assert forged.status_code == 403
    assert "human" in open_tasks(any_store)

    token = csrf_of(ops.get("/follow-ups").text)
    closed = ops.post(f"/follow-ups/{task.id}/close", data={"csrf": token}, follow_redirects=False)

    assert closed.status_code == 303
    assert "human" not in open_tasks(any_store)
    assert "closed by ops (console)" in ops.get("/follow-ups").text


def test_the_api_lists_tasks_and_closes_them_for_ops_only(
    any_store: sessionmaker[Session], told: tuple[Scenario, int], make_client: ClientFactory
) -> None:
    client = make_client(any_store, tokens=TOKENS)
    viewer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}

    listed = client.get("/api/follow-ups", headers=viewer).json()
    first = listed["items"][0]
    assert listed["open"] == 2 and listed["overdue"] == 1
    assert first["kind"] == "human" and first["overdue"] is True
    assert CUSTOMER_PHONE not in str(listed)

    assert client.post(f"/api/follow-ups/{first['id']}/close", headers=viewer).status_code == 403
    closed = client.post(f"/api/follow-ups/{first['id']}/close", headers=ops)
    again = client.post(f"/api/follow-ups/{first['id']}/close", headers=ops)

    assert closed.status_code == 200 and closed.json()["status"] == "done"
    assert again.status_code == 409
    assert client.post("/api/follow-ups/999999/close", headers=ops).status_code == 404


def test_the_notification_page_says_why_with_the_rule_version_and_evidence(
    any_store: sessionmaker[Session], told: tuple[Scenario, int], make_client: ClientFactory
) -> None:
    scenario, notice_id = told
    client = page_client(make_client, any_store, VIEWER_TOKEN)

    page = client.get(f"/notifications/{notice_id}")
    why = client.get(
        f"/api/notifications/{notice_id}", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}
    ).json()

    assert page.status_code == 200
    section = page.text[page.text.index('id="why"') :]
    assert "inverter-overheating" in section and "0123456789ab" in section
    assert "81.5" in section and "temperature" in section
    assert f"/tickets/{scenario.ticket_id}" in section
    assert CUSTOMER_PHONE not in page.text
    assert why["rule_version"] == "0123456789ab"
    assert why["evidence"] == {"metric": "temperature", "value": 81.5}
    assert why["preference"]["channels"] == ["sms", "email"]
    assert client.get("/notifications/999999").status_code == 404


def test_an_ops_status_update_queues_one_customer_message_and_clears_the_orphan_task(
    any_store: sessionmaker[Session], told: tuple[Scenario, int], make_client: ClientFactory
) -> None:
    scenario, _ = told
    assert "orphan_notice" in open_tasks(any_store)
    ops = page_client(make_client, any_store, OPS_TOKEN)
    form = ops.get(f"/tickets/{scenario.ticket_id}/status-update")
    body = {"csrf": csrf_of(form.text), "note": "The technician comes tomorrow morning."}

    sent = ops.post(
        f"/tickets/{scenario.ticket_id}/status-update", data=body, follow_redirects=False
    )
    twice = ops.post(f"/tickets/{scenario.ticket_id}/status-update", data=body)

    assert sent.status_code == 303 and twice.status_code == 200
    with any_store() as session:
        updates = list(
            session.scalars(select(Notification).where(Notification.event == "status_update"))
        )
    assert len(updates) == 1
    assert updates[0].recipient_id == "cust-joana" and updates[0].status == "queued"
    assert updates[0].context["update"]["note"] == "The technician comes tomorrow morning."
    assert "orphan_notice" not in open_tasks(any_store)
    assert check_overdue(any_store, NOW + timedelta(hours=1), timedelta(hours=24)) == 0


def test_a_status_update_over_the_api_needs_ops_and_a_customer_who_was_told(
    any_store: sessionmaker[Session], told: tuple[Scenario, int], make_client: ClientFactory
) -> None:
    scenario, _ = told
    client = make_client(any_store, tokens=TOKENS)
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
    note = {"note": "Parts arrive on Friday.", "eta": "2026-11-27T14:00:00+00:00"}

    viewer = client.post(
        f"/api/tickets/{scenario.ticket_id}/status-update",
        json=note,
        headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
    )
    queued = client.post(f"/api/tickets/{scenario.ticket_id}/status-update", json=note, headers=ops)
    untold = client.post(
        f"/api/tickets/{scenario.closed_ticket_id}/status-update", json=note, headers=ops
    )

    assert viewer.status_code == 403
    assert queued.status_code == 200 and len(queued.json()["queued"]) == 1
    assert untold.status_code == 409
    assert (
        client.post("/api/tickets/999999/status-update", json=note, headers=ops).status_code == 404
    )
