"""Ticket commands and dispatch views over the API (``/api/tickets/{id}/commands`` ...).

Technician tokens may run the technician commands for the technician they name; a shared
technician token carries a role, not a person, so the body says who is acting, while a
personal token (``technician:<id>:<token>``) acts only as its own technician (see
docs/dispatch.md). Ops
may act for a technician, or as ops (no ``technician``), and may also ``close`` or
``cancel``. The answers mirror the SMS replies, with a status code: 404 unknown ticket,
403 not your job, 409 not allowed from the ticket's status, 200 otherwise (``changed``
says whether anything happened; a repeated command changes nothing).

Mounted by ``create_app(extra_routers=[router])``; the routes check their own roles.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from forewarn.store.tickets import SqlTicketStore
from forewarn.ticketing import commands, reports
from forewarn.ticketing.tickets import Ticketing
from forewarn.web.auth import Principal, Role, actor
from forewarn.web.dependencies import ConsoleDep, Db, api_access
from forewarn.web.forms import record_command

router = APIRouter(prefix="/api", tags=["ticketing"])

TechnicianCaller = Annotated[Principal, Depends(api_access(Role.technician))]
Viewer = Annotated[Principal, Depends(api_access(Role.viewer))]

CommandWord = Literal["ack", "enroute", "onsite", "done", "nofault", "decline", "close", "cancel"]
_STATUS_OF = {"unknown_ticket": 404, "not_yours": 403, "unknown_technician": 403, "illegal": 409}


class CommandRequest(BaseModel):
    command: CommandWord
    technician: str | None = Field(None, max_length=128)
    """Who is acting; required with a technician token, omitted by ops acting as ops."""
    note: str = Field("", max_length=commands.MAX_NOTE)
    closure_code: Literal["fixed", "customer_cause", "parts_needed"] | None = None
    """For ``done``: how it ended (default ``fixed``)."""


class CommandResult(BaseModel):
    ticket: int
    changed: bool
    status: str | None
    reply: str


class QueuedTicketOut(BaseModel):
    id: int
    status: str
    priority: str
    title: str
    why: str
    sla_due_at: datetime | None
    opened_at: datetime


class RuleClosuresOut(BaseModel):
    rule: str
    total: int
    by_code: dict[str, int]
    noise_ratio: float


@router.post("/tickets/{ticket_id}/commands")
def run_command(
    ticket_id: int, body: CommandRequest, principal: TechnicianCaller, console: ConsoleDep
) -> CommandResult:
    """Run a technician command (or, for ops, close / cancel) on one ticket."""
    if principal.technician is not None:
        # A personal token acts only as its own technician.
        if body.technician not in (None, principal.technician):
            raise HTTPException(403, "your token acts only for technician " + principal.technician)
        body = body.model_copy(update={"technician": principal.technician})
    if principal.role < Role.ops:
        if body.technician is None:
            raise HTTPException(422, "name the technician who is acting ('technician')")
        if body.command in commands.OPS_ACTIONS:
            raise HTTPException(403, f"'{body.command}' needs the ops role")
    word = body.command.upper()
    if body.command in commands.OPS_ACTIONS:
        command = commands.Command(word, body.command, ticket_id, body.note, None)
    else:
        code = body.closure_code.upper() + " " if body.closure_code else ""
        try:
            command = commands.parse(f"{word} {ticket_id} {code}{body.note}")
        except commands.NotUnderstood as problem:
            raise HTTPException(422, str(problem)) from problem
    now = console.clock.now()
    with console.sessions.begin() as session:
        outcome = commands.run(
            session,
            command,
            now,
            technician_id=body.technician,
            redispatch=Ticketing(console.config.settings.ticketing),
        )
        if outcome.changed:
            who, note, closure = actor(principal, "api"), body.note, body.closure_code
            record_command(session, ticket_id, body.command, outcome, who, now, note, closure)
    if outcome.refused in _STATUS_OF:
        raise HTTPException(_STATUS_OF[outcome.refused], outcome.reply)
    return CommandResult(
        ticket=ticket_id, changed=outcome.changed, status=outcome.status, reply=outcome.reply
    )


@router.get("/dispatch/queue")
def dispatch_queue(db: Db, _: Viewer) -> list[QueuedTicketOut]:
    """Tickets waiting for a person: nobody eligible, or nobody acknowledged."""
    return [QueuedTicketOut(**vars(t)) for t in reports.dispatcher_queue(SqlTicketStore(db))]


@router.get("/closures")
def closures(
    db: Db,
    _: Viewer,
    console: ConsoleDep,
    days: Annotated[int, Query(ge=1, le=3660, description="look back this many days")] = 30,
) -> list[RuleClosuresOut]:
    """How each rule's tickets ended, noisiest first (no fault found, cleared by itself)."""
    since = console.clock.now() - timedelta(days=days)
    return [
        RuleClosuresOut(rule=r.rule, total=r.total, by_code=r.by_code, noise_ratio=r.noise_ratio)
        for r in reports.closures_per_rule(SqlTicketStore(db), since)
    ]
