"""A watched folder of order exports, through the folder feed, on SQLite and PostgreSQL:
quarantine, idempotency, delay cases, merged customer notices, follow-ups."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config import Config, parse_config
from forewarn.config.schema import Settings
from forewarn.feeds.folder import FolderFeed
from forewarn.feeds.intake import Intake
from forewarn.feeds.watch import OrderWatch
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Customer, Notification, Quarantine, Ticket, TicketEvent
from forewarn.store.orders import DelayCase, Order
from forewarn.store.schema import upgrade
from forewarn.ticketing.delays import DelayCases
from forewarn.web.app import create_app
from forewarn.web.ticket_actions import router

NOW = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
HEADER = (
    "order_id,customer_id,phone,order_status,order_purchase_timestamp,order_approved_at,"
    "order_delivered_carrier_date,order_delivered_customer_date,order_estimated_delivery_date\n"
)
CONFIG = """
customers:
  - {{id: c-ana, name: Ana, phone: "+5511990000001", locale: pt-BR}}
feeds:
  - name: shop
    kind: folder
    path: {folder}
    pattern: "*.csv"
    mapping:
      order_id: order_id
      customer_id: customer_id
      customer_phone: phone
      status: order_status
      status_values: {{delivered: delivered, canceled: canceled}}
      promised: order_estimated_delivery_date
      milestones:
        placed: order_purchase_timestamp
        approved: order_approved_at
        handed_to_carrier: order_delivered_carrier_date
        delivered: order_delivered_customer_date
      timestamp_formats: ["%Y-%m-%d %H:%M:%S"]
      timezone: America/Sao_Paulo
      phone_region: BR
delays:
  merge_window: 10m
  timezone: America/Sao_Paulo
  rules:
    # Told to the customer here (an ops case by default) to watch the merge window.
    - {{id: not-handed-over, kind: milestone_overdue, milestone: handed_to_carrier,
       after: approved, within: 48h, notify_customer: true}}
    - {{id: promise-passed, kind: promise_passed}}
"""


OPS = "ops-token-0123456789abcdef"


@dataclass(frozen=True)
class FixedClock:
    at: datetime

    def now(self) -> datetime:
        return self.at


@dataclass
class Shop:
    config: Config
    settings: Settings
    sessions: sessionmaker[Session]
    folder: Path
    feed: FolderFeed
    watch: OrderWatch

    def drop(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text, encoding="utf-8")
        return path

    def count(self, model: type[object]) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def shop(database_url: str, tmp_path: Path) -> Iterator[Shop]:
    folder = tmp_path / "inbox"
    folder.mkdir()
    config = parse_config(CONFIG.format(folder=folder), {})
    settings = config.settings
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        session.add(
            Customer(
                id="c-ana",
                name="Ana",
                phone="+5511990000001",
                locale="pt-BR",
                timezone="America/Sao_Paulo",
                channels=["sms"],
                opted_out=[],
            )
        )
    watch = OrderWatch(settings.delays, DelayCases(settings.delays))
    intake = Intake(settings, watch)
    feed = FolderFeed(settings.feeds[0], intake, sessions, settle=0)
    yield Shop(config, settings, sessions, folder, feed, watch)
    engine.dispose()


def row(
    order: str,
    customer: str = "c-ana",
    *,
    phone: str = "",
    status: str = "approved",
    approved: str = "2026-11-05 10:00:00",
    carrier: str = "",
    delivered: str = "",
    promised: str = "2026-11-20 00:00:00",
) -> str:
    return (
        f"{order},{customer},{phone},{status},2026-11-05 09:00:00,{approved},{carrier},"
        f"{delivered},{promised}\n"
    )


def test_bad_rows_are_quarantined_with_line_and_reason_while_good_rows_go_on(shop: Shop) -> None:
    shop.drop(
        "orders.csv",
        HEADER + row("o-1") + row("o-2", approved="yesterday") + "o-3,too,few\n" + row("o-4"),
    )
    count = shop.feed.poll(NOW)
    assert (count.rows, count.accepted, count.quarantined) == (4, 2, 2)
    with shop.sessions() as session:
        problems = session.execute(
            select(Quarantine.source, Quarantine.origin, Quarantine.reason).order_by(Quarantine.id)
        ).all()
    assert [(s, o.rsplit("/", 1)[-1], r) for s, o, r in problems] == [
        ("feed:shop", "orders.csv:3", "order_approved_at: 'yesterday' is not a timestamp"),
        ("feed:shop", "orders.csv:4", "3 fields where the header has 9"),
    ]
    assert shop.count(Order) == 2


def test_the_same_file_again_changes_nothing_and_a_changed_file_is_read_again(shop: Shop) -> None:
    path = shop.drop("orders.csv", HEADER + row("o-1"))
    assert shop.feed.poll(NOW).accepted == 1
    assert shop.feed.poll(NOW + timedelta(minutes=5)).rows == 0
    path.write_text(HEADER + row("o-1") + row("o-2"), encoding="utf-8")
    again = shop.feed.poll(NOW + timedelta(minutes=10))
    assert (again.rows, again.accepted, again.unchanged) == (2, 1, 1)
    assert shop.count(Order) == 2


def test_timestamps_are_read_in_the_feeds_zone_and_a_promised_date_lasts_all_day(
    shop: Shop,
) -> None:
    shop.drop("orders.csv", HEADER + row("o-1"))
    shop.feed.poll(NOW)
    with shop.sessions() as session:
        order = session.get(Order, "o-1")
        assert order is not None
        assert order.approved_at == datetime(2026, 11, 5, 13, 0, tzinfo=UTC)  # UTC-3
        assert order.promised_at == datetime(2026, 11, 21, 2, 59, 59, tzinfo=UTC)


def test_two_late_orders_of_one_customer_get_one_case_each_and_one_message(shop: Shop) -> None:
    # Approved on the 5th, not handed to the carrier 48 h later: both are late on the 7th.
    shop.drop("orders.csv", HEADER + row("o-1") + row("o-2"))
    shop.feed.poll(NOW)
    assert shop.count(Ticket) == 2
    assert shop.count(Notification) == 0  # the merge window is still open
    shop.watch.sweep(shop.sessions, NOW + timedelta(minutes=10))
    with shop.sessions() as session:
        notes = session.scalars(select(Notification)).all()
        assert len(notes) == 1
        assert notes[0].event == "delay_notice"
        assert notes[0].locale == "pt-BR"
        assert [o["id"] for o in notes[0].context["orders"]] == ["o-1", "o-2"]
        cases = session.scalars(select(DelayCase)).all()
        assert {c.notice_status for c in cases} == {"queued"}
    # Re-reading and sweeping again opens nothing new and sends nothing new.
    shop.drop("orders-again.csv", HEADER + row("o-1") + row("o-2"))
    shop.feed.poll(NOW + timedelta(hours=1))
    shop.watch.sweep(shop.sessions, NOW + timedelta(hours=2))
    assert shop.count(Ticket) == 2
    assert shop.count(Notification) == 1


def test_delivery_closes_the_case_and_queues_the_apology_with_a_survey(shop: Shop) -> None:
    shop.drop("a.csv", HEADER + row("o-1"))
    shop.feed.poll(NOW)
    shop.watch.sweep(shop.sessions, NOW + timedelta(minutes=10))
    shop.drop(
        "b.csv",
        HEADER
        + row(
            "o-1",
            status="delivered",
            carrier="2026-11-10 08:00:00",
            delivered="2026-11-22 10:00:00",
        ),
    )
    later = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
    shop.feed.poll(later)
    shop.watch.sweep(shop.sessions, later + timedelta(minutes=10))
    with shop.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert (ticket.status, ticket.open_fingerprint) == ("resolved", None)
        events = [n.event for n in session.scalars(select(Notification).order_by(Notification.id))]
        assert events == ["delay_notice", "delivered_after_delay"]
        follow_up = session.scalars(select(Notification).order_by(Notification.id.desc())).first()
        assert follow_up is not None
        assert follow_up.context["orders"][0]["late"] is True


def test_an_order_delivered_inside_the_merge_window_is_never_announced(shop: Shop) -> None:
    shop.drop("a.csv", HEADER + row("o-1"))
    shop.feed.poll(NOW)
    shop.drop(
        "b.csv",
        HEADER
        + row(
            "o-1",
            status="delivered",
            carrier="2026-11-10 08:00:00",
            delivered="2026-11-10 11:59:00",
        ),
    )
    shop.feed.poll(NOW + timedelta(minutes=5))
    shop.watch.sweep(shop.sessions, NOW + timedelta(hours=1))
    assert shop.count(Notification) == 0
    with shop.sessions() as session:
        case = session.scalars(select(DelayCase)).one()
        assert (case.notice_status, case.resolution) == ("not_needed", "delivered")


def test_a_customer_known_only_from_the_feed_is_created_and_told(shop: Shop) -> None:
    shop.drop("a.csv", HEADER + row("o-9", "c-new", phone="+5521990000009"))
    shop.feed.poll(NOW)
    shop.watch.sweep(shop.sessions, NOW + timedelta(minutes=10))
    with shop.sessions() as session:
        customer = session.get(Customer, "c-new")
        assert customer is not None
        assert customer.phone == "+5521990000009"
        note = session.scalars(select(Notification)).one()
        assert note.recipient_id == "c-new"


def test_a_local_number_in_the_feed_is_stored_as_e164_in_the_feeds_region(shop: Shop) -> None:
    shop.drop("a.csv", HEADER + row("o-9", "c-new", phone="(21) 99000-0009"))

    shop.feed.poll(NOW)

    with shop.sessions() as session:
        customer = session.get(Customer, "c-new")
        assert customer is not None
        assert customer.phone == "+5521990000009"


def test_an_invalid_number_is_quarantined_with_its_reason_and_the_order_is_kept(
    shop: Shop,
) -> None:
    shop.drop("a.csv", HEADER + row("o-9", "c-new", phone="99000"))

    shop.feed.poll(NOW)

    with shop.sessions() as session:
        customer = session.get(Customer, "c-new")
        assert customer is not None and customer.phone is None
        assert session.get(Order, "o-9") is not None
        (kept,) = session.scalars(select(Quarantine)).all()
        assert kept.origin.endswith("a.csv:2")
        assert kept.reason == (
            "phone: not a valid phone number in BR; the order is kept, the number is not used"
        )


def test_a_case_with_nobody_to_tell_still_opens_and_says_so(shop: Shop) -> None:
    shop.drop("a.csv", HEADER + row("o-7", "c-silent"))
    shop.feed.poll(NOW)
    shop.watch.sweep(shop.sessions, NOW + timedelta(minutes=10))
    assert shop.count(Notification) == 0
    with shop.sessions() as session:
        case = session.scalars(select(DelayCase)).one()
        assert case.notice_status == "no_contact"
        kinds = session.scalars(select(TicketEvent.kind).order_by(TicketEvent.id)).all()
        assert kinds == ["opened", "customer_unreachable"]


def test_a_case_still_undelivered_long_after_the_promise_goes_to_a_person(shop: Shop) -> None:
    shop.drop("a.csv", HEADER + row("o-1", carrier="2026-11-06 10:00:00"))
    shop.feed.poll(NOW)
    shop.watch.sweep(shop.sessions, datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    shop.watch.sweep(shop.sessions, datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    with shop.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.status == "escalated"
        kinds = session.scalars(select(TicketEvent.kind)).all()
        assert "queued_for_dispatcher" in kinds


def escalate_a_case(shop: Shop) -> int:
    shop.drop("a.csv", HEADER + row("o-1", carrier="2026-11-06 10:00:00"))
    shop.feed.poll(NOW)
    shop.watch.sweep(shop.sessions, datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    shop.watch.sweep(shop.sessions, datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    with shop.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.status == "escalated"
        return ticket.id


def ops_command(shop: Shop, ticket_id: int, command: str, at: datetime) -> dict[str, object]:
    web = create_app(
        shop.config, shop.sessions, FixedClock(at), tokens={OPS: "ops"}, extra_routers=[router]
    )
    with TestClient(web) as http:
        answer = http.post(
            f"/api/tickets/{ticket_id}/commands",
            json={"command": command, "note": "called the carrier"},
            headers={"Authorization": f"Bearer {OPS}"},
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_an_escalated_case_is_in_the_dispatcher_queue_as_needing_a_person(shop: Shop) -> None:
    escalate_a_case(shop)
    web = create_app(
        shop.config, shop.sessions, FixedClock(NOW), tokens={OPS: "ops"}, extra_routers=[router]
    )
    with TestClient(web) as http:
        queue = http.get("/api/dispatch/queue", headers={"Authorization": f"Bearer {OPS}"})

    (queued,) = queue.json()
    assert (queued["status"], queued["why"]) == ("escalated", "needs a person")


def test_a_person_resolves_an_escalated_case_and_no_new_case_opens(shop: Shop) -> None:
    ticket_id = escalate_a_case(shop)
    settled_at = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)

    answer = ops_command(shop, ticket_id, "done", settled_at)

    assert (answer["changed"], answer["status"]) == (True, "resolved")
    shop.watch.sweep(shop.sessions, datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    with shop.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()  # still the only case of o-1
        assert (ticket.status, ticket.open_fingerprint) == ("resolved", None)
        assert ticket.resolution_note == "called the carrier"
        case = session.scalars(select(DelayCase)).one()
        assert (case.resolution, case.resolved_at) == ("by_person", settled_at)
        moves = session.execute(
            select(TicketEvent.kind, TicketEvent.from_status, TicketEvent.to_status)
            .where(TicketEvent.from_status != TicketEvent.to_status)
            .order_by(TicketEvent.id)
        ).all()
        assert [tuple(m) for m in moves] == [
            ("queued_for_dispatcher", "open", "escalated"),
            ("resolve", "escalated", "resolved"),
        ]


def test_a_person_cancels_an_escalated_case(shop: Shop) -> None:
    ticket_id = escalate_a_case(shop)

    answer = ops_command(shop, ticket_id, "cancel", datetime(2026, 11, 24, 13, 0, tzinfo=UTC))

    assert (answer["changed"], answer["status"]) == (True, "cancelled")
    with shop.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert (ticket.status, ticket.closure_code) == ("cancelled", "cancelled")
        assert session.scalars(select(DelayCase.resolution)).one() == "by_person"
        events = session.scalars(select(Notification.event)).all()
        assert events == ["delay_notice"]  # no repair all-clear or survey for a delay case
