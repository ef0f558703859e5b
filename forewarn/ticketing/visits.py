"""Visit windows on a repair ticket: proposed, answered, confirmed, reminded, moved.

=========================  ==================================================================
when                       what happens
=========================  ==================================================================
a technician is chosen     the first ``options`` windows they can keep inside the SLA
                           (:mod:`forewarn.ticketing.appointments`) are offered to the
                           customer (``visit_proposal``: reply 1..N, N+1 for other times,
                           or the signed link in the email); none: the ticket goes to the
                           dispatcher queue with the reason
customer picks one         ``confirmed``; the technician gets ``visit_booked`` (SMS and
                           email); the customer's SMS reply (or, after a link, a message)
                           says what was booked
customer asks for others   the batch is ``passed``; the next windows after the last one
                           offered follow; none left: the dispatcher queue, with the reason
another technician         a confirmed window the new technician can keep stays (the
                           customer is told who comes now); otherwise new windows are offered
                           and the customer is told why
the day before             ``visit_reminder`` at ``remind_at`` local time (quiet hours hold it)
visit ends / ticket ends   the window is ``done`` or ``cancelled``; waiting proposals and
                           reminders are dropped
=========================  ==================================================================

Every step is a ticket event (``visit_proposed``, ``visit_confirmed``, ...) written in the
caller's transaction with its messages.
"""

# ruff: noqa: RUF001 - full-width Chinese punctuation is part of the text

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from forewarn.config.schema import AppointmentSettings, ContactSettings
from forewarn.notifier.outbox import (
    customer_recipient,
    notify,
    recipient_context,
    technician_recipient,
)
from forewarn.notifier.render import Renderer, TemplateProblem
from forewarn.ports import AppointmentRecord
from forewarn.store.appointments import SqlAppointmentStore
from forewarn.store.models import Customer, Notification, Site, Technician, Ticket
from forewarn.ticketing import links
from forewarn.ticketing.appointments import Planning, Visit, Window, can_keep, plan
from forewarn.ticketing.lifecycle import WORKING, IllegalTransition
from forewarn.ticketing.notices import send_dispatcher_alert, ticket_context
from forewarn.ticketing.shifts import schedule_from
from forewarn.ticketing.transitions import apply, record

log = logging.getLogger(__name__)

PROPOSAL = "visit_proposal"
CONFIRMED = "visit_confirmed"
REMINDER = "visit_reminder"
BOOKED = "visit_booked"
REMINDER_BATCH = 200

CONFIRM_WORDS = frozenset({"CONFIRM", "CONFIRMED", "CONFIRMAR", "CONFIRMO", "确认", "確認", "ยืนยัน"})
"""Books the first window offered."""
MORE_WORDS = frozenset(
    {
        "RESCHEDULE",
        "OTHER",
        "OTHERS",
        "OTHER TIMES",
        "MORE",
        "LATER",
        "REMARCAR",
        "OUTRO",
        "OUTROS",
        "OUTRO HORÁRIO",
        "OUTROS HORÁRIOS",
        "改期",
        "其他时间",
        "其他時間",
        "换时间",
        "換時間",
        "เลื่อน",
        "เลื่อนนัด",
        "เวลาอื่น",
        "เปลี่ยนเวลา",
    }
)
"""Asks for other times (also as the first word: "RESCHEDULE tomorrow 9am")."""

Change = Literal["technician", "window", "asked", "return_visit"]


class VisitGone(Exception):
    """The window can no longer be confirmed; the message says why, for the customer."""


@dataclass(frozen=True)
class Answer:
    """What a customer's reply did: the SMS to send back, and what it was read as."""

    reply: str | None
    meaning: Literal["confirmed", "other_times", "not_possible"]


def read_reply(text: str, options: int) -> int | Literal["more"] | None:
    """A reply to a proposal of ``options`` windows: the option picked (1-based),
    ``"more"`` for other times, or None when it is not an answer to the proposal."""
    normal = " ".join(unicodedata.normalize("NFKC", text).strip().strip(".!?。！ ").upper().split())
    if re.fullmatch(r"\d", normal):
        picked = int(normal)
        if 1 <= picked <= options:
            return picked
        return "more" if picked == options + 1 else None
    if normal in CONFIRM_WORDS:
        return 1
    first = normal.split(" ", 1)[0] if normal else ""
    if normal in MORE_WORDS or first in MORE_WORDS:
        return "more"
    return None


class Visits:
    """Proposes and keeps visit windows for repair tickets (one per process, stateless)."""

    def __init__(
        self,
        settings: AppointmentSettings,
        *,
        dispatcher: ContactSettings | None = None,
        public_url: str | None = None,
        link_secret: str | None = None,
    ) -> None:
        self.settings = settings
        self.planning = Planning(
            slot=settings.slot,
            options=settings.options,
            speed_kmh=settings.speed_kmh,
            notice=settings.notice,
            visiting_hours=(settings.visiting_hours.start, settings.visiting_hours.end),
        )
        self._dispatcher = dispatcher
        self._public_url = public_url
        self._secret = link_secret

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    # -- proposing -----------------------------------------------------------------------

    def assigned(
        self,
        session: Session,
        ticket: Ticket,
        technician: Technician,
        now: datetime,
        *,
        change: Change | None = None,
    ) -> None:
        """``technician`` was just given ``ticket``: keep an agreed window if they can,
        else offer windows (telling the customer what changed)."""
        if not self.enabled or ticket.kind != "repair":
            return
        store = SqlAppointmentStore(session)
        held = [a for a in store.of_ticket(ticket.id) if a.status in ("offered", "confirmed")]
        if not held:
            self.propose(session, ticket, technician, now, change=change)
            return
        confirmed = next((a for a in held if a.status == "confirmed"), None)
        if confirmed is not None and confirmed.technician_id == technician.id:
            return
        for appointment in held:
            store.update(
                replace(
                    appointment, status="passed" if appointment.status == "offered" else "cancelled"
                )
            )
        if confirmed is not None and self._can_keep(session, store, ticket, technician, confirmed):
            moved = store.add(
                replace(confirmed, id=0, technician_id=technician.id, status="confirmed")
            )
            before = session.get(Technician, confirmed.technician_id)
            event = record(
                session,
                ticket,
                now,
                "visit_technician_changed",
                "appointments",
                {"appointment": moved.id, "from": confirmed.technician_id, "to": technician.id},
            )
            self._tell_customer(
                session,
                ticket,
                technician,
                f"ticket-event:{event.id}",
                CONFIRMED,
                now,
                visit=moved,
                change="technician",
                previous=before.name if before else None,
            )
            self._tell_technician(
                session, ticket, technician, moved, f"ticket-event:{event.id}", now
            )
            return
        before = session.get(Technician, held[0].technician_id)
        self.propose(
            session,
            ticket,
            technician,
            now,
            change="window" if confirmed is not None else "technician",
            previous=before.name if before is not None and before.id != technician.id else None,
        )

    def propose(
        self,
        session: Session,
        ticket: Ticket,
        technician: Technician,
        now: datetime,
        *,
        after: datetime | None = None,
        change: Change | None = None,
        previous: str | None = None,
        send: bool = True,
    ) -> dict[str, Any] | None:
        """Offer the next windows; returns the message context (for a reply), or None when
        there is none to offer (the ticket then waits for a dispatcher)."""
        store = SqlAppointmentStore(session)
        existing = store.of_ticket(ticket.id)
        for appointment in existing:
            if appointment.status == "offered":
                store.update(replace(appointment, status="passed"))
        drop_waiting(session, ticket.id, PROPOSAL)
        site = session.get(Site, ticket.site_id) if ticket.site_id else None
        place = _point(site.lat, site.lon) if site else None
        schedule = schedule_from(
            technician.timezone, technician.shifts or [], technician.days_off or []
        )
        horizon = ticket.sla_due_at or now + timedelta(days=21)
        others = store.holding(
            technician.id, now - timedelta(days=1), horizon, other_than=ticket.id
        )
        result = plan(
            schedule,
            [Visit(a.start_at, a.end_at, _point(a.lat, a.lon)) for a in others],
            home=_point(technician.lat, technician.lon),
            site=place,
            site_zone=site.timezone if site else "UTC",
            now=now,
            due=ticket.sla_due_at,
            planning=self.planning,
            after=after,
        )
        if not result.windows:
            why = f"No visit window for {technician.name}: {result.reason}."
            self._to_dispatcher(session, ticket, technician, now, why)
            return None
        customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
        if (
            send
            and customer is not None
            and "sms" not in customer_recipient(customer).addresses
            and not (self._public_url and self._secret)
        ):
            why = (
                "The customer can only be reached by email and visit links are not configured "
                "(web.public_url and FOREWARN_LINK_SECRET): agree a time with them."
            )
            self._to_dispatcher(session, ticket, technician, now, why)
            return None
        batch = max((a.batch for a in existing), default=0) + 1
        offered = [
            store.add(
                AppointmentRecord(
                    ticket_id=ticket.id,
                    technician_id=technician.id,
                    customer_id=ticket.customer_id,
                    start_at=window.start,
                    end_at=window.end,
                    status="offered",
                    batch=batch,
                    option=n,
                    offered_at=now,
                    lat=place[0] if place else None,
                    lon=place[1] if place else None,
                    return_visit=change == "return_visit",
                )
            )
            for n, window in enumerate(result.windows, start=1)
        ]
        event = record(
            session,
            ticket,
            now,
            "visit_proposed",
            "appointments",
            {
                "batch": batch,
                "technician": technician.id,
                "windows": [[a.start_at.isoformat(), a.end_at.isoformat()] for a in offered],
                **({"change": change} if change else {}),
            },
        )
        proposal = self.proposal(offered, now, change=change, previous=previous)
        context = ticket_context(session, ticket, technician=technician, proposal=proposal)
        if send and customer is not None:
            notify(
                session,
                key=f"ticket-event:{event.id}",
                event=PROPOSAL,
                recipient=customer_recipient(customer),
                context=context,
                now=now,
                ticket_id=ticket.id,
                critical=ticket.severity == "critical",
            )
        return context

    def proposal(
        self,
        offered: Sequence[AppointmentRecord],
        now: datetime,
        *,
        change: Change | None = None,
        previous: str | None = None,
    ) -> dict[str, Any]:
        """What the proposal templates read: the numbered windows (with a signed link
        each when links are configured), the number for other times, and what changed."""
        return {
            "options": [
                {
                    "n": a.option,
                    "start": a.start_at.isoformat(),
                    "end": a.end_at.isoformat(),
                    "link": self._link(a, now),
                }
                for a in offered
            ],
            "more": len(offered) + 1,
            "change": change,
            "previous_technician": previous,
        }

    def _link(self, appointment: AppointmentRecord, now: datetime) -> str | None:
        if not self._public_url or not self._secret:
            return None
        expires = min(appointment.start_at, now + self.settings.link_valid_for)
        return links.url(self._public_url, appointment.id, expires, self._secret)

    def _can_keep(
        self,
        session: Session,
        store: SqlAppointmentStore,
        ticket: Ticket,
        technician: Technician,
        window: AppointmentRecord,
    ) -> bool:
        schedule = schedule_from(
            technician.timezone, technician.shifts or [], technician.days_off or []
        )
        others = store.holding(
            technician.id,
            window.start_at - timedelta(days=1),
            window.end_at + timedelta(days=1),
            other_than=ticket.id,
        )
        return can_keep(
            Window(window.start_at, window.end_at),
            schedule,
            [Visit(a.start_at, a.end_at, _point(a.lat, a.lon)) for a in others],
            home=_point(technician.lat, technician.lon),
            site=_point(window.lat, window.lon),
            speed_kmh=self.planning.speed_kmh,
        )

    def _to_dispatcher(
        self, session: Session, ticket: Ticket, technician: Technician, now: datetime, reason: str
    ) -> None:
        ticket.dispatch = {**(ticket.dispatch or {}), "queued_because": reason}
        detail = {"reason": reason, "technician": technician.id}
        try:
            event = apply(
                session,
                ticket,
                "escalate",
                actor="appointments",
                now=now,
                detail=detail,
                kind="queued_for_dispatcher",
            )
        except IllegalTransition:
            event = record(session, ticket, now, "queued_for_dispatcher", "appointments", detail)
        log.info("ticket %s waits for a dispatcher: %s", ticket.id, reason)
        if self._dispatcher is not None:
            send_dispatcher_alert(
                session, ticket, event, now, self._dispatcher, "dispatcher", reason
            )

    # -- answers -------------------------------------------------------------------------

    def answer(
        self, session: Session, customer: Customer, text: str, now: datetime, renderer: Renderer
    ) -> Answer | None:
        """Act on an SMS from ``customer`` if it answers their waiting proposal (or asks to
        move a booked visit); None when it is not about a visit."""
        if not self.enabled:
            return None
        store = SqlAppointmentStore(session)
        offered = store.offered_to(customer.id)
        if offered:
            batch = [a for a in offered if a.ticket_id == offered[0].ticket_id]
            reading = read_reply(text, len(batch))
            if reading is None:
                return None
            if reading == "more":
                return self._more(session, customer, batch[-1], now, renderer)
            try:
                booked = self.confirm(session, batch[reading - 1].id, now, via="sms")
            except VisitGone as gone:
                # Taken meanwhile: the reply offers the next times instead.
                log.info("visit reply from customer %s not possible: %s", customer.id, gone)
                return self._more(session, customer, batch[reading - 1], now, renderer)
            return Answer(self._render_reply(session, customer, booked, renderer), "confirmed")
        if read_reply(text, 0) != "more":
            return None
        upcoming = [a for a in self._confirmed_of(session, customer.id) if a.start_at > now]
        if not upcoming:
            return None
        booked = upcoming[0]
        store.update(replace(booked, status="cancelled"))
        return self._more(session, customer, booked, now, renderer)

    def _confirmed_of(self, session: Session, customer_id: str) -> list[AppointmentRecord]:
        store = SqlAppointmentStore(session)
        from forewarn.store.appointments import Appointment

        ids = session.scalars(
            select(Appointment.id)
            .where(Appointment.customer_id == customer_id, Appointment.status == "confirmed")
            .order_by(Appointment.start_at)
        ).all()
        return [a for i in ids if (a := store.get(i)) is not None]

    def _more(
        self,
        session: Session,
        customer: Customer,
        last: AppointmentRecord,
        now: datetime,
        renderer: Renderer,
    ) -> Answer:
        ticket = session.get(Ticket, last.ticket_id)
        technician = session.get(Technician, last.technician_id)
        if ticket is None or technician is None or ticket.status not in WORKING:
            return Answer(None, "not_possible")
        # Other times start where the last one offered (or the one moved away from) ends.
        context = self.propose(
            session, ticket, technician, now, after=last.end_at, change="asked", send=False
        )
        if context is None:
            context = ticket_context(
                session,
                ticket,
                technician=technician,
                proposal={"options": [], "more": 0, "change": "asked", "previous_technician": None},
            )
        context = {**context, "recipient": recipient_context(customer_recipient(customer))}
        try:
            reply = renderer.render(PROPOSAL, "sms", customer.locale, context).body
        except TemplateProblem:
            log.exception("the visit proposal reply could not be rendered")
            reply = None
        return Answer(reply, "other_times")

    def confirm(
        self, session: Session, appointment_id: int, now: datetime, *, via: str
    ) -> AppointmentRecord:
        """Book window ``appointment_id``; raises :class:`VisitGone` if it is no longer on
        offer. Confirming a window already booked returns it unchanged (a second click)."""
        store = SqlAppointmentStore(session)
        chosen = store.get(appointment_id)
        if chosen is None:
            raise VisitGone("this visit time is not known")
        ticket = session.get(Ticket, chosen.ticket_id, with_for_update=True)
        if chosen.status == "confirmed":
            return chosen
        if ticket is None or ticket.status not in WORKING:
            raise VisitGone("the repair is no longer open")
        if chosen.status != "offered" or chosen.technician_id != ticket.technician_id:
            raise VisitGone("this visit time is no longer offered; a newer message has other times")
        technician = session.get(Technician, chosen.technician_id)
        if technician is None or not self._can_keep(session, store, ticket, technician, chosen):
            # Offered to two customers; the other one booked it first.
            raise VisitGone("this visit time was just booked by someone else")
        customer = session.get(Customer, chosen.customer_id) if chosen.customer_id else None
        for other in store.of_ticket(ticket.id):
            if other.status == "offered" and other.id != chosen.id:
                store.update(replace(other, status="passed"))
        booked = replace(
            chosen,
            status="confirmed",
            confirmed_at=now,
            confirmed_via=via,
            remind_at=self._remind_at(chosen, customer, now),
        )
        store.update(booked)
        drop_waiting(session, ticket.id, PROPOSAL)
        event = record(
            session,
            ticket,
            now,
            "visit_confirmed",
            f"customer:{via}",
            {
                "appointment": booked.id,
                "start": booked.start_at.isoformat(),
                "end": booked.end_at.isoformat(),
            },
        )
        if technician is not None:
            self._tell_technician(
                session, ticket, technician, booked, f"ticket-event:{event.id}", now
            )
            if via != "sms":
                # An SMS is answered in the reply itself; a click gets the page and a message.
                self._tell_customer(
                    session,
                    ticket,
                    technician,
                    f"ticket-event:{event.id}",
                    CONFIRMED,
                    now,
                    visit=booked,
                )
        log.info("ticket %s: visit window %s confirmed by %s", ticket.id, booked.id, via)
        return booked

    def _remind_at(
        self, appointment: AppointmentRecord, customer: Customer | None, now: datetime
    ) -> datetime | None:
        zone = ZoneInfo(customer.timezone if customer else "UTC")
        day_before = appointment.start_at.astimezone(zone).date() - timedelta(days=1)
        at = datetime.combine(day_before, self.settings.remind_at, tzinfo=zone)
        # Booked after the reminder would go (the visit is tomorrow morning): no reminder.
        return at if at > now else None

    def _render_reply(
        self, session: Session, customer: Customer, booked: AppointmentRecord, renderer: Renderer
    ) -> str | None:
        ticket = session.get(Ticket, booked.ticket_id)
        assert ticket is not None
        context = ticket_context(session, ticket, visit=_visit(booked))
        context = {**context, "recipient": recipient_context(customer_recipient(customer))}
        try:
            return renderer.render(CONFIRMED, "sms", customer.locale, context).body
        except TemplateProblem:
            log.exception("the visit confirmation reply could not be rendered")
            return None

    # -- reminders and endings -----------------------------------------------------------

    def remind(self, session: Session, now: datetime) -> int:
        """Queue the reminders due at ``now``; returns how many were queued."""
        if not self.enabled:
            return 0
        store = SqlAppointmentStore(session)
        sent = 0
        for appointment in store.reminders_due(now, REMINDER_BATCH):
            store.update(replace(appointment, reminded_at=now))
            ticket = session.get(Ticket, appointment.ticket_id)
            technician = session.get(Technician, appointment.technician_id)
            if ticket is None or technician is None or ticket.status not in WORKING:
                continue
            event = record(
                session,
                ticket,
                now,
                "visit_reminded",
                "appointments",
                {"appointment": appointment.id},
            )
            self._tell_customer(
                session,
                ticket,
                technician,
                f"ticket-event:{event.id}",
                REMINDER,
                now,
                visit=appointment,
            )
            sent += 1
        return sent

    # -- messages ------------------------------------------------------------------------

    def _tell_customer(
        self,
        session: Session,
        ticket: Ticket,
        technician: Technician,
        key: str,
        event: str,
        now: datetime,
        *,
        visit: AppointmentRecord,
        change: Change | None = None,
        previous: str | None = None,
    ) -> None:
        customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
        if customer is None:
            return
        context = ticket_context(
            session,
            ticket,
            technician=technician,
            visit=_visit(visit),
            proposal={"options": [], "more": 0, "change": change, "previous_technician": previous},
        )
        notify(
            session,
            key=key,
            event=event,
            recipient=customer_recipient(customer),
            context=context,
            now=now,
            ticket_id=ticket.id,
        )

    def _tell_technician(
        self,
        session: Session,
        ticket: Ticket,
        technician: Technician,
        visit: AppointmentRecord,
        key: str,
        now: datetime,
    ) -> None:
        notify(
            session,
            key=key,
            event=BOOKED,
            recipient=technician_recipient(technician),
            context=ticket_context(session, ticket, technician=technician, visit=_visit(visit)),
            now=now,
            ticket_id=ticket.id,
        )


def _visit(appointment: AppointmentRecord) -> dict[str, str | None]:
    return {"start": appointment.start_at.isoformat(), "end": appointment.end_at.isoformat()}


def _point(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    return (lat, lon) if lat is not None and lon is not None else None


def end_visits(session: Session, ticket: Ticket, *, visited: bool) -> None:
    """The visit happened (``visited``) or will not: the ticket's windows let go of the
    technician's time, and what still waits to be sent about them is dropped."""
    store = SqlAppointmentStore(session)
    for appointment in store.of_ticket(ticket.id):
        if appointment.status == "offered":
            store.update(replace(appointment, status="passed"))
        elif appointment.status == "confirmed":
            store.update(replace(appointment, status="done" if visited else "cancelled"))
    for event in (PROPOSAL, REMINDER, CONFIRMED):
        drop_waiting(session, ticket.id, event)


def booked(session: Session, ticket_id: int) -> AppointmentRecord | None:
    """The ticket's confirmed window, if any."""
    return next(
        (a for a in SqlAppointmentStore(session).of_ticket(ticket_id) if a.status == "confirmed"),
        None,
    )


def awaiting_answer(session: Session, ticket_id: int) -> bool:
    """Whether windows are on offer to the customer, not yet answered."""
    return any(a.status == "offered" for a in SqlAppointmentStore(session).of_ticket(ticket_id))


def drop_waiting(session: Session, ticket_id: int, event: str) -> None:
    """Messages about windows that are no longer on offer are not sent."""
    session.execute(
        update(Notification)
        .where(
            Notification.ticket_id == ticket_id,
            Notification.event == event,
            Notification.status == "queued",
        )
        .values(status="superseded", last_error="superseded: the visit times changed")
        .execution_options(synchronize_session=False)
    )
