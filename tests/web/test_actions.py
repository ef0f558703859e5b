"""Every console action as a form: ops, technicians and viewers through the HTTP routes
the buttons post to, with the session's CSRF field (see test_browser_actions.py for
the same flows in a real browser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from forewarn.store.contacts import FollowUp
from forewarn.store.models import Alert, Notification, Quarantine, Ticket
from forewarn.web.app import create_app
from tests.web.console import csrf_of, sign_in, submit
from tests.web.desk import ANA, OPS, VIEWER, Desk, running_desk
from tests.web.html import visible_text


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as desk:
        yield desk


def signed_in(desk: Desk, token: str) -> TestClient:
    client = TestClient(desk.web)
    sign_in(client, token)
    return client


def ticket(desk: Desk) -> Ticket:
    with desk.app.sessions() as session:
        found = session.get(Ticket, desk.ticket_id)
        assert found is not None
        return found


def test_ops_acknowledge_an_alert_with_a_note_once(desk: Desk) -> None:
    ops = signed_in(desk, OPS)
    page = f"/alerts/{desk.alert_id}"

    first = submit(ops, page, f"{page}/acknowledge", {"note": "Ana is on her way"})
    again = ops.post(f"{page}/acknowledge", data={"csrf": csrf_of(ops.get("/silences").text)})

    assert first.status_code == 303
    assert first.headers["location"] == page
    assert "Acknowledged by ops" in visible_text(ops.get(page).text)
    assert again.status_code == 409
    assert "acknowledged already" in visible_text(again.text)
    with desk.app.sessions() as session:
        alert = session.get(Alert, desk.alert_id)
        assert alert is not None and alert.acknowledged_by == "ops"


def test_ops_silence_a_site_for_tonight_in_its_zone_and_end_it(desk: Desk) -> None:
    ops = signed_in(desk, OPS)
    form = ops.get("/silences").text
    assert 'value="site:s-cascais"' in form
    assert "T22:00" in form  # prefilled: tonight

    created = submit(
        ops,
        "/silences",
        "/silences",
        {
            "target": "site:s-cascais",
            "starts": "2026-11-03T22:00",
            "ends": "2026-11-04T06:00",
            "comment": "inverter swap",
        },
    )
    listing = (
        TestClient(desk.web)
        .get("/api/silences", headers={"authorization": f"Bearer {VIEWER}"})
        .json()
    )
    (silence,) = [s for s in listing if s["source"] == "api"]
    unconfirmed = submit(ops, "/silences", f"/silences/{silence['id']}/expire", {})
    ended = submit(ops, "/silences", f"/silences/{silence['id']}/expire", {"confirm": "yes"})

    assert created.status_code == 303
    assert silence["sites"] == ["s-cascais"]
    assert silence["zone"] == "UTC"
    assert silence["starts"] == "2026-11-03T22:00:00Z"
    assert silence["comment"] == "inverter swap"
    assert silence["created_by"] == "ops"
    assert unconfirmed.status_code == 422
    assert "tick the box" in visible_text(unconfirmed.text)
    assert ended.status_code == 303


def test_ops_reassign_a_ticket_to_an_eligible_technician_chosen_by_score(desk: Desk) -> None:
    ops = signed_in(desk, OPS)
    page = ops.get(f"/tickets/{desk.ticket_id}").text
    text = visible_text(page)

    assert 'id="tech-t-bea"' in page
    assert "Joao Reis" in text
    refused = submit(
        ops,
        f"/tickets/{desk.ticket_id}",
        f"/tickets/{desk.ticket_id}/assign",
        {"technician": "t-joao"},
    )
    moved = submit(
        ops,
        f"/tickets/{desk.ticket_id}",
        f"/tickets/{desk.ticket_id}/assign",
        {"technician": "t-bea"},
    )

    assert refused.status_code == 409
    assert "t-joao is not eligible" in visible_text(refused.text)
    assert moved.status_code == 303
    assert ticket(desk).technician_id == "t-bea"


def test_ops_close_a_ticket_with_a_closure_code_only_when_confirmed(desk: Desk) -> None:
    ops = signed_in(desk, OPS)
    url = f"/tickets/{desk.ticket_id}"
    fields = {"command": "resolve", "closure_code": "no_fault_found", "note": "sensor glitch"}

    unconfirmed = submit(ops, url, f"{url}/command", fields)
    assert unconfirmed.status_code == 422
    assert ticket(desk).status == "assigned"

    closed = submit(ops, url, f"{url}/command", {**fields, "confirm": "yes"})

    assert closed.status_code == 303
    assert ticket(desk).status == "no_fault_found"
    assert 'value="close"' in ops.get(url).text  # next: close it for good
    final = submit(ops, url, f"{url}/command", {"command": "close", "confirm": "yes"})
    assert final.status_code == 303
    assert ticket(desk).status == "closed"
    assert 'id="actions"' not in ops.get(url).text  # nothing left to do


def test_ops_cancel_a_ticket(desk: Desk) -> None:
    ops = signed_in(desk, OPS)
    url = f"/tickets/{desk.ticket_id}"

    cancelled = submit(ops, url, f"{url}/command", {"command": "cancel", "confirm": "yes"})

    assert cancelled.status_code == 303
    assert ticket(desk).status == "cancelled"


def test_ops_resend_a_failed_notification_once(desk: Desk) -> None:
    with desk.app.sessions.begin() as session:
        failed = session.scalars(select(Notification).order_by(Notification.id)).first()
        assert failed is not None
        failed.status, failed.last_error = "failed", "provider said no"
        failed_id = failed.id
    ops = signed_in(desk, OPS)
    page = f"/notifications/{failed_id}"

    assert "Resend" in ops.get(page).text
    resent = submit(ops, page, f"{page}/resend", {})
    again = submit(ops, page, f"{page}/resend", {})

    assert resent.status_code == 303
    with desk.app.sessions() as session:
        new = session.scalars(
            select(Notification).where(Notification.dedupe_key == f"resend:{failed_id}")
        ).one()
        old = session.get(Notification, failed_id)
    assert resent.headers["location"] == f"/notifications/{new.id}"
    assert new.status == "queued"
    assert old is not None and old.status == "failed"
    assert again.status_code == 409


def test_ops_drop_a_quarantined_input_and_release_an_mqtt_one(desk: Desk) -> None:
    published: list[tuple[str, bytes]] = []
    with desk.app.sessions.begin() as session:
        rows = [
            Quarantine(
                received_at=desk.fleet.clock.now(),
                source="mqtt",
                origin=f"devices/inv-9{n}/telemetry",
                payload=b'{"temperature": 41}',
                reason="unknown device",
            )
            for n in range(2)
        ]
        session.add_all(rows)
        session.flush()
        drop_id, release_id = rows[0].id, rows[1].id
    web = create_app(
        desk.app.config,
        desk.app.sessions,
        desk.app.clock,
        tokens={OPS: "ops"},
        publish=lambda topic, payload: published.append((topic, payload)),
    )
    ops = TestClient(web)
    sign_in(ops, OPS)

    page = ops.get("/quarantine").text
    dropped = submit(ops, "/quarantine", f"/quarantine/{drop_id}/drop", {"confirm": "yes"})
    released = submit(ops, "/quarantine", f"/quarantine/{release_id}/release", {})

    assert "Release" in page and "Drop" in page
    assert dropped.status_code == released.status_code == 303
    assert published == [("devices/inv-91/telemetry", b'{"temperature": 41}')]
    with desk.app.sessions() as session:
        assert session.scalars(select(Quarantine.id)).all() == []


def test_ops_close_a_follow_up_with_a_note(desk: Desk) -> None:
    now = desk.fleet.clock.now()
    with desk.app.sessions.begin() as session:
        task = FollowUp(
            source_key="test:human",
            kind="human",
            customer_id="c-silva",
            detail="HUMAN",
            status="open",
            opened_at=now,
            due_at=now,
        )
        session.add(task)
        session.flush()
        task_id = task.id
    ops = signed_in(desk, OPS)

    closed = submit(ops, "/follow-ups", f"/follow-ups/{task_id}/close", {"note": "called her"})

    assert closed.status_code == 303
    assert "called her" in visible_text(ops.get("/follow-ups").text)


def test_a_viewer_sees_no_buttons_and_a_forged_post_is_refused(desk: Desk) -> None:
    viewer = signed_in(desk, VIEWER)
    ops = signed_in(desk, OPS)
    pages = [f"/tickets/{desk.ticket_id}", f"/alerts/{desk.alert_id}", "/silences", "/quarantine"]

    for page in pages:
        html = viewer.get(page).text
        assert 'method="post"' not in html, page
    token = csrf_of(ops.get("/silences").text)
    forged = ops.post(  # another site makes the ops browser post, without the field
        f"/tickets/{desk.ticket_id}/command", data={"command": "cancel", "confirm": "yes"}
    )
    stolen = viewer.post(  # a viewer replays another session's field
        f"/tickets/{desk.ticket_id}/command",
        data={"command": "cancel", "confirm": "yes", "csrf": token},
    )

    assert forged.status_code == 403
    assert "came from another site" in visible_text(forged.text)
    assert stolen.status_code == 403
    assert ticket(desk).status == "assigned"


def test_a_technician_acknowledges_but_cannot_assign(desk: Desk) -> None:
    ana = signed_in(desk, ANA)
    page = f"/alerts/{desk.alert_id}"

    token = csrf_of(ana.get(page).text)
    acked = ana.post(
        f"{page}/acknowledge", data={"csrf": token, "note": "on it"}, follow_redirects=False
    )
    assign = ana.post(
        f"/tickets/{desk.ticket_id}/assign", data={"csrf": token, "technician": "t-bea"}
    )

    assert acked.status_code == 303
    assert "Acknowledged by technician:t-ana" in visible_text(ana.get(page).text)
    assert assign.status_code == 403
