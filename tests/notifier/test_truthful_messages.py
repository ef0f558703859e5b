"""Messages that are always true: each defect found by reading them as their reader would,
with a test through the renderer, the sender or the ticketing entry points.

(The early order lives with the order feed: tests/feeds/test_folder.py; visit windows,
the PARTS return visit and NOFAULT in tests/ticketing/test_appointments.py.)
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config import parse_config
from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.development import DevelopmentChannel
from forewarn.notifier.examples import example_context
from forewarn.notifier.locales import candidates
from forewarn.notifier.outbox import customer_recipient, notify
from forewarn.notifier.render import Renderer
from forewarn.service import build, sweep_tickets
from forewarn.store.models import Customer, Notification
from tests.fakes.providers import FakeTwilio
from tests.notifier.conftest import SteppingClock, add_customer
from tests.notifier.test_contact_policy import add_ticket, fault_notice, rows, sender
from tests.ticketing.test_tickets import FLEET, Fleet, fleet, migrated_fleet, overheat
from tests.ticketing.test_workflow import sms

__all__ = ["fleet"]

MARTA = "+351912000101"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
renderer = Renderer()


# ---------------------------------------------------------------------------- languages


@pytest.mark.parametrize(
    ("tag", "chosen"),
    [
        ("zh-TW", "zh-Hant"),
        ("zh-HK", "zh-Hant"),
        ("zh_hk", "zh-Hant"),
        ("zh-MO", "zh-Hant"),
        ("zh-Hant-CN", "zh-Hant"),
        ("zh-CN", "zh-Hans"),
        ("zh-SG", "zh-Hans"),
        ("zh", "zh-Hans"),
        ("ZH-cn", "zh-Hans"),
        ("pt-BR", "pt"),
        ("th-TH", "th"),
        ("de-AT", "en"),
    ],
)
def test_a_locale_tag_picks_the_language_its_reader_reads(tag: str, chosen: str) -> None:
    assert renderer.resolve_locale("fault_notice", tag) == chosen


def test_taiwan_reads_traditional_and_singapore_simplified() -> None:
    taiwan = renderer.render("fault_notice", "sms", "zh-TW", example_context()).body
    singapore = renderer.render("fault_notice", "sms", "zh-SG", example_context()).body

    assert "偵測到" in taiwan and "逆變器" in taiwan
    assert "检测到" in singapore and "逆变器" in singapore
    assert candidates("zh-HK", "en") == ["zh-HK", "zh-Hant", "en"]


# -------------------------------------------------------------------------------- dates


def test_every_customer_time_is_in_their_zone_with_the_zone_named() -> None:
    context = example_context("Asia/Bangkok")
    for event in ("visit_proposal", "visit_confirmed", "visit_reminder", "technician_assigned"):
        body = renderer.render(event, "sms", "en", context).body
        # The 09:00 UTC window is 16:00 in Bangkok.
        assert "16:00" in body and "(Asia/Bangkok time)" in body, (event, body)
    thai = renderer.render("visit_reminder", "sms", "th", context).body
    assert "16:00-18:00 น. (เวลา Asia/Bangkok)" in thai


def test_the_first_notice_never_gives_the_sla_deadline_as_a_visit_time() -> None:
    for locale in ("en", "pt", "zh-Hans", "zh-Hant", "th"):
        body = renderer.render("fault_notice", "sms", locale, example_context()).body
        assert "09:00" not in body and "2026" not in body, (locale, body)


# ---------------------------------------------------------------------- order ids, digest


def test_order_ids_are_shown_whole_so_two_orders_never_look_the_same() -> None:
    context = example_context()
    context["orders"] = [
        {**context["orders"][0], "id": "e481f51cbdc54678b7cc49136f2d6af7"},
        {**context["orders"][1], "id": "e481f51c0000aaaa9999bbbb77776666"},
    ]
    for locale in ("en", "pt", "zh-Hans", "zh-Hant", "th"):
        for channel in ("sms", "email"):
            rendered = renderer.render("delay_notice", channel, locale, context)
            text = rendered.body + (rendered.subject or "")
            assert "e481f51cbdc54678b7cc49136f2d6af7" in text, (locale, channel)
            assert "e481f51c0000aaaa9999bbbb77776666" in text, (locale, channel)


def test_a_digest_says_each_issue_once(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
) -> None:
    clock = SteppingClock(NOW)
    add_customer(sqlite_store, phone=MARTA, channels=("sms",))
    fault_notice(sqlite_store, clock, 1042)
    # The same fault again (the ticket reopened) while the first notice still waits.
    add_ticket(sqlite_store, 1042)
    with sqlite_store.begin() as session:
        marta = session.get(Customer, "cust-marta")
        assert marta is not None
        context = example_context()
        notify(
            session,
            key="ticket-event:1042-reopened",
            event="fault_notice",
            recipient=customer_recipient(marta),
            context=context,
            now=clock.now(),
            ticket_id=1042,
        )
    fault_notice(sqlite_store, clock, 1043, device=("bat-102", "battery"))
    send = sender(sqlite_store, provider_channels, clock)

    clock.advance(timedelta(minutes=3))
    send.drain()

    [message] = fake_twilio.messages
    assert "found 2 issues" in message.body
    assert message.body.count("inverter at Silva home") == 1
    first, *merged = rows(sqlite_store)
    assert [i["ticket"]["id"] for i in first.context["issues"]] == [1042, 1043]
    assert [m.status for m in merged] == ["merged", "merged"]


# --------------------------------------------------------------------------- email-only


def test_an_email_only_customer_is_never_told_to_reply_to_a_text() -> None:
    context = example_context()
    context["recipient"] = {**context["recipient"], "by_sms": False}
    for event in renderer.events():
        for locale in renderer.locales(event):
            if not (renderer.root / event / locale / "email.txt").exists():
                continue
            rendered = renderer.render(event, "email", locale, context)
            for words in ("text message", "SMS", "短信", "簡訊", "mensagem de texto"):
                if event in ("work_order", "visit_booked", "job_cancelled", "dispatcher_alert"):
                    continue  # staff, who work by SMS
                if event == "satisfaction_survey":
                    continue  # never sent to an email-only customer (see below)
                assert words not in rendered.body, (event, locale, words)


def test_an_email_only_customer_gets_no_survey_they_could_not_answer(fleet: Fleet) -> None:
    app = fleet.start()
    with app.sessions.begin() as session:
        marta = session.get(Customer, "c-silva")
        assert marta is not None
        marta.phone = None
    overheat(app, "inv-101", fleet.clock)
    with app.sessions.begin() as session:
        ticket_id = session.scalars(select(Notification.ticket_id)).first()
    sms(app, "t-ana", f"ACK {ticket_id}")
    sms(app, "t-ana", f"DONE {ticket_id} replaced the fan")
    with app.sessions() as session:
        told = [
            n.event
            for n in session.scalars(
                select(Notification).where(Notification.recipient_id == "c-silva")
            )
        ]
    assert "ticket_resolved" in told
    assert "satisfaction_survey" not in told


# ------------------------------------------------------------------------ work order words


def test_the_technician_reads_the_evidence_in_words_and_units() -> None:
    context = example_context()
    context["alert"] = {
        **context["alert"],
        "evidence": {
            "metric": "temperature",
            "value": 81.5,
            "ts": "2026-11-25T08:59:00+00:00",
            "levels": {"above": 75.0, "below": None, "clear": 70.0},
            "for_seconds": 600.0,
        },
    }
    for locale in ("en", "pt", "zh-Hans", "zh-Hant", "th"):
        body = renderer.render("work_order", "email", locale, context).body
        html = renderer.render("work_order", "email", locale, context).html or ""
        for shown in (body, html):
            assert "{'" not in shown and "None" not in shown and "levels=" not in shown
            assert "for_seconds" not in shown
            assert "75 °C" in shown and "70 °C" in shown, (locale, shown)
    english = renderer.render("work_order", "email", "en", context).body
    assert "fires above 75 °C, clears at 70 °C" in english
    assert "held for 10 min" in english
    assert "reading taken Wed 25 Nov 08:59 (Europe/Lisbon time)" in english


# --------------------------------------------------------------------------- supervisor


SUPERVISED = """
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter], regions: [lisbon-west], home: {lat: 38.710, lon: -9.300}}
ticketing:
  escalation:
    ack_within: {major: 30m}
    handoffs: 1
    supervisor: {name: Sara Supervisor, phone: "+351913000999"}
"""


def test_the_supervisor_sms_does_not_contradict_itself(database_url: str) -> None:
    for supervised in migrated_fleet(database_url):
        channels: dict[str, Channel] = {
            "sms": DevelopmentChannel("sms", io.StringIO()),
            "email": DevelopmentChannel("email", io.StringIO()),
        }
        config = parse_config(FLEET + SUPERVISED, {"FOREWARN_DATABASE_URL": supervised.url})
        app = build(config, clock=supervised.clock, channels=channels)
        supervised.apps.append(app)
        overheat(app, "inv-101", supervised.clock)
        supervised.clock.advance(minutes=31)
        sweep_tickets(app)  # nobody else is eligible: straight to the supervisor
        app.sender.drain()
        with app.sessions() as session:
            (body,) = session.scalars(
                select(Notification.body).where(
                    Notification.event == "dispatcher_alert", Notification.channel == "sms"
                )
            ).all()
        assert body is not None
        assert "has no technician" not in body
        assert "it is assigned to Ana Costa" in body
        assert "Ana Costa did not acknowledge it within 30 min" in body
        assert "t-ana" not in body
