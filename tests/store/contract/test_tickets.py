"""The ticket-side stores of :mod:`forewarn.ports` (tickets, delay cases, outbox, contacts):
one suite on memory, SQLite and PostgreSQL; no connection may be left checked out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forewarn.config import parse_config
from forewarn.feeds.mapping import EventRecord
from forewarn.monitors.orders import Finding, OrderFacts, OrderVerdict
from forewarn.monitors.transit import TransitTimes
from forewarn.ports import (
    DelayCaseRecord,
    NotificationRecord,
    OrderState,
    Person,
    TicketEventRecord,
    TicketExists,
    TicketRecord,
    TicketStores,
)
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.memory_tickets import MemoryTicketStores
from forewarn.store.reference import sync_reference_data
from forewarn.store.schema import upgrade
from forewarn.store.tickets import SqlTicketStorage
from forewarn.ticketing.delays import DelayCases, settled_by_person
from tests.services import scratch_postgres

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PEOPLE = """
customers:
  - {id: c1, name: Marta, phone: "+351912000101", email: m@example.com, locale: pt,
     timezone: Europe/Lisbon, quiet_hours: "22:00-07:00"}
"""

Unit = Callable[[], AbstractContextManager[TicketStores]]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def unit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Unit]:
    """Opens a unit of work on a fresh store that knows customer ``c1``."""
    settings = parse_config(PEOPLE, {}).settings
    if request.param == "memory":
        (c,) = settings.customers
        marta = Person(
            c.id,
            c.name,
            c.locale,
            c.timezone,
            c.phone,
            c.email,
            tuple(c.channels),
            (),
            "22:00-07:00",
        )
        yield MemoryTicketStores([marta]).begin
        return
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    with scratch_postgres() if request.param == "postgresql" else _just(url) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            sessions = make_sessionmaker(engine)
            with sessions.begin() as session:
                sync_reference_data(session, settings, NOW)
            yield SqlTicketStorage(sessions).begin
            assert engine.pool.checkedout() == 0, "a connection was left checked out"  # type: ignore[attr-defined]
        finally:
            engine.dispose()


class _just(AbstractContextManager[str]):
    def __init__(self, value: str) -> None:
        self.value = value

    def __enter__(self) -> str:
        return self.value

    def __exit__(self, *_: object) -> None:
        return None


def delay_ticket(order: str, **extra: object) -> TicketRecord:
    fingerprint = f"delay:{order}"
    values: dict[str, object] = {
        "kind": "delay",
        "fingerprint": fingerprint,
        "open_fingerprint": fingerprint,
        "status": "open",
        "priority": "P3",
        "title": f"Order {order} is late",
        "customer_id": "c1",
        "opened_at": NOW,
        "updated_at": NOW,
        "sla_due_at": NOW + timedelta(days=1),
        **extra,
    }
    return TicketRecord(**values)  # type: ignore[arg-type]


def test_it_keeps_one_ticket_per_open_fingerprint(unit: Unit) -> None:
    with unit() as stores:
        first = stores.tickets.insert(delay_ticket("o-1"))
        with pytest.raises(TicketExists):
            stores.tickets.insert(delay_ticket("o-1", title="a racing worker"))
        assert stores.tickets.holding("delay:o-1") == first

    with unit() as stores:
        assert stores.tickets.get(first.id) == first
        assert stores.tickets.holding("delay:o-2") is None


def test_a_ticket_that_leaves_its_episode_frees_the_fingerprint(unit: Unit) -> None:
    with unit() as stores:
        first = stores.tickets.insert(delay_ticket("o-1"))
        stores.tickets.update(
            replace(first, status="resolved", open_fingerprint=None, passed_over=("t-1",))
        )

    with unit() as stores:
        assert stores.tickets.holding("delay:o-1") is None
        again = stores.tickets.insert(delay_ticket("o-1"))
        assert again.id != first.id
        stored = stores.tickets.get(first.id)
        assert stored is not None
        assert (stored.status, stored.passed_over) == ("resolved", ("t-1",))


def test_it_records_events_in_order(unit: Unit) -> None:
    with unit() as stores:
        ticket = stores.tickets.insert(delay_ticket("o-1"))
        opened = stores.tickets.add_event(
            TicketEventRecord(ticket.id, NOW, "opened", "delays", None, "open", {"order": "o-1"})
        )
        stores.tickets.add_event(
            TicketEventRecord(
                ticket.id, NOW, "queued_for_dispatcher", "delays", "open", "escalated"
            )
        )

    with unit() as stores:
        events = stores.tickets.events(ticket.id)
        assert [e.kind for e in events] == ["opened", "queued_for_dispatcher"]
        assert events[0] == opened
        assert events[0].detail == {"order": "o-1"}


def test_it_lists_what_waits_for_a_person_most_urgent_first(unit: Unit) -> None:
    with unit() as stores:
        minor = stores.tickets.insert(delay_ticket("o-1", status="escalated", technician_id=None))
        urgent = stores.tickets.insert(delay_ticket("o-2", priority="P1"))
        stores.tickets.insert(delay_ticket("o-3", status="resolved", open_fingerprint=None))

    with unit() as stores:
        assert [t.id for t in stores.tickets.waiting_for_person()] == [urgent.id, minor.id]


def test_it_counts_closure_codes_per_rule_since_a_time(unit: Unit) -> None:
    later = NOW + timedelta(days=2)
    with unit() as stores:
        for order, code, at in [("o-1", "fixed", NOW), ("o-2", "no_fault_found", later)]:
            stores.tickets.insert(
                delay_ticket(
                    order,
                    rule_id="hot",
                    status="resolved",
                    open_fingerprint=None,
                    closure_code=code,
                    resolved_at=at,
                )
            )
        stores.tickets.insert(delay_ticket("o-3", rule_id="hot"))  # still open

    with unit() as stores:
        assert stores.tickets.closures() == {"hot": {"fixed": 1, "no_fault_found": 1}}
        assert stores.tickets.closures(NOW + timedelta(days=1)) == {"hot": {"no_fault_found": 1}}


def test_it_keeps_delay_cases_and_their_waiting_notices(unit: Unit) -> None:
    with unit() as stores:
        one = stores.tickets.insert(delay_ticket("o-1"))
        two = stores.tickets.insert(delay_ticket("o-2"))
        first = stores.cases.insert(
            DelayCaseRecord(
                ticket_id=one.id,
                order_id="o-1",
                customer_id="c1",
                first_rule="late",
                opened_at=NOW,
                reasons=({"rule": "late", "summary": "not shipped"},),
                pending_notice="delay_notice",
                notice_due_at=NOW + timedelta(minutes=10),
            )
        )
        second = stores.cases.insert(
            DelayCaseRecord(
                ticket_id=two.id,
                order_id="o-2",
                customer_id="c1",
                first_rule="late",
                opened_at=NOW,
                pending_notice="delay_notice",
                notice_due_at=NOW + timedelta(minutes=20),
            )
        )

    with unit() as stores:
        assert stores.cases.of_ticket(one.id) == first
        assert stores.cases.notice_due("c1", "delay_notice", second.id) == first.notice_due_at
        assert stores.cases.notice_due("c1", "delay_notice", first.id) == second.notice_due_at
        due = stores.cases.notices_due(NOW + timedelta(minutes=10))
        assert [c.id for c in due] == [first.id]
        later = stores.cases.notices_waiting("c1", "delay_notice", NOW + timedelta(minutes=10))
        assert [c.id for c in later] == [second.id]
        stores.cases.update(replace(first, resolution="by_person", pending_notice=None))

    with unit() as stores:
        assert stores.cases.resolved_as("o-1", "by_person")
        assert not stores.cases.resolved_as("o-2", "by_person")
        assert [c.id for c in stores.cases.notices_due(NOW + timedelta(hours=1))] == [second.id]
        assert stores.cases.next_notice_due() == second.notice_due_at
        stores.cases.update(replace(second, pending_notice=None, notice_due_at=None))

    with unit() as stores:
        assert stores.cases.next_notice_due() is None


def test_the_outbox_queues_each_cause_once(unit: Unit) -> None:
    with unit() as stores:
        ticket = stores.tickets.insert(delay_ticket("o-1"))
        note = NotificationRecord(
            dedupe_key="delay_notice:case-1:customer:c1:sms",
            event="delay_notice",
            recipient_role="customer",
            recipient_id="c1",
            channel="sms",
            address="+351912000101",
            locale="pt",
            context={"orders": [{"id": "o-1"}]},
            created_at=NOW,
            next_attempt_at=NOW,
            ticket_id=ticket.id,
        )
        queued = stores.outbox.enqueue(note)
        assert queued is not None and queued.id > 0
        assert stores.outbox.enqueue(replace(note, context={"again": True})) is None

    with unit() as stores:
        assert stores.outbox.queued(ticket.id) == [queued]


def test_it_reads_a_customer_as_ticketing_needs_them(unit: Unit) -> None:
    with unit() as stores:
        marta = stores.contacts.customer("c1")
        assert stores.contacts.customer("nobody") is None

    assert marta is not None
    assert (marta.phone, marta.locale, marta.timezone) == ("+351912000101", "pt", "Europe/Lisbon")
    assert marta.quiet_hours == "22:00-07:00"


@dataclass(frozen=True)
class LateOrder:
    id: str
    customer_id: str | None
    promised_at: datetime | None
    delivered_at: datetime | None = None


def test_the_same_delay_case_code_runs_on_every_store(unit: Unit) -> None:
    settings = parse_config("delays: {merge_window: 10m, escalate_after_promise: 1d}", {})
    cases = DelayCases(settings.settings.delays)
    promised = NOW - timedelta(days=2)  # long past: the case goes to a person at once
    order = LateOrder("o-1", "c1", promised)
    facts = OrderFacts(
        id="o-1", milestones={"approved": NOW - timedelta(days=5)}, promised=promised
    )
    late = Finding("promise-passed", "promise_passed", "major", "promise passed", promised, True)

    with unit() as stores:
        cases.on_verdict(stores, order, facts, OrderVerdict("open", (late,)), NOW)
    with unit() as stores:
        told = cases.flush_notices(stores, NOW + timedelta(minutes=10))
        ticket = stores.tickets.holding("delay:o-1")
        assert ticket is not None
        settled_by_person(stores, ticket.id, NOW + timedelta(hours=1))
        cases.on_verdict(stores, order, facts, OrderVerdict("open", (late,)), NOW)

    with unit() as stores:
        events = stores.tickets.events(ticket.id)
        (notice,) = stores.outbox.queued(ticket.id)
        case = stores.cases.of_ticket(ticket.id)
    assert told == 1
    assert ticket.status == "escalated"
    assert [(e.kind, e.from_status, e.to_status) for e in events] == [
        ("opened", None, "open"),
        ("queued_for_dispatcher", "open", "escalated"),
        ("customer_notified", "escalated", "escalated"),
    ]
    assert (notice.event, notice.address) == ("delay_notice", "+351912000101")
    assert case is not None and case.resolution == "by_person"


def order(order_id: str, **extra: object) -> OrderState:
    values: dict[str, object] = {
        "id": order_id,
        "feed": "shop",
        "status": "open",
        "first_seen_at": NOW,
        "updated_at": NOW,
        "content_hash": f"hash-{order_id}",
        "customer_id": "c1",
        "carrier": "acme",
        "promised_at": NOW + timedelta(days=5),
        "milestones": {"placed": NOW - timedelta(days=1), "approved": NOW},
        **extra,
    }
    return OrderState(**values)  # type: ignore[arg-type]


def test_it_keeps_orders_and_hands_out_the_due_ones_earliest_first(unit: Unit) -> None:
    hour = timedelta(hours=1)
    a = order("o-a", next_check_at=NOW)
    b = order("o-b", next_check_at=NOW + hour)
    delivered_at = NOW + 2 * hour
    c = order(
        "o-c",
        status="delivered",
        milestones={"placed": NOW - timedelta(days=3), "delivered": delivered_at},
    )
    with unit() as stores:
        for one in (b, a, c):
            stores.orders.save(one)

    with unit() as stores:
        assert stores.orders.get("o-a") == a
        assert stores.orders.get("o-x") is None
        assert stores.orders.due(NOW, 10) == [a]
        assert stores.orders.due(NOW + 2 * hour, 1) == [a]
        assert stores.orders.next_check() == NOW
        stores.orders.save(replace(a, next_check_at=NOW + 3 * hour, carrier="other"))

    with unit() as stores:
        assert stores.orders.get("o-a") == replace(a, next_check_at=NOW + 3 * hour, carrier="other")
        assert [o.id for o in stores.orders.due(NOW + 2 * hour, 10)] == ["o-b"]
        assert stores.orders.next_check() == NOW + hour
        stores.orders.recheck_open(NOW + 5 * hour)

    with unit() as stores:
        assert [o.id for o in stores.orders.due(NOW + 5 * hour, 10)] == ["o-a", "o-b"]
        assert stores.orders.deliveries(NOW, NOW + 2 * hour) == [c]
        assert stores.orders.deliveries(NOW + 2 * hour, NOW + 3 * hour) == []
        assert stores.orders.delivered(["o-a", "o-c"]) == {"o-c": delivered_at}


def test_it_stores_a_shipment_event_once(unit: Unit) -> None:
    scan = EventRecord("in_transit", "SCAN", NOW)
    with unit() as stores:
        assert stores.orders.add_event("o-1", "shop", scan, NOW)
        assert not stores.orders.add_event("o-1", "shop", scan, NOW)
        assert stores.orders.add_event("o-2", "shop", scan, NOW)
    with unit() as stores:
        assert not stores.orders.add_event("o-1", "shop", scan, NOW + timedelta(hours=1))
        assert stores.orders.add_event(
            "o-1", "shop", EventRecord("in_transit", "SCAN", NOW + timedelta(seconds=1)), NOW
        )


def test_it_replaces_the_learned_transit_times(unit: Unit) -> None:
    first = {("acme", "*", "approved"): TransitTimes(40, tuple(float(p) for p in range(1, 100)))}
    second = {
        ("*", "*", "placed"): TransitTimes(90, tuple(1.5 * p for p in range(1, 100))),
        ("acme", "west", "placed"): TransitTimes(30, tuple(2.25 * p for p in range(1, 100))),
    }
    with unit() as stores:
        assert stores.orders.transit() == {}
        stores.orders.save_transit(first, NOW)
    with unit() as stores:
        assert stores.orders.transit() == first
        stores.orders.save_transit(second, NOW + timedelta(days=1))
    with unit() as stores:
        assert stores.orders.transit() == second


def test_the_feeds_create_and_update_customers(unit: Unit) -> None:
    newcomer = Person("c2", "Rui", "pt-BR", "America/Sao_Paulo", None, "rui@example.com")
    with unit() as stores:
        stores.contacts.save_customer(newcomer)
        marta = stores.contacts.customer("c1")
        assert marta is not None
        stores.contacts.save_customer(replace(marta, name="Marta S.", phone="+351912000999"))
    with unit() as stores:
        assert stores.contacts.customer("c2") == newcomer
        assert stores.contacts.customer("c1") == replace(
            marta, name="Marta S.", phone="+351912000999"
        )
