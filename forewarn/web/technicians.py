"""The technicians: who is on shift now, their load against capacity, declines, SLA
breaches and where they are; ``/technicians`` and ``/technicians/{id}``.

"On shift" uses the same schedule the dispatcher filters on (``ticketing.shifts``) in
the technician's own zone. "Where" is the site of the job they are on (en route or on
site), else their home base. Declines and SLA breaches count the last 30 days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from forewarn.store.models import Site, Technician, Ticket, TicketEvent
from forewarn.ticketing.lifecycle import WORKING
from forewarn.ticketing.shifts import next_on_duty, on_duty, schedule_from
from forewarn.web.dependencies import ConsoleDep, Db, PageViewer

OVER = timedelta(days=30)
router = APIRouter(tags=["console"], include_in_schema=False)


@dataclass(frozen=True)
class TechnicianRow:
    id: str
    name: str
    timezone: str
    active: bool
    on_shift: bool
    next_shift: datetime | None
    open_jobs: int
    capacity: int
    declines: int
    sla_breaches: int
    where: str
    skills: list[str]
    regions: list[str]


def _breached(now: datetime) -> object:
    done = func.coalesce(Ticket.resolved_at, Ticket.closed_at)
    return and_(
        Ticket.sla_due_at.is_not(None),
        or_(
            and_(done.is_(None), Ticket.sla_due_at < now),
            done > Ticket.sla_due_at,
        ),
    )


def technician_rows(
    session: Session, now: datetime, only: str | None = None
) -> list[TechnicianRow]:
    """Every technician (or just ``only``), on shift first, then by load."""
    since = now - OVER
    query = select(Technician).order_by(Technician.name)
    if only is not None:
        query = query.where(Technician.id == only)
    technicians = session.scalars(query).all()
    open_jobs = dict(
        session.execute(
            select(Ticket.technician_id, func.count())
            .where(Ticket.status.in_(WORKING), Ticket.technician_id.is_not(None))
            .group_by(Ticket.technician_id)
        ).all()
    )
    declines = dict(
        session.execute(
            select(TicketEvent.actor, func.count())
            .where(TicketEvent.to_status == "declined", TicketEvent.at >= since)
            .group_by(TicketEvent.actor)
        ).all()
    )
    breaches = dict(
        session.execute(
            select(Ticket.technician_id, func.count())
            .where(Ticket.opened_at >= since, _breached(now))  # type: ignore[arg-type]
            .group_by(Ticket.technician_id)
        ).all()
    )
    on_the_road = dict(
        session.execute(
            select(Ticket.technician_id, Site.name)
            .join(Site, Site.id == Ticket.site_id)
            .where(Ticket.status.in_(("en_route", "on_site")))
        ).all()
    )
    rows = []
    for t in technicians:
        schedule = schedule_from(t.timezone, list(t.shifts or ()), list(t.days_off or ()))
        shift_now = on_duty(schedule, now)
        if t.id in on_the_road:
            where = f"at or heading to {on_the_road[t.id]}"
        elif t.lat is not None and t.lon is not None:
            where = f"home base {t.lat:.3f}, {t.lon:.3f}"
        else:
            where = "unknown"
        rows.append(
            TechnicianRow(
                id=t.id,
                name=t.name,
                timezone=t.timezone,
                active=t.active,
                on_shift=t.active and shift_now,
                next_shift=None if shift_now else next_on_duty(schedule, now),
                open_jobs=int(open_jobs.get(t.id, 0)),
                capacity=t.max_jobs,
                declines=int(declines.get(f"technician:{t.id}", 0)),
                sla_breaches=int(breaches.get(t.id, 0)),
                where=where,
                skills=[str(s) for s in t.skills or ()],
                regions=[str(r) for r in t.regions or ()],
            )
        )
    return sorted(rows, key=lambda r: (not r.on_shift, -r.open_jobs / max(r.capacity, 1), r.name))


@router.get("/technicians", response_class=HTMLResponse)
def technicians_page(
    request: Request, console: ConsoleDep, principal: PageViewer, db: Db
) -> HTMLResponse:
    """Who is on shift now, their load, declines, SLA breaches and location."""
    now = console.clock.now()
    return console.pages.render(
        request,
        "technicians.html",
        {"rows": technician_rows(db, now), "over": OVER},
        now=now,
        principal=principal,
    )


@router.get("/technicians/{technician_id}", response_class=HTMLResponse)
def technician_page(
    request: Request, console: ConsoleDep, principal: PageViewer, db: Db, technician_id: str
) -> HTMLResponse:
    """One technician with their open and recent jobs."""
    from forewarn.web.pages import PageNotFound

    now = console.clock.now()
    found = technician_rows(db, now, only=technician_id)
    if not found or (principal.technician and principal.technician != technician_id):
        raise PageNotFound(f"technician {technician_id}")
    jobs = db.scalars(
        select(Ticket)
        .where(
            Ticket.technician_id == technician_id,
            or_(Ticket.status.in_(WORKING), Ticket.opened_at >= now - OVER),
        )
        .order_by(Ticket.opened_at.desc())
        .limit(100)
    ).all()
    return console.pages.render(
        request,
        "technician.html",
        {"t": found[0], "jobs": jobs, "working": WORKING, "over": OVER},
        now=now,
        principal=principal,
    )
