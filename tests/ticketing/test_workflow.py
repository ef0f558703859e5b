"""Technician commands, escalation, recurrence and the cleared-alert policy, through
``build()``, the ingest hand-over, ``handle_technician_sms`` and the scheduled sweep.

Time is a stepping clock; nothing is sent: the tests read ticket events and the outbox.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from forewarn.service import Forewarn, sweep_tickets
from forewarn.store.models import Notification, Ticket
from forewarn.store.tickets import SqlTicketStore
from forewarn.ticketing.commands import handle_technician_sms
from forewarn.ticketing.reports import closures_per_rule, dispatcher_queue
from tests.ticketing.test_tickets import (
    TECHNICIANS,
    Fleet,
    events,
    fault,
    fleet,
    hot,
    ingest,
    outbox,
    overheat,
    tickets,
)

__all__ = ["fleet"]

TWO_INVERTER_TECHS = """
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter], regions: [lisbon-west], home: {lat: 38.710, lon: -9.300}}
  - {id: t-bea, name: Bea Matos, phone: "+351913000204",
     skills: [inverter], regions: [lisbon-west], home: {lat: 38.70, lon: -9.10}}
ticketing:
  escalation:
    ack_within: {major: 30m, critical: 10m}
    handoffs: 1
    supervisor: {name: Sara Supervisor, phone: "+351913000999"}
  dispatcher: {name: Dina Dispatch, email: dispatch@example.com}
"""


def sms(app: Forewarn, technician: str, text: str) -> str:
    with app.sessions.begin() as session:
        return handle_technician_sms(session, technician, text, app.clock.now())


def ticket(app: Forewarn) -> Ticket:
    (only,) = tickets(app)
    return only


def test_a_technician_runs_the_job_by_sms_and_the_customer_hears_each_step(fleet: Fleet) -> None:
    app = fleet.start()
    overheat(app, "inv-101", fleet.clock)
    job = ticket(app).id

    assert (
        sms(app, "t-ana", f"  ack   {job} ")
        == f"Thanks, Job #{job} is yours. Reply ENROUTE {job} when you leave."
    )
    assert sms(app, "t-ana", f"ACK {job}") == f"Job #{job} is already accepted."
    assert sms(app, "t-ana", f"EnRoute #{job}").startswith(f"Job #{job}: en route.")
    assert sms(app, "t-ana", f"ONSITE {job}") == f"Job #{job}: on site."
    fleet.clock.advance(minutes=40)
    reply = sms(app, "t-ana", f"done {job}   replaced the   cooling fan")

    assert reply == f"Job #{job} closed as fixed. Thank you!"
    done = ticket(app)
    assert done.status == "resolved"
    assert done.closure_code == "fixed"
    assert done.resolution_note == "replaced the cooling fan"
    assert done.open_fingerprint is None
    assert [(e.kind, e.actor, e.to_status) for e in events(app, done)][2:] == [
        ("visit_proposed", "appointments", "assigned"),
        ("accept", "technician:t-ana", "accepted"),
        ("depart", "technician:t-ana", "en_route"),
        ("arrive", "technician:t-ana", "on_site"),
        ("resolve", "technician:t-ana", "resolved"),
    ]
    customer = [e for e, r, _, _ in outbox(app) if r == "c-silva"]
    assert customer == [
        "visit_proposal",
        "fault_notice",
        "technician_assigned",
        "ticket_resolved",
        "satisfaction_survey",
    ]
    with app.sessions() as session:
        survey = session.scalars(
            select(Notification).where(Notification.event == "satisfaction_survey")
        ).one()
        resolved = session.scalars(
            select(Notification).where(Notification.event == "ticket_resolved")
        ).one()
    assert survey.next_attempt_at - resolved.next_attempt_at == timedelta(hours=1)
    assert sms(app, "t-ana", f"DONE {job}") == f"Job #{job} is already resolved."
    assert len(outbox(app, "satisfaction_survey")) == 1


def test_it_answers_unknown_unauthorised_and_impossible_commands_helpfully(fleet: Fleet) -> None:
    app = fleet.start()
    overheat(app, "inv-101", fleet.clock)
    job = ticket(app).id

    assert sms(app, "t-ana", "hello?").startswith("Sorry, that is not a command I know.")
    assert sms(app, "t-ana", "ACK").startswith("Which job? Send ACK followed by the job number")
    assert sms(app, "t-ana", f"FIXIT {job}").startswith("Sorry, 'FIXIT' is not a command I know.")
    assert (
        sms(app, "t-ana", "ACK 99999")
        == "Job #99999 does not exist. Check the number in your work order."
    )
    assert (
        sms(app, "t-rui", f"ACK {job}")
        == f"Job #{job} is not assigned to you, so nothing was changed."
    )
    assert sms(app, "t-nobody", f"ACK {job}").startswith("forewarn does not know you")
    assert sms(app, "t-ana", f"ONSITE {job}") == f"Job #{job}: on site."
    assert (
        sms(app, "t-ana", f"DECLINE {job}")
        == f"Job #{job} is on site: DECLINE is not possible now."
    )
    assert ticket(app).status == "on_site"


def test_a_declined_job_goes_to_the_next_technician_and_never_back(fleet: Fleet) -> None:
    app = fleet.start(TWO_INVERTER_TECHS)
    overheat(app, "inv-101", fleet.clock)
    job = ticket(app).id

    assert sms(app, "t-ana", f"decline {job}") == f"OK, Job #{job} goes to another technician."
    sweep_tickets(app)

    moved = ticket(app)
    assert moved.status == "assigned"
    assert moved.technician_id == "t-bea"
    assert moved.dispatch["excluded"] == {"t-ana": "declined or did not acknowledge this job"}
    assert [r for _, r, _, _ in outbox(app, "work_order")] == ["t-ana", "t-ana", "t-bea"]

    assert sms(app, "t-bea", f"DECLINE {job}").startswith("OK")
    sweep_tickets(app)

    queued = ticket(app)
    assert queued.status == "open"
    assert queued.technician_id is None
    assert [t.id for t in dispatcher_queue_of(app)] == [job]
    assert outbox(app, "dispatcher_alert") == [
        ("dispatcher_alert", "dispatcher", "email", "dispatch@example.com")
    ]


def dispatcher_queue_of(app: Forewarn) -> list[Ticket]:
    with app.sessions() as session:
        ids = [q.id for q in dispatcher_queue(SqlTicketStore(session))]
    return [t for t in tickets(app) if t.id in ids]


def test_a_technician_who_never_answers_is_escalated_on_time_then_the_supervisor(
    fleet: Fleet,
) -> None:
    app = fleet.start(TWO_INVERTER_TECHS)
    overheat(app, "inv-101", fleet.clock)
    assigned_at = fleet.clock.now() - timedelta(minutes=1)
    job = ticket(app).id

    fleet.clock.at = assigned_at + timedelta(minutes=29, seconds=59)
    sweep_tickets(app)
    assert ticket(app).technician_id == "t-ana"

    fleet.clock.at = assigned_at + timedelta(minutes=30)
    sweep_tickets(app)
    handed_on = ticket(app)
    assert handed_on.technician_id == "t-bea"
    assert handed_on.escalation_step == 1
    assert outbox(app, "job_cancelled")[0][1] == "t-ana"
    assert (
        sms(app, "t-ana", f"ACK {job}")
        == f"Job #{job} is not assigned to you, so nothing was changed."
    )

    fleet.clock.at = assigned_at + timedelta(minutes=60)
    sweep_tickets(app)
    escalated = ticket(app)
    assert escalated.technician_id == "t-bea"  # still may accept
    assert escalated.ack_due_at is None
    assert outbox(app, "dispatcher_alert") == [
        ("dispatcher_alert", "supervisor", "sms", "+351913000999")
    ]
    assert [e.kind for e in events(app, escalated)][2:] == [
        "visit_proposed",
        "escalated",
        "reassigned",
        "visit_proposed",  # the customer is told Bea comes instead, with her times
        "escalated",
        "escalated_to_supervisor",
    ]
    fleet.clock.advance(hours=5)
    sweep_tickets(app)  # the chain has run out: nothing more happens
    assert len(events(app, ticket(app))) == 8
    assert sms(app, "t-bea", f"ack {job}").startswith("Thanks")


def test_escalation_stops_as_soon_as_someone_accepts(fleet: Fleet) -> None:
    app = fleet.start(TWO_INVERTER_TECHS)
    overheat(app, "inv-101", fleet.clock)
    job = ticket(app).id

    sms(app, "t-ana", f"ACK {job}")
    fleet.clock.advance(hours=3)
    sweep_tickets(app)

    assert ticket(app).technician_id == "t-ana"
    assert [e.kind for e in events(app, ticket(app))][-1] == "accept"


def test_a_fault_that_recurs_within_the_window_reopens_its_ticket_as_a_repeat_visit(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    overheat(app, "inv-101", fleet.clock)
    job = ticket(app).id
    sms(app, "t-ana", f"ACK {job}")
    sms(app, "t-ana", f"DONE {job} cleaned the fan")
    ingest(app, [hot("inv-101", 60, fleet.clock.now())])  # the alert clears
    fleet.clock.advance(days=2)

    overheat(app, "inv-101", fleet.clock)

    reopened = ticket(app)
    assert reopened.id == job
    assert reopened.status == "assigned"
    assert reopened.repeat_visits == 1
    assert reopened.closure_code is None
    assert "reopen" in [e.kind for e in events(app, reopened)]
    assert reopened.dispatch["candidates"][0]["preferred"] is True
    assert len(outbox(app, "fault_notice")) == 2


def test_a_fault_after_the_window_opens_a_new_ticket_linked_to_the_old_one(fleet: Fleet) -> None:
    app = fleet.start()
    overheat(app, "inv-101", fleet.clock)
    first = ticket(app).id
    sms(app, "t-ana", f"NOFAULT {first} all readings normal on site")
    ingest(app, [hot("inv-101", 60, fleet.clock.now())])
    fleet.clock.advance(days=8)
    sweep_tickets(app)  # the reopen window has passed: resolved becomes closed

    overheat(app, "inv-101", fleet.clock)

    old, new = tickets(app)
    assert old.status == "closed"
    assert old.closure_code == "no_fault_found"
    assert new.previous_ticket_id == old.id
    assert new.status == "assigned"
    with app.sessions() as session:
        (rule,) = closures_per_rule(SqlTicketStore(session))
    assert (rule.rule, rule.by_code, rule.noise_ratio) == (
        "inverter-overheating",
        {"no_fault_found": 1},
        1.0,
    )


def test_a_ticket_whose_fault_clears_before_anyone_sets_out_closes_after_the_grace(
    fleet: Fleet,
) -> None:
    app = fleet.start(TECHNICIANS + "ticketing: {cleared_grace: 30m}\n")
    overheat(app, "inv-101", fleet.clock)
    ingest(app, [hot("inv-101", 60, fleet.clock.now())])
    cleared_at = fleet.clock.now()

    fleet.clock.at = cleared_at + timedelta(minutes=29)
    sweep_tickets(app)
    assert ticket(app).status == "assigned"

    fleet.clock.at = cleared_at + timedelta(minutes=30)
    sweep_tickets(app)

    closed = ticket(app)
    assert closed.status == "closed"
    assert closed.closure_code == "cleared_before_visit"
    assert [e.kind for e in events(app, closed)][-2:] == ["alert_cleared", "auto_closed"]
    assert [(e, r) for e, r, _, _ in outbox(app) if e in {"job_cancelled", "ticket_resolved"}] == [
        ("job_cancelled", "t-ana"),
        ("job_cancelled", "t-ana"),
        ("ticket_resolved", "c-silva"),
    ]
    assert outbox(app, "satisfaction_survey") == []


def test_a_fault_that_returns_within_the_grace_keeps_its_ticket(fleet: Fleet) -> None:
    app = fleet.start(TECHNICIANS + "ticketing: {cleared_grace: 30m}\n")
    overheat(app, "inv-101", fleet.clock)
    ingest(app, [hot("inv-101", 60, fleet.clock.now())])
    fleet.clock.advance(minutes=10)
    ingest(app, [fault("inv-101", "E021", fleet.clock.now())])
    fleet.clock.advance(hours=1)

    sweep_tickets(app)

    assert ticket(app).status == "assigned"
    assert ticket(app).priority == "P1"


def test_the_keep_policy_leaves_a_cleared_ticket_for_inspection(fleet: Fleet) -> None:
    app = fleet.start(TECHNICIANS + "ticketing: {on_alert_cleared: keep}\n")
    overheat(app, "inv-101", fleet.clock)
    ingest(app, [hot("inv-101", 60, fleet.clock.now())])
    fleet.clock.advance(days=1)

    sweep_tickets(app)

    kept = ticket(app)
    assert kept.status == "assigned"
    cleared = next(e for e in events(app, kept) if e.kind == "alert_cleared")
    assert cleared.detail["outcome"].startswith("kept for inspection")


def test_a_decline_is_handed_on_at_once_when_the_sms_handler_knows_the_settings(
    fleet: Fleet,
) -> None:
    from forewarn.ticketing.commands import technician_commands

    app = fleet.start(TWO_INVERTER_TECHS)
    overheat(app, "inv-101", fleet.clock)
    job = ticket(app).id
    handle = technician_commands(app.ticketing)

    with app.sessions.begin() as session:
        reply = handle(session, "t-ana", f"DECLINE {job}", app.clock.now())

    moved = ticket(app)  # no sweep ran
    assert reply == f"OK, Job #{job} goes to another technician."
    assert (moved.status, moved.technician_id) == ("assigned", "t-bea")
    assert moved.ack_due_at is not None


def test_a_cleared_ticket_is_not_auto_closed_while_its_fault_is_held_as_flapping(
    fleet: Fleet,
) -> None:
    app = fleet.start(
        TECHNICIANS
        + "ticketing: {cleared_grace: 30m}\n"
        + "alerting: {flapping: {changes: 3, window: 1h, settle: 2h}}\n"
    )
    overheat(app, "inv-101", fleet.clock)
    ingest(app, [hot("inv-101", 60, fleet.clock.now())])  # cleared: the grace starts
    fleet.clock.advance(minutes=1)
    overheat(app, "inv-101", fleet.clock)  # back: the third change in an hour flaps

    fleet.clock.advance(minutes=31)
    sweep_tickets(app)

    assert ticket(app).status == "assigned"


def test_a_flapping_alert_still_firing_keeps_its_ticket_when_another_alert_clears(
    fleet: Fleet,
) -> None:
    from forewarn.store.models import Alert

    app = fleet.start(TECHNICIANS + "ticketing: {cleared_grace: 30m}\n")
    overheat(app, "inv-101", fleet.clock)
    ingest(app, [fault("inv-101", "E021", fleet.clock.now())])  # a second alert attaches
    job = ticket(app).id
    with app.sessions.begin() as session:  # the overheating alert is held as flapping
        hot_alert = session.scalars(
            select(Alert).where(Alert.rule_id == "inverter-overheating")
        ).one()
        hot_alert.state, hot_alert.condition = "flapping", "firing"
    fleet.clock.advance(minutes=1)
    ingest(app, [fault("inv-101", "OK", fleet.clock.now())])  # the fault code clears

    cleared = [e for e in events(app, ticket(app)) if e.kind == "alert_cleared"]
    assert cleared[-1].detail["outcome"] == "1 other alert(s) still firing"
    assert ticket(app).cleared_at is None
    assert ticket(app).id == job
