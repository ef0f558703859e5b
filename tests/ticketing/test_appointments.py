"""Visit windows, as the customer and the technician live them: a fault through the
ingest entry, answers by signed inbound SMS through the Twilio fake and by the signed
email link, the technician's phone view, the day-before reminder, the visit; and the
return visit after DONE PARTS.

Tuesday 3 November 2026, 03:00 in Lisbon (UTC+0). Ana works Wednesdays and Thursdays,
08:00-17:00 Lisbon time; the SLA for a major fault is three days, so her windows start on
Wednesday morning and the customer can be reminded on Tuesday evening.
"""

# ruff: noqa: RUF001 - full-width Chinese punctuation is part of the text

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from forewarn.config import parse_config
from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.development import DevelopmentChannel
from forewarn.notifier.webhooks import TWILIO_INBOUND_PATH
from forewarn.service import Forewarn, build, sweep_tickets, web_app
from forewarn.store.appointments import Appointment
from forewarn.store.engine import make_engine
from forewarn.store.models import Customer, Notification, Ticket, TicketEvent
from forewarn.store.schema import upgrade
from tests.fakes.providers import TWILIO_SIGNATURE_HEADER, FakeTwilio
from tests.ticketing.test_tickets import SteppingClock, hot, ingest
from tests.web.console import sign_in, submit
from tests.web.html import visible_text

START = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)
PUBLIC = "https://forewarn.example.com"
MARTA = "+351912000101"
WONG = "+85291234567"
ANA = "+351913000201"
ANA_TOKEN = "ana-personal-token-0123456789"
OPS_TOKEN = "ops-token-0123456789abcdef"
SENDER = "+15005550006"

CONFIG = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101", email: marta@example.com,
     timezone: Europe/Lisbon}
  - {id: c-wong, name: Wong Mei, phone: "+85291234567", locale: zh_HK, timezone: Asia/Hong_Kong}
  - {id: c-mail, name: Rita Mail, email: rita@example.com, timezone: Europe/Lisbon}
sites:
  - {id: s-cascais, name: Silva home, customer: c-silva, region: lisbon-west,
     timezone: Europe/Lisbon, location: {lat: 38.697, lon: -9.421}}
  - {id: s-wong, name: Wong flat, customer: c-wong, region: lisbon-west,
     timezone: Europe/Lisbon, location: {lat: 38.72, lon: -9.15}}
  - {id: s-mail, name: Mail house, customer: c-mail, region: lisbon-west,
     timezone: Europe/Lisbon, location: {lat: 38.70, lon: -9.40}}
devices:
  - {id: inv-101, site: s-cascais, model: SunPeak 5K, kind: inverter}
  - {id: inv-301, site: s-wong, model: SunPeak 5K, kind: inverter}
  - {id: inv-401, site: s-mail, model: SunPeak 5K, kind: inverter}
monitors:
  - id: inverter-overheating
    kind: threshold
    metric: temperature
    above: 80
    clear: 70
    for: 5m
    suggested_fix: Check the cooling fan.
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     timezone: Europe/Lisbon, skills: [inverter], regions: [lisbon-west],
     home: {lat: 38.710, lon: -9.300}, max_jobs: 5,
     shifts: [{days: [wed, thu], hours: "08:00-17:00"}]}
web: {public_url: "https://forewarn.example.com"}
ticketing:
  sla: {major: 3d}
  appointments: {APPOINTMENTS}
"""


@dataclass
class Desk:
    app: Forewarn
    web: FastAPI
    clock: SteppingClock
    twilio: FakeTwilio

    def fault(self, device: str = "inv-101") -> Ticket:
        """``device`` overheats for six minutes: one ticket, Ana assigned."""
        for _ in range(6):
            ingest(self.app, [hot(device, 85, self.clock.now())])
            self.clock.advance(minutes=1)
        self.clock.advance(minutes=3)  # past the notice's merge window
        self.app.sender.drain()
        self.clock.advance(seconds=10)  # the times wait for the notice to go first
        self.app.sender.drain()
        with self.app.sessions() as session:
            ticket = session.scalars(
                select(Ticket).where(Ticket.device_id == device).order_by(Ticket.id.desc())
            ).first()
        assert ticket is not None and ticket.technician_id == "t-ana", ticket
        return ticket

    def sms(self, phone: str, body: str) -> str:
        """A signed inbound SMS from ``phone``; returns the text of our reply."""
        url = PUBLIC + TWILIO_INBOUND_PATH
        params, signature = self.twilio.inbound_sms(url, phone, SENDER, body)
        with TestClient(self.web) as client:
            answer = client.post(
                TWILIO_INBOUND_PATH,
                data=params,
                headers={TWILIO_SIGNATURE_HEADER: signature},
            )
        assert answer.status_code == 200, answer.text
        found = re.search(r"<Message>(.*)</Message>", answer.text, re.S)
        return html.unescape(found.group(1)) if found else ""

    def sent(self, event: str, recipient: str, channel: str = "sms") -> list[str]:
        """The bodies of ``event`` sent to ``recipient`` on ``channel``, oldest first."""
        self.app.sender.drain()
        with self.app.sessions() as session:
            return list(
                session.scalars(
                    select(Notification.body)
                    .where(
                        Notification.event == event,
                        Notification.recipient_id == recipient,
                        Notification.channel == channel,
                        Notification.status == "sent",
                    )
                    .order_by(Notification.id)
                )
            )

    def windows(self, ticket_id: int) -> list[tuple[str, int, int, datetime]]:
        with self.app.sessions() as session:
            rows = session.scalars(
                select(Appointment)
                .where(Appointment.ticket_id == ticket_id)
                .order_by(Appointment.id)
            )
            return [(a.status, a.batch, a.option, a.start_at) for a in rows]

    def events(self, ticket_id: int) -> list[str]:
        with self.app.sessions() as session:
            return list(
                session.scalars(
                    select(TicketEvent.kind)
                    .where(TicketEvent.ticket_id == ticket_id)
                    .order_by(TicketEvent.id)
                )
            )


BEA = """
  - {id: t-bea, name: Bea Matos, phone: "+351913000204", timezone: Europe/Lisbon,
     skills: [inverter], regions: [lisbon-west], home: {lat: 38.74, lon: -9.15},
     shifts: [{days: [wed, thu], hours: "08:00-17:00"}]}
"""


def open_desk(
    tmp_path: Path, twilio: FakeTwilio, appointments: str, technicians: str = ""
) -> Iterator[Desk]:
    url = f"sqlite:///{tmp_path / 'visits.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    environ = {
        "FOREWARN_DATABASE_URL": url,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "FOREWARN_LINK_SECRET": "link-secret-0123456789abcdef",
        "FOREWARN_TOKENS": f"technician:t-ana:{ANA_TOKEN},ops:{OPS_TOKEN}",
    }
    text = CONFIG.replace("APPOINTMENTS", appointments)
    text = text.replace("web: {public_url", technicians.strip("\n") + "\nweb: {public_url", 1)
    config = parse_config(text, environ)
    channels: dict[str, Channel] = {
        "sms": DevelopmentChannel("sms", io.StringIO()),
        "email": DevelopmentChannel("email", io.StringIO()),
    }
    clock = SteppingClock(START)
    app = build(config, clock=clock, channels=channels)
    try:
        yield Desk(app, web_app(app, environ), clock, twilio)
    finally:
        app.engine.dispose()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(senders={SENDER}) as fake:
        yield fake


@pytest.fixture
def desk(tmp_path: Path, twilio: FakeTwilio) -> Iterator[Desk]:
    yield from open_desk(tmp_path, twilio, "options: 2")


@pytest.fixture
def one_at_a_time(tmp_path: Path, twilio: FakeTwilio) -> Iterator[Desk]:
    yield from open_desk(tmp_path, twilio, "options: 1")


def wednesday(hour: int) -> datetime:
    return datetime(2026, 11, 4, hour, tzinfo=UTC)


# ------------------------------------------------------------------------- the journey


def test_the_customer_asks_for_other_times_picks_the_second_and_the_technician_sees_it(
    desk: Desk,
) -> None:
    ticket = desk.fault()

    # The first notice says what is true now: who will come, and that times follow.
    (notice,) = desk.sent("fault_notice", "c-silva")
    assert "Technician Ana Costa will repair it: our next message offers visit times" in notice
    assert "will be with you by" not in notice
    (first,) = desk.sent("visit_proposal", "c-silva")
    assert first == (
        "forewarn: Ana Costa can visit your inverter at Silva home: "
        "1) Wed 4 Nov 08:00-10:00; 2) Wed 4 Nov 10:00-12:00 (Europe/Lisbon time). "
        "Reply 1 or 2 to book one, 3 for other times."
    )

    other_times = desk.sms(MARTA, "3")

    assert other_times == (
        "forewarn: Ana Costa can visit your inverter at Silva home: "
        "1) Wed 4 Nov 12:00-14:00; 2) Wed 4 Nov 14:00-16:00 (Europe/Lisbon time). "
        "Reply 1 or 2 to book one, 3 for other times."
    )
    booked = desk.sms(MARTA, "2")

    assert booked == (
        "forewarn: booked: Ana Costa will visit your inverter at Silva home "
        "Wed 4 Nov 14:00-16:00 (Europe/Lisbon time). We will remind you the day before. "
        "To change it, reply RESCHEDULE."
    )
    assert [(s, b, o) for s, b, o, _ in desk.windows(ticket.id)] == [
        ("passed", 1, 1),
        ("passed", 1, 2),
        ("passed", 2, 1),
        ("confirmed", 2, 2),
    ]
    # The technician is told by SMS and email, and sees it on the phone view.
    (told,) = desk.sent("visit_booked", "t-ana")
    assert "visit booked Wed 4 Nov 14:00-16:00 (Europe/Lisbon time) at Silva home" in told
    assert desk.sent("visit_booked", "t-ana", "email")
    with TestClient(desk.web) as phone:
        sign_in(phone, ANA_TOKEN)
        job = visible_text(phone.get("/my").text, f"job-{ticket.id}")
    assert "Visit Wed 4 Nov 14:00-16:00 (Europe/Lisbon time) booked" in job

    # The reminder goes on Tuesday at 18:00 Lisbon time, not before, and once.
    desk.clock.at = datetime(2026, 11, 3, 17, 59, tzinfo=UTC)
    sweep_tickets(desk.app)
    assert desk.sent("visit_reminder", "c-silva") == []
    desk.clock.at = datetime(2026, 11, 3, 18, 0, tzinfo=UTC)
    sweep_tickets(desk.app)
    sweep_tickets(desk.app)
    assert desk.sent("visit_reminder", "c-silva") == [
        "forewarn reminder: Ana Costa visits your inverter at Silva home "
        "Wed 4 Nov 14:00-16:00 (Europe/Lisbon time). To change it, reply RESCHEDULE."
    ]

    # The visit.
    desk.clock.at = wednesday(14) + timedelta(minutes=20)
    assert "on site" in desk.sms(ANA, f"ONSITE {ticket.id}")
    assert desk.sms(ANA, f"DONE {ticket.id} replaced the fan").endswith("Thank you!")
    assert [s for s, *_ in desk.windows(ticket.id)][-1] == "done"
    assert desk.events(ticket.id).count("visit_confirmed") == 1


def test_reply_2_asks_for_the_next_time_when_one_is_offered_and_confirm_books_it(
    one_at_a_time: Desk,
) -> None:
    desk = one_at_a_time
    ticket = desk.fault()
    (first,) = desk.sent("visit_proposal", "c-silva")
    assert first.endswith(
        "Ana Costa can visit your inverter at Silva home on Wed 4 Nov 08:00-10:00 "
        "(Europe/Lisbon time). Reply 1 to confirm, 2 for other times."
    )

    assert "Wed 4 Nov 10:00-12:00" in desk.sms(MARTA, "2")
    assert "Wed 4 Nov 12:00-14:00" in desk.sms(MARTA, "RESCHEDULE tomorrow 9am please")
    assert desk.sms(MARTA, "confirm").startswith(
        "forewarn: booked: Ana Costa will visit your inverter at Silva home Wed 4 Nov 12:00-14:00"
    )
    assert [s for s, *_ in desk.windows(ticket.id)] == ["passed", "passed", "confirmed"]
    # A digit with no proposal waiting is not read as an answer to one any more.
    assert desk.sms(MARTA, "2") != ""
    assert [s for s, *_ in desk.windows(ticket.id)] == ["passed", "passed", "confirmed"]


def test_a_customer_moves_a_booked_visit_by_replying_reschedule(desk: Desk) -> None:
    ticket = desk.fault()
    desk.sms(MARTA, "1")  # Wed 08:00-10:00

    moved = desk.sms(MARTA, "RESCHEDULE")

    assert "1) Wed 4 Nov 10:00-12:00; 2) Wed 4 Nov 12:00-14:00" in moved
    assert [s for s, *_ in desk.windows(ticket.id)] == [
        "cancelled",
        "passed",
        "offered",
        "offered",
    ]


def test_the_signed_email_link_books_the_time_and_says_so(desk: Desk) -> None:
    ticket = desk.fault()
    mail_ticket = desk.fault("inv-401")
    (email,) = desk.sent("visit_proposal", "c-mail", "email")
    assert "text message" not in email  # Rita has no phone: never told to text us
    links = re.findall(r"https://forewarn\.example\.com(/visit/\S+)", email)
    assert len(links) == 2

    with TestClient(desk.web) as browser:
        shown = browser.get(links[1])
        assert shown.status_code == 200
        assert "Book this time" in shown.text
        assert [s for s, *_ in desk.windows(mail_ticket.id)] == ["offered", "offered"]
        booked = browser.post(links[1])
        again = browser.post(links[1])
        forged = browser.get(links[1][:-3] + "abc")
    assert booked.status_code == 200
    text = visible_text(booked.text)
    assert "Booked. Ana Costa will visit your inverter at Mail house" in text
    assert "(Europe/Lisbon time)" in text
    assert "This visit is already booked" in visible_text(again.text)
    assert forged.status_code == 404
    assert [s for s, *_ in desk.windows(mail_ticket.id)] == ["passed", "confirmed"]
    (confirmation,) = desk.sent("visit_confirmed", "c-mail", "email")
    assert "text message" not in confirmation  # Rita cannot text us
    # Marta was offered the same two hours; Rita booked them first: Marta's "2" gets the
    # next times instead of a double booking.
    assert [w for *_, w in desk.windows(ticket.id)] == [wednesday(8), wednesday(10)]
    taken = desk.sms(MARTA, "2")
    assert "1) Wed 4 Nov 12:00-14:00; 2) Wed 4 Nov 14:00-16:00" in taken
    assert "confirmed" not in [s for s, *_ in desk.windows(ticket.id)]


def test_an_expired_link_says_so(desk: Desk) -> None:
    desk.fault("inv-401")
    (email,) = desk.sent("visit_proposal", "c-mail", "email")
    link = re.findall(r"https://forewarn\.example\.com(/visit/\S+)", email)[0]
    desk.clock.at = wednesday(9)  # the window has started: its link is over

    with TestClient(desk.web) as browser:
        page = browser.get(link)

    assert page.status_code == 410
    assert "This link has expired" in visible_text(page.text)


def test_a_hong_kong_customer_gets_traditional_chinese_with_the_zone_named(desk: Desk) -> None:
    desk.fault("inv-301")

    (proposal,) = desk.sent("visit_proposal", "c-wong")

    assert "可選時間" in proposal and "可选时间" not in proposal
    assert "（Asia/Hong_Kong 時間）" in proposal  # Wong reads it in Hong Kong time
    assert "16:00-18:00" in proposal  # 08:00 Lisbon is 16:00 in Hong Kong


def test_no_window_before_the_sla_goes_to_the_dispatcher_with_the_reason(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    # Windows start at least five days out; the SLA is due in three.
    for desk in open_desk(tmp_path, twilio, "options: 2, notice: 5d"):
        ticket = desk.fault()

        with desk.app.sessions() as session:
            row = session.get(Ticket, ticket.id)
            assert row is not None
            status, why = row.status, row.dispatch.get("queued_because")
        assert status == "escalated"
        assert why == "No visit window for Ana Costa: the SLA is due before any visit could start."
        assert desk.sent("visit_proposal", "c-silva") == []
        (notice,) = desk.sent("fault_notice", "c-silva")
        assert "arranging a technician" in notice
        with TestClient(desk.web) as client:
            queue = client.get(
                "/api/dispatch/queue", headers={"Authorization": f"Bearer {OPS_TOKEN}"}
            ).json()
        assert [(q["id"], q["why"]) for q in queue] == [(ticket.id, why)]


def test_a_new_technician_keeps_the_booked_window_and_the_customer_is_told(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    for desk in open_desk(tmp_path, twilio, "options: 2", technicians=BEA):
        ticket = desk.fault()
        desk.sms(MARTA, "2")  # Wed 10:00-12:00 with Ana
        with TestClient(desk.web) as console:
            sign_in(console, OPS_TOKEN)
            moved = submit(
                console,
                f"/tickets/{ticket.id}",
                f"/tickets/{ticket.id}/assign",
                {"technician": "t-bea"},
            )
        assert moved.status_code == 303, moved.text

        (told,) = desk.sent("visit_confirmed", "c-silva")
        assert told == (
            "forewarn: Bea Matos will come instead of Ana Costa; your visit stays "
            "Wed 4 Nov 10:00-12:00 (Europe/Lisbon time). We will remind you the day before. "
            "To change it, reply RESCHEDULE."
        )
        assert desk.sent("visit_booked", "t-bea")
        assert "visit_technician_changed" in desk.events(ticket.id)
        assert [s for s, *_ in desk.windows(ticket.id)][-1] == "confirmed"


def test_the_reminder_waits_for_the_end_of_the_customers_quiet_hours(desk: Desk) -> None:
    desk.fault()
    desk.sms(MARTA, "2")  # Wed 10:00-12:00
    with desk.app.sessions.begin() as session:
        marta = session.get(Customer, "c-silva")
        assert marta is not None
        marta.quiet_hours = "17:00-08:00"

    desk.clock.at = datetime(2026, 11, 3, 18, 0, tzinfo=UTC)
    sweep_tickets(desk.app)

    assert desk.sent("visit_reminder", "c-silva") == []
    with desk.app.sessions() as session:
        (held,) = session.scalars(
            select(Notification).where(Notification.event == "visit_reminder")
        ).all()
    assert held.next_attempt_at == wednesday(8)
    desk.clock.at = wednesday(8)
    assert desk.sent("visit_reminder", "c-silva") != []


# ------------------------------------------------------------------ parts: the return visit


def test_done_parts_keeps_the_ticket_open_and_plans_the_return_visit(desk: Desk) -> None:
    ticket = desk.fault()
    desk.sms(MARTA, "1")
    desk.clock.at = wednesday(8) + timedelta(minutes=30)
    desk.sms(ANA, f"ACK {ticket.id}")
    desk.sms(ANA, f"ONSITE {ticket.id}")

    reply = desk.sms(ANA, f"DONE {ticket.id} PARTS cooling fan worn, ordered")

    assert "waits for parts" in reply
    with desk.app.sessions() as session:
        row = session.get(Ticket, ticket.id)
        assert row is not None and row.status == "awaiting_parts"
        assert row.open_fingerprint is not None  # still the fault's ticket
    (parts,) = desk.sent("parts_ordered", "c-silva")
    assert "needs a part" in parts and "return visit" in parts
    assert desk.sent("ticket_resolved", "c-silva") == []
    assert desk.sent("satisfaction_survey", "c-silva") == []

    desk.clock.at = datetime(2026, 11, 5, 7, 0, tzinfo=UTC)
    assert "return visit" in desk.sms(ANA, f"PARTSIN {ticket.id}")

    (_, second_order) = desk.sent("work_order", "t-ana", "email")
    assert 'closed as parts needed: "cooling fan worn, ordered"' in second_order
    (_, again) = desk.sent("visit_proposal", "c-silva")
    assert again.startswith(
        "forewarn: the parts for your inverter at Silva home are in. Ana Costa can visit: "
        "1) Thu 5 Nov 08:00-10:00"
    )
    assert desk.sms(MARTA, "1").startswith("forewarn: booked:")
    with TestClient(desk.web) as phone:
        sign_in(phone, ANA_TOKEN)
        job = visible_text(phone.get("/my").text, f"job-{ticket.id}")
    assert "Thu 5 Nov 08:00-10:00 (Europe/Lisbon time) booked" in job
    assert f"Last visit job #{ticket.id}: parts needed — cooling fan worn, ordered" in job


def test_nofault_sends_no_working_again(desk: Desk) -> None:
    ticket = desk.fault()
    desk.sms(ANA, f"ACK {ticket.id}")

    desk.sms(ANA, f"NOFAULT {ticket.id} all readings normal on site")

    (closing,) = desk.sent("ticket_resolved", "c-silva")
    assert "found nothing wrong" in closing
    assert "working" not in closing
