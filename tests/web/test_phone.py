"""A technician's phone view: their own jobs only, with big buttons that run the SMS
commands, usable on a 390 px wide screen (headless Chromium) and over plain HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect
from sqlalchemy import select

from forewarn.store.models import Ticket, TicketEvent
from tests.services import unavailable
from tests.ticketing.test_tickets import overheat
from tests.web.console import csrf_of, sign_in
from tests.web.desk import ANA, BEA, Desk, running_desk
from tests.web.html import visible_text
from tests.web.live import CHROMIUM, chromium, serving


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as desk:
        yield desk


def test_a_technician_sees_only_their_own_jobs(desk: Desk) -> None:
    overheat(desk.app, "inv-201", desk.fleet.clock)  # a second job, for someone
    with desk.app.sessions() as session:
        jobs = {t.id: t.technician_id for t in session.scalars(select(Ticket))}
    ana, bea = TestClient(desk.web), TestClient(desk.web)
    sign_in(ana, ANA)
    sign_in(bea, BEA)

    mine = ana.get("/")  # lands on "my jobs"
    text = visible_text(mine.text)

    assert str(mine.url).endswith("/my")
    for job, technician in jobs.items():
        assert (f"#{job} " in text) == (technician == "t-ana")
        shown = ana.get(f"/tickets/{job}").status_code
        assert shown == (200 if technician == "t-ana" else 404)
    assert "Silva home" in text
    assert "+351912000101" in text  # the customer to call
    assert "Check the cooling fan." in text
    assert ana.get("/tickets", follow_redirects=False).headers["location"] == "/my"


def test_a_technician_cannot_answer_someone_elses_job(desk: Desk) -> None:
    bea = TestClient(desk.web)
    sign_in(bea, BEA)
    assert 'method="post"' not in bea.get("/my").text  # Bea has no job: no button
    csrf = csrf_of(bea.get(f"/alerts/{desk.alert_id}").text)

    answer = bea.post(
        f"/tickets/{desk.ticket_id}/command",
        data={"csrf": csrf, "command": "ack", "back": "/my"},
        follow_redirects=False,
    )

    assert answer.status_code == 403
    assert "not assigned to you" in visible_text(answer.text)


@pytest.mark.browser
def test_a_technician_accepts_and_completes_a_job_on_a_390_px_phone(desk: Desk) -> None:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with serving(desk.web) as url, chromium() as browser:
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        page = context.new_page()
        page.goto(f"{url}/")
        page.get_by_label("access token").fill(ANA)
        page.get_by_role("button", name="Open").click()

        expect(page).to_have_url(f"{url}/my")
        job = page.locator(f"#job-{desk.ticket_id}")
        expect(job).to_contain_text("inv-101")
        expect(job).to_contain_text("Silva home")
        # Nothing runs off the screen: the page is no wider than the phone.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        ack = job.get_by_role("button", name="ACK")
        box = ack.bounding_box()
        assert box is not None and box["height"] >= 44  # a thumb can hit it

        ack.click()
        expect(job).to_contain_text("accepted")
        job.get_by_role("button", name="ON SITE").click()
        expect(job).to_contain_text("on site")
        job.get_by_label(f"closure code for job {desk.ticket_id}").select_option("parts_needed")
        job.get_by_label(f"note for job {desk.ticket_id}").fill("fan ordered")
        job.get_by_label("the job is finished").check()
        job.get_by_role("button", name="DONE").click()

        # Parts needed is not done: the job stays, waiting for the parts, with its button.
        expect(job).to_contain_text("awaiting")
        expect(job).to_contain_text("Last visit")
        job.get_by_role("button", name="PARTS IN").click()
        expect(job).to_contain_text("assigned")  # back to Ana for the return visit
        job.get_by_role("button", name="ACK").click()
        expect(job).to_contain_text("accepted")
        job.get_by_label(f"note for job {desk.ticket_id}").fill("new fan fitted")
        job.get_by_label("the job is finished").check()
        job.get_by_role("button", name="DONE").click()

        expect(page.locator(f"#job-{desk.ticket_id}")).to_have_count(0)
        expect(page.locator("main")).to_contain_text("No open jobs")
    with desk.app.sessions() as session:
        ticket = session.get(Ticket, desk.ticket_id)
        kinds = session.scalars(
            select(TicketEvent.kind).where(TicketEvent.actor == "technician:t-ana")
        ).all()
    assert ticket is not None
    assert (ticket.status, ticket.closure_code, ticket.resolution_note) == (
        "resolved",
        "fixed",
        "new fan fitted",
    )
    assert kinds == ["accept", "arrive", "await_parts", "parts_arrived", "accept", "resolve"]


def test_a_technicians_personal_token_reads_only_their_own_jobs_through_the_api(
    desk: Desk,
) -> None:
    overheat(desk.app, "inv-201", desk.fleet.clock)  # a second job, for someone
    with desk.app.sessions() as session:
        jobs = {t.id: t.technician_id for t in session.scalars(select(Ticket))}
    api = TestClient(desk.web)

    listed = api.get("/api/tickets?show=all", headers={"authorization": f"Bearer {ANA}"})

    assert listed.status_code == 200
    assert {t["id"] for t in listed.json()["items"]} == {
        job for job, technician in jobs.items() if technician == "t-ana"
    }
    for job, technician in jobs.items():
        one = api.get(f"/api/tickets/{job}", headers={"authorization": f"Bearer {ANA}"})
        assert one.status_code == (200 if technician == "t-ana" else 404)
    for fleetwide in ("/api/notifications", "/api/quarantine", "/api/overview"):
        refused = api.get(fleetwide, headers={"authorization": f"Bearer {BEA}"})
        assert refused.status_code == 403, fleetwide
