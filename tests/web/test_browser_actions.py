"""The console's buttons in headless Chromium: ops acknowledge, silence a site for
tonight and reassign a ticket; a viewer sees no button and a forged POST is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from forewarn.store.models import Alert, Ticket
from tests.services import unavailable
from tests.web.desk import OPS, VIEWER, Desk, running_desk
from tests.web.live import CHROMIUM, chromium, serving

pytestmark = pytest.mark.browser


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Desk, str]]:
    with running_desk(tmp_path) as desk, serving(desk.web) as url:
        yield desk, url


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with chromium() as browser:
        yield browser


def signed_in(browser: Browser, url: str, token: str, width: int = 1360) -> Page:
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(f"{url}/")
    page.get_by_label("access token").fill(token)
    page.get_by_role("button", name="Open").click()
    expect(page).to_have_url(f"{url}/")
    return page


def test_ops_acknowledge_silence_a_site_for_tonight_and_reassign_in_a_browser(
    live: tuple[Desk, str], browser: Browser
) -> None:
    desk, url = live
    page = signed_in(browser, url, OPS)

    # Acknowledge the alert with a note.
    page.goto(f"{url}/alerts/{desk.alert_id}")
    page.get_by_label("acknowledgement note").fill("Ana is on her way")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#acknowledge")).to_contain_text("Acknowledged by ops")

    # Silence the customer's site for tonight: the form is prefilled 22:00 to 06:00.
    page.get_by_role("link", name="Silences", exact=True).click()
    page.get_by_label("what to silence").select_option("site:s-cascais")
    page.get_by_label("comment").fill("inverter swap tonight")
    page.get_by_role("button", name="Silence", exact=True).click()
    row = page.locator("#silence-list tr", has_text="inverter swap tonight")
    expect(row).to_contain_text("2026-11-03 22:00 UTC")
    expect(row).to_contain_text("2026-11-04 06:00 UTC")
    expect(row).to_contain_text("s-cascais")

    # Reassign the ticket from Ana to Bea, who is eligible (Joao is not, and says why).
    page.goto(f"{url}/tickets/{desk.ticket_id}")
    expect(page.locator("#assign-excluded")).to_contain_text("Joao Reis")
    page.get_by_label("Bea Matos").check()
    page.get_by_role("button", name="Reassign").click()
    expect(page.locator("#technician")).to_have_text("Bea Matos")

    with desk.app.sessions() as session:
        alert = session.get(Alert, desk.alert_id)
        ticket = session.scalars(select(Ticket)).one()
    assert alert is not None and alert.acknowledged_by == "ops"
    assert ticket.technician_id == "t-bea"


def test_a_viewer_sees_no_button_and_a_forged_post_is_refused_in_a_browser(
    live: tuple[Desk, str], browser: Browser
) -> None:
    desk, url = live
    page = signed_in(browser, url, VIEWER)

    for path in (f"/tickets/{desk.ticket_id}", f"/alerts/{desk.alert_id}", "/silences"):
        page.goto(f"{url}{path}")
        expect(page.locator("main h1")).to_be_visible()
        expect(page.locator("main button")).to_have_count(0)
    # The browser's own session cookie goes with it, as with a cross-site form.
    forged = page.request.post(
        f"{url}/tickets/{desk.ticket_id}/command", form={"command": "cancel", "confirm": "yes"}
    )

    assert forged.status == 403
    with desk.app.sessions() as session:
        assert session.scalars(select(Ticket.status)).one() == "assigned"


def test_ops_read_the_kpis_in_a_browser(live: tuple[Desk, str], browser: Browser) -> None:
    desk, url = live
    desk.fleet.clock.advance(minutes=3)  # past the merge window: the fault notice leaves
    desk.app.sender.run_once()
    page = signed_in(browser, url, OPS)

    page.get_by_role("link", name="KPIs", exact=True).click()

    expect(page).to_have_url(f"{url}/kpis")
    expect(page.locator("#card-proactive")).to_contain_text("100 %")
    expect(page.locator("#card-proactive")).to_contain_text("1 of 1 episodes")
    expect(page.locator("#card-detect")).to_contain_text("5.0 min")
    expect(page.locator("#card-self-service")).to_contain_text("0 of 0 offers closed by FIXED")
    expect(page.locator("#chart-proactive svg")).to_be_visible()
    expect(page.locator("#per-rule")).to_contain_text("inverter-overheating")
    page.get_by_role("link", name="per week (8)").click()
    expect(page.locator("#per-period tbody tr")).to_have_count(8)
