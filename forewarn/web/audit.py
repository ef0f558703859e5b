"""The audit trail: ``GET /audit`` (a console page) and ``GET /api/audit`` (viewer).

Every ops action is a row (:mod:`forewarn.store.audit`): who, when, what and why. Both
list them newest first, filtered by kind (``rules`` for every rule change, or one kind
such as ``silence.create``) and by actor (a part of the name), one page at a time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from forewarn.store import audit
from forewarn.web.dependencies import ApiViewer, ConsoleDep, Db, PageViewer
from forewarn.web.pages import CONSOLE_TAG, Pager

router = APIRouter()

Kind = Annotated[
    str | None,
    Query(pattern=r"^[a-z_]{1,32}(\.[a-z_]{1,32})?$", description="a kind or a group (rules)"),
]
Actor = Annotated[str | None, Query(max_length=128, description="part of the actor's name")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=500)]


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    kind: str
    subject: str
    summary: str
    """What was done."""
    reason: str
    """Why, as the person wrote it."""
    detail: dict[str, Any]


class AuditList(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[AuditOut]


def audit_list(db: Db, kind: str | None, who: str | None, offset: int, limit: int) -> AuditList:
    total, rows = audit.entries(db, kind=kind, actor=who, offset=offset, limit=limit)
    return AuditList(
        total=total,
        offset=offset,
        limit=limit,
        items=[AuditOut(**{**vars(r), "detail": dict(r.detail)}) for r in rows],
    )


@router.get("/api/audit", tags=["audit"])
def audit_api(
    db: Db,
    _: ApiViewer,
    kind: Kind = None,
    actor: Actor = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> AuditList:
    """Every ops action, newest first: who, when, what and why."""
    return audit_list(db, kind, actor, offset, limit)


@router.get("/audit", response_class=HTMLResponse, tags=[CONSOLE_TAG], include_in_schema=False)
def audit_page(
    request: Request,
    console: ConsoleDep,
    principal: PageViewer,
    db: Db,
    kind: Kind = None,
    actor: Actor = None,
    offset: Offset = 0,
) -> HTMLResponse:
    """The audit trail, filtered by kind and actor, 50 rows a page."""
    limit = 50
    found = audit_list(db, kind or None, (actor or "").strip() or None, offset, limit)
    params = {k: v for k, v in (("kind", kind), ("actor", actor)) if v}

    def url(at: int) -> str:
        from urllib.parse import urlencode

        query = urlencode({**params, **({"offset": at} if at else {})})
        return "/audit" + (f"?{query}" if query else "")

    shown = len(found.items)
    pager = Pager(
        first=offset + 1 if shown else 0,
        last=offset + shown,
        total=found.total,
        previous_url=url(max(0, offset - limit)) if offset > 0 else None,
        next_url=url(offset + limit) if offset + shown < found.total else None,
    )
    return console.pages.render(
        request,
        "audit.html",
        {
            "entries": found.items,
            "paging": pager,
            "kinds": audit.KINDS,
            "groups": sorted({k.split(".")[0] for k in audit.KINDS}),
            "kind": kind or "",
            "actor": actor or "",
        },
        now=console.clock.now(),
        principal=principal,
    )
