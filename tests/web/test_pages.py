from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from forewarn.store.models import Device, Ticket
from forewarn.ticketing.dispatch import Candidate, Job, choose_technician
from tests.web.conftest import NOW, ClientFactory
from tests.web.html import visible_text
from tests.web.scenario import BAD_NUMBER, CUSTOMER_EMAIL, CUSTOMER_PHONE, Scenario, seed

PAGES = ["/", "/devices", "/alerts", "/tickets", "/notifications", "/quarantine"]


def test_it_counts_the_fleet_alerts_tickets_and_messages_on_the_dashboard(
    client: TestClient,
) -> None:
    page = client.get("/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert visible_text(page.text, "card-devices").startswith("Devices 6 reporting 4 silent 2")
    assert "silent: no data for 15 min or more" in visible_text(page.text, "card-devices")
    alerts = visible_text(page.text, "card-alerts")
    assert alerts.startswith("Open alerts 3 critical 1 major 1 minor 1 info 0")
    assert "2 firing" in alerts
    assert visible_text(page.text, "card-tickets") == "Open tickets 2 assigned 1 open 1"
    # The all-clear sent two days ago is outside the 24-hour window.
    assert (
        visible_text(page.text, "card-notifications")
        == "Notifications · 24 h 5 delivered 2 failed 1 queued 1 sent 1"
    )
    assert visible_text(page.text, "card-quarantine").startswith("Quarantined · 24 h 2")


def test_it_lists_the_latest_open_alerts_and_tickets_on_the_dashboard(
    client: TestClient, scenario: Scenario
) -> None:
    text = visible_text(client.get("/").text)

    assert "fault F21: DC insulation resistance too low" in text
    assert "power_w 180 below 250" in text
    assert "power_w 320 cleared" not in text  # resolved
    assert "Inverter fault F21 at Alfama rooftop" in text
    assert "Rui Almeida" in text
    assert "Low output at Belém villa" not in text  # closed
    assert f'href="/tickets/{scenario.ticket_id}"' in client.get("/").text


def test_it_shows_times_in_utc_with_their_age_from_the_injected_clock(
    client: TestClient,
) -> None:
    text = visible_text(client.get("/").text)

    assert "as of 2026-11-25 03:01 UTC" in text
    assert "2026-11-25 02:59 UTC 2 min ago" in text  # the F21 alert started firing
    assert "2026-11-25 06:59 UTC in 3 h 58 min" in text  # the SLA of ticket 1
    assert "overdue 2026-11-25 02:01 UTC 60 min ago" in text  # the delay case's SLA


def test_it_lists_devices_with_site_model_last_seen_and_open_alerts(client: TestClient) -> None:
    page = client.get("/devices")

    assert page.status_code == 200
    rows = visible_text(page.text)
    # Devices with open alerts come first; among equals, the silent ones.
    order = ["inv-opo-001", "inv-lis-001", "inv-lis-002", "inv-opo-002", "gw-lis-belem"]
    assert [rows.index(device) for device in order] == sorted(rows.index(d) for d in order)
    assert (
        "inv-opo-001 silent Foz house site-opo-foz SunWave 8K inverter "
        "2026-11-25 00:51 UTC 2 h 10 min ago 1"
    ) in rows
    assert "inv-opo-002 silent Foz house site-opo-foz SunWave 8K inverter never 0" in rows
    assert "gw-lis-belem reporting Belém villa site-lis-belem EdgeBox 2 gateway" in rows


def test_it_lists_only_the_silent_devices_when_asked(client: TestClient) -> None:
    text = visible_text(client.get("/devices?show=silent").text)

    assert "inv-opo-001" in text
    assert "inv-opo-002" in text
    assert "inv-lis-002" not in text
    assert "showing 1 to 2 of 2" in text


def test_it_takes_the_silence_window_from_the_offline_monitor(
    store: sessionmaker[Session], scenario: Scenario, make_client: ClientFactory
) -> None:
    config = "monitors:\n  - id: offline\n    kind: offline\n    after: 3h\n"
    client = make_client(store, yaml_text=config)

    text = visible_text(client.get("/").text, "card-devices")

    assert text.startswith("Devices 6 reporting 5 silent 1")
    assert "no data for 3 h or more" in text


def test_it_shows_open_alerts_and_the_resolved_ones_only_when_asked(client: TestClient) -> None:
    open_alerts = visible_text(client.get("/alerts").text)
    resolved = visible_text(client.get("/alerts?show=resolved").text)

    assert "inv-lis-002" in open_alerts
    assert "inv-lis-003" not in open_alerts
    # Firing before pending, and critical before major.
    assert (
        open_alerts.index("inv-lis-002")
        < open_alerts.index("inv-opo-001")
        < open_alerts.index("inv-lis-001")
    )
    assert "resolved major inv-lis-003" in resolved
    assert "inv-lis-002" not in resolved


def test_it_explains_why_an_alert_fired_with_the_evidence_of_each_change(
    client: TestClient, scenario: Scenario
) -> None:
    page = client.get(f"/alerts/{scenario.resolved_alert_id}")
    pending = client.get("/alerts?show=open").text

    assert page.status_code == 200
    text = visible_text(page.text)
    assert "Why did this fire?" in text
    assert "2026-11-22 03:01 UTC 3 d ago firing r3 metric power_w value 120" in text
    assert "2026-11-23 03:01 UTC 2 d ago firing → resolved r3 metric power_w value 320" in text
    assert "low-output" in text
    assert 'href="/alerts/' in pending


def test_it_shows_nested_evidence_as_a_table(
    client: TestClient, scenario: Scenario, store: sessionmaker[Session]
) -> None:
    text = visible_text(client.get("/alerts").text)
    pending_id = next(
        a["id"] for a in client.get("/api/alerts").json()["items"] if a["state"] == "pending"
    )

    detail = visible_text(client.get(f"/alerts/{pending_id}").text)

    assert "power_w 180 below 250" in text
    assert "levels above — below 250 clear 300" in detail


def test_it_shows_the_ticket_with_people_dispatch_timeline_and_notifications(
    client: TestClient, scenario: Scenario
) -> None:
    page = client.get(f"/tickets/{scenario.ticket_id}")

    assert page.status_code == 200
    facts = visible_text(page.text, "facts")
    assert "Device inv-lis-002" in facts
    assert "Site Alfama rooftop site-lis-alfama" in facts
    assert "Customer Joana Silva" in facts
    assert "Technician Rui Almeida" in facts
    assert "SLA due 2026-11-25 06:59 UTC in 3 h 58 min" in facts
    dispatch = visible_text(page.text, "dispatch")
    assert "Chosen: Rui Almeida — has the skill 'inverter'; serves region 'lisboa'" in dispatch
    assert "Rank Candidate score open jobs distance km" in dispatch
    assert "1 Rui Almeida tech-rui 0.06 0 3 chosen" in dispatch
    assert "2 Marta Sousa tech-marta 3.65 1 24.5" in dispatch
    assert "Tiago Ferreira tech-tiago lacks skill 'inverter'" in dispatch
    timeline = visible_text(page.text, "timeline")
    assert "ticket opened · new → open · monitor" in timeline
    assert "ticket assigned · open → assigned · dispatch technician: tech-rui" in timeline
    assert "alert fault-codes: new → firing fault F21" in timeline
    assert "out fault notice to customer by email · sent · cust-joana" in timeline
    notices = visible_text(page.text, "notifications")
    assert "work order critical technician tech-rui sms twilio +35196****111 delivered" in notices
    assert "customer cust-joana sms twilio +35191****678 delivered" in notices
    assert "email sendgrid j***@example.com sent" in notices
    assert "Olá Joana, detetámos uma falha no seu inversor." in notices
    assert "O seu inversor precisa de atenção" in notices


def test_it_renders_a_decision_recorded_by_the_dispatcher(
    store: sessionmaker[Session], scenario: Scenario, client: TestClient
) -> None:
    decision = choose_technician(
        Job(skill="inverter", region="lisboa", priority="critical", lat=38.71, lon=-9.13),
        [
            Candidate(
                "tech-rui",
                "Rui Almeida",
                frozenset({"inverter"}),
                frozenset({"lisboa"}),
                max_jobs=3,
                open_jobs=3,
            ),
            Candidate(
                "tech-marta",
                "Marta Sousa",
                frozenset({"inverter"}),
                frozenset({"lisboa"}),
                max_jobs=3,
                open_jobs=0,
                lat=38.79,
                lon=-9.38,
            ),
        ],
    )
    with store() as session:
        ticket = session.get(Ticket, scenario.ticket_id)
        assert ticket is not None
        ticket.dispatch = decision.record()
        session.commit()

    dispatch = visible_text(client.get(f"/tickets/{scenario.ticket_id}").text, "dispatch")

    assert dispatch.startswith("Chosen: Marta Sousa")
    assert "Rui Almeida tech-rui at capacity (3/3 open jobs)" in dispatch


def test_it_still_shows_a_dispatch_record_of_an_unexpected_shape(
    store: sessionmaker[Session], scenario: Scenario, client: TestClient
) -> None:
    with store() as session:
        ticket = session.get(Ticket, scenario.ticket_id)
        assert ticket is not None
        ticket.dispatch = {
            "chosen": "tech-rui",
            "candidates": {"tech-rui": 0.5, "tech-ghost": {"score": 9, "eta_min": 40}},
            "excluded": [{"technician_id": "tech-tiago", "reasons": ["no skill", "off duty"]}],
            "policy": "nearest-first",
        }
        session.commit()

    page = client.get(f"/tickets/{scenario.ticket_id}")

    assert page.status_code == 200
    dispatch = visible_text(page.text, "dispatch")
    assert "Rank Candidate score eta min" in dispatch
    assert "1 Rui Almeida tech-rui 0.5 — chosen" in dispatch
    assert "2 tech-ghost 9 40" in dispatch
    assert "Tiago Ferreira tech-tiago no skill; off duty" in dispatch
    assert "policy nearest-first" in dispatch


def test_it_shows_a_ticket_whose_dispatch_column_is_not_a_record(
    store: sessionmaker[Session], scenario: Scenario, client: TestClient
) -> None:
    with store() as session:
        ticket = session.get(Ticket, scenario.ticket_id)
        assert ticket is not None
        ticket.dispatch = ["tech-rui"]  # type: ignore[assignment]
        session.commit()

    page = client.get(f"/tickets/{scenario.ticket_id}")

    assert page.status_code == 200
    assert 'value ["tech-rui"]' in visible_text(page.text, "dispatch")


def test_it_says_when_a_ticket_waits_for_the_dispatcher(
    client: TestClient, scenario: Scenario
) -> None:
    page = client.get(f"/tickets/{scenario.delay_ticket_id}")

    assert "Technician unassigned" in visible_text(page.text, "facts")
    dispatch = visible_text(page.text, "dispatch")
    assert "No technician chosen — delay cases go to the dispatcher queue" in dispatch
    assert "failed" in visible_text(page.text, "notifications")


def test_it_masks_every_recipient_address_and_error_in_the_notification_log(
    client: TestClient, scenario: Scenario
) -> None:
    pages = [client.get("/notifications").text]
    pages += [
        client.get(f"/tickets/{t}").text for t in (scenario.ticket_id, scenario.delay_ticket_id)
    ]

    for html in pages:
        assert CUSTOMER_PHONE not in html
        assert CUSTOMER_EMAIL not in html
        assert BAD_NUMBER not in html
    log = visible_text(pages[0])
    assert "+35191****678" in log
    assert "j***@example.com" in log
    assert "The 'To' number +35193****890 is not a valid phone number" in log


def test_it_lists_notifications_newest_first_and_filters_them_by_status(
    client: TestClient,
) -> None:
    everything = visible_text(client.get("/notifications").text)
    failed = visible_text(client.get("/notifications?status=failed").text)

    assert everything.index("digest") < everything.index("work order")
    assert everything.index("work order") < everything.index("all clear")
    assert "All 6 delivered 3 failed 1 queued 1 sent 1" in everything
    assert "delay notice" in failed
    assert "work order" not in failed
    assert "showing 1 to 1 of 1" in failed


def test_it_shows_quarantined_input_escaped_and_truncated(client: TestClient) -> None:
    page = client.get("/quarantine")

    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    text = visible_text(page.text)
    assert "unknown device 'unknown-77'" in text
    assert "devices/unknown-77/telemetry" in text
    assert "\\xff\\xfe<script>alert(1)</script>\\nxxx" in text
    assert "… 2028 bytes" in text
    assert '{"ts": 1790000000, "power_w": NaN} 34 bytes' in text
    assert "feed:orders orders-2026-11-23.csv:14" in text


def test_it_escapes_whatever_text_the_store_holds(
    store: sessionmaker[Session], scenario: Scenario, client: TestClient
) -> None:
    with store() as session:
        ticket = session.get(Ticket, scenario.ticket_id)
        assert ticket is not None
        ticket.title = '<img src=x onerror="alert(1)">'
        session.commit()

    html = client.get(f"/tickets/{scenario.ticket_id}").text

    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html


def test_it_pages_through_long_lists_keeping_the_filter(
    store: sessionmaker[Session], scenario: Scenario, client: TestClient
) -> None:
    first = client.get("/devices?show=silent&limit=1")
    second = client.get("/devices?show=silent&limit=1&offset=1")

    assert "showing 1 to 1 of 2" in visible_text(first.text)
    assert 'href="/devices?show=silent&amp;limit=1&amp;offset=1"' in first.text
    assert "showing 2 to 2 of 2" in visible_text(second.text)
    assert 'href="/devices?show=silent&amp;limit=1"' in second.text


@pytest.mark.parametrize(
    "path",
    ["/tickets/999", "/alerts/999", "/tickets/0", "/tickets/-3", "/tickets/99999999999999999"],
)
def test_it_answers_an_unknown_id_with_a_404_page(
    any_store: sessionmaker[Session], make_client: ClientFactory, path: str
) -> None:
    with any_store() as session:
        seed(session, NOW)
    client = make_client(any_store)

    page = client.get(path)

    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Not found" in visible_text(page.text)


def test_it_answers_an_unknown_address_with_a_404_page_for_browsers(client: TestClient) -> None:
    page = client.get("/no/such/page", headers={"accept": "text/html,*/*"})

    assert page.status_code == 404
    assert "Nothing lives at /no/such/page." in visible_text(page.text)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/tickets/abc", "ticket_id: Input should be a valid integer"),
        ("/devices?offset=-1", "offset: Input should be greater than or equal to 0"),
        ("/devices?limit=100000", "limit: Input should be less than or equal to 500"),
        ("/alerts?show=everything", "show: Input should be 'open', 'resolved' or 'all'"),
        ("/notifications?status=%3Cscript%3E", "status: String should match pattern"),
    ],
)
def test_it_answers_a_bad_parameter_with_a_422_page_naming_it(
    client: TestClient, path: str, message: str
) -> None:
    page = client.get(path)

    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert message in visible_text(page.text)
    assert "<script>" not in page.text


def test_it_renders_every_page_of_an_empty_store(
    store: sessionmaker[Session], make_client: ClientFactory
) -> None:
    client = make_client(store)

    for path in PAGES:
        assert client.get(path).status_code == 200, path
    text = visible_text(client.get("/").text)
    assert "Devices 0 reporting 0 silent 0" in text
    assert "No open alerts. All quiet." in text


def test_it_renders_every_page_over_the_same_rows_on_each_database(
    any_store: sessionmaker[Session], make_client: ClientFactory
) -> None:
    with any_store() as session:
        scenario = seed(session, NOW)
    client = make_client(any_store)

    for path in [*PAGES, f"/tickets/{scenario.ticket_id}", f"/alerts/{scenario.firing_alert_id}"]:
        assert client.get(path).status_code == 200, path
    dashboard = client.get("/").text
    assert visible_text(dashboard, "card-devices").startswith("Devices 6 reporting 4 silent 2")
    assert visible_text(dashboard, "card-tickets") == "Open tickets 2 assigned 1 open 1"
    quarantine = visible_text(client.get("/quarantine").text)
    assert "\\xff\\xfe<script>" in quarantine
    assert "2028 bytes" in quarantine


def test_it_counts_a_device_that_reported_exactly_at_the_window_edge_as_reporting(
    store: sessionmaker[Session], scenario: Scenario, client: TestClient
) -> None:
    with store() as session:
        device = session.get(Device, "inv-opo-001")
        assert device is not None
        device.last_seen_at = NOW - timedelta(minutes=15)
        session.commit()

    text = visible_text(client.get("/").text, "card-devices")

    assert text.startswith("Devices 6 reporting 5 silent 1")
