"""The JSON API (read side) under ``/api``: bearer token, at least a viewer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from forewarn.web import queries
from forewarn.web.auth import Principal, Role
from forewarn.web.console import MAX_ID
from forewarn.web.dependencies import ApiViewer, ConsoleDep, Db, api_access
from forewarn.web.redaction import sees_bodies_in_full
from forewarn.web.resources import (
    AlertDetail,
    AlertList,
    DeviceList,
    NotificationList,
    Overview,
    QuarantineList,
    TicketDetail,
    TicketList,
)

Offset = Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page")]
Status = Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$", description="only this status")]

router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(api_access(Role.viewer))])


def not_personal(principal: ApiViewer) -> Principal:
    """Refuse a technician's personal token the lists its phone view does not show either
    (overview, notification log, quarantine); devices, alerts and its own tickets stay."""
    if principal.technician is not None:
        raise HTTPException(403, "a technician's personal token reads only its own jobs")
    return principal


Fleetwide = [Depends(not_personal)]


@router.get("/overview", dependencies=Fleetwide)
def overview(console: ConsoleDep, db: Db) -> Overview:
    """The dashboard's counts."""
    return queries.overview(db, console.clock.now(), console.silent_after)


@router.get("/devices")
def devices(
    console: ConsoleDep,
    db: Db,
    show: queries.DeviceShow = "all",
    offset: Offset = 0,
    limit: Limit = 100,
) -> DeviceList:
    """Devices with their last report and open alerts, the most troubled first."""
    now = console.clock.now()
    return queries.device_page(db, now, console.silent_after, show=show, offset=offset, limit=limit)


@router.get("/alerts")
def alerts(
    db: Db, show: queries.AlertShow = "open", offset: Offset = 0, limit: Limit = 100
) -> AlertList:
    """Open alerts (or resolved, or all)."""
    return queries.alert_page(db, show=show, offset=offset, limit=limit)


@router.get("/alerts/{alert_id}")
def alert(db: Db, alert_id: int) -> AlertDetail:
    """One alert with its state changes and their evidence."""
    found = queries.alert_detail(db, alert_id) if 0 < alert_id <= MAX_ID else None
    if found is None:
        raise HTTPException(404, f"alert {alert_id} not found")
    return found


@router.get("/tickets")
def tickets(
    db: Db,
    principal: ApiViewer,
    show: queries.TicketShow = "open",
    offset: Offset = 0,
    limit: Limit = 100,
) -> TicketList:
    """Open tickets (or closed, or all); a technician's personal token gets only theirs."""
    return queries.ticket_page(
        db, show=show, offset=offset, limit=limit, technician=principal.technician
    )


@router.get("/tickets/{ticket_id}")
def ticket(db: Db, ticket_id: int, principal: ApiViewer) -> TicketDetail:
    """One ticket with its dispatch record, events and notifications (below ops, phone
    numbers, emails and street addresses in message bodies are hidden)."""
    full = sees_bodies_in_full(principal)
    found = (
        queries.ticket_detail(db, ticket_id, full_bodies=full) if 0 < ticket_id <= MAX_ID else None
    )
    mine = principal.technician is None or (
        found is not None and found.technician_id == principal.technician
    )
    if found is None or not mine:
        raise HTTPException(404, f"ticket {ticket_id} not found")
    return found


@router.get("/notifications", dependencies=Fleetwide)
def notifications(
    db: Db, status: Status = None, offset: Offset = 0, limit: Limit = 100
) -> NotificationList:
    """The notification log, newest first; recipient addresses are masked."""
    return queries.notification_page(db, status=status, offset=offset, limit=limit)


@router.get("/quarantine", dependencies=Fleetwide)
def quarantine(db: Db, offset: Offset = 0, limit: Limit = 100) -> QuarantineList:
    """Rejected inputs, newest first, with a preview of each payload."""
    return queries.quarantine_page(db, offset=offset, limit=limit)
