"""Rules as versioned data over the API: read the current set and its history, save a new
version, roll back to any earlier one.

* ``GET /api/rules`` (viewer): the current version with its rules;
* ``GET /api/rules/versions`` and ``/api/rules/versions/{n}`` (viewer): the history, each
  version with author, time, comment and diff against the one before;
* ``PUT /api/rules`` (ops): a whole new ``monitors`` section; ``PUT /api/rules/{id}``
  (ops): one rule replaced (or added);
* ``POST /api/rules/versions/{n}/rollback`` (ops): version ``n``'s rules as a new version.

Every save is validated by the schema ``forewarn check`` uses, together with the rest of
the file (422 lists each problem with its key path, e.g. ``monitors[0].above``), written
with its audit row in one transaction, and taken up by this process at once (and by every
other within ``rules.reload_interval``): the open alerts of the rules it changed are judged
again under the new levels (:mod:`forewarn.monitors.reevaluate`). A save names the version
it was based on (``base_version``); if another was saved since, it is refused (409) rather
than silently undoing that one.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from forewarn.config.loading import RulesInvalid, validate_monitors
from forewarn.config.rules import describe_diff, rules_data
from forewarn.store import audit, rulesets
from forewarn.store.rulesets import RuleVersion
from forewarn.web.auth import Principal, Role, actor
from forewarn.web.console import MAX_ID, Console
from forewarn.web.dependencies import ConsoleDep, Db, api_access

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["rules"])
Ops = Annotated[Principal, Depends(api_access(Role.ops))]
Viewer = Annotated[Principal, Depends(api_access(Role.viewer))]
MAX_COMMENT = 500


class VersionOut(BaseModel):
    version: int
    created_at: datetime
    author: str
    source: str
    """``file``, ``console``, ``api`` or ``rollback``."""
    comment: str
    changes: list[str]
    """The diff against the version before, one line per change."""
    diff: list[dict[str, Any]]
    restored_from: int | None
    current: bool


class VersionDetail(VersionOut):
    rules: list[dict[str, Any]]
    """The ``monitors`` section of this version, as the file would write it."""


class VersionList(BaseModel):
    total: int
    current: int | None
    running: int
    """The version this process runs (equal to ``current`` once it has reloaded)."""
    items: list[VersionOut]


class SaveRules(BaseModel):
    rules: list[dict[str, Any]]
    comment: str = Field(min_length=1, max_length=MAX_COMMENT)
    """Why: goes into the version and the audit trail."""
    base_version: int | None = None
    """The version this edit started from; refused (409) if another was saved since."""


class SaveRule(BaseModel):
    rule: dict[str, Any]
    comment: str = Field(min_length=1, max_length=MAX_COMMENT)
    base_version: int | None = None


class Rollback(BaseModel):
    comment: str = Field(min_length=1, max_length=MAX_COMMENT)


class SavedOut(BaseModel):
    version: int
    changes: list[str]
    reevaluated: int
    """Open alerts moved at once by the change (cancelled, resolved, fired)."""


class Override(BaseModel):
    """Saving although the draft's backtest exceeds the budget guard."""

    exceeded: list[str]
    """What was exceeded, as the guard said it."""
    backtest: dict[str, Any] = Field(default_factory=dict)


def version_out(row: RuleVersion, current: int | None) -> VersionOut:
    return VersionOut(
        version=row.id,
        created_at=row.created_at,
        author=row.author,
        source=row.source,
        comment=row.comment,
        changes=describe_diff(row.diff),
        diff=list(row.diff),
        restored_from=row.restored_from,
        current=row.id == current,
    )


def commit(
    console: Console,
    monitors: object,
    *,
    who: str,
    source: str,
    comment: str,
    base: int | None,
    restored_from: int | None = None,
    override: Override | None = None,
) -> SavedOut:
    """Validate ``monitors`` (the whole section, as data) and make it the current version.

    Raises :class:`RulesInvalid` (nothing written), :class:`rulesets.StaleBase` or
    :class:`rulesets.NothingChanged`. After the commit this process runs the new version
    and the open alerts of the changed rules are judged again under it."""
    book = console.rules
    assert book is not None
    validated = validate_monitors(book.config.settings, monitors, "draft")
    data = rules_data(validated)
    now = console.clock.now()
    with console.sessions.begin() as session:
        previous = rulesets.current_number(session)
        saved = rulesets.save(
            session,
            data,
            author=who,
            source=source,
            comment=comment,
            now=now,
            base=base,
            restored_from=restored_from,
        )
        lines = describe_diff(saved.diff)
        what = f"rolled back to version {restored_from}" if restored_from else "saved"
        audit.record(
            session,
            at=now,
            actor=who,
            kind="rules.rollback" if restored_from else "rules.change",
            subject="rules",
            summary=f"version {saved.version} {what}: " + ("; ".join(lines) or "rules reordered"),
            reason=comment,
            detail={"version": saved.version, "previous": previous, "diff": saved.diff},
        )
        if override is not None:
            audit.record(
                session,
                at=now,
                actor=who,
                kind="rules.budget_override",
                subject="rules",
                summary=f"version {saved.version} saved over the budget guard: "
                + "; ".join(override.exceeded),
                reason=comment,
                detail={
                    "version": saved.version,
                    "exceeded": override.exceeded,
                    **override.backtest,
                },
            )
    moved = 0
    with console.sessions() as session:
        before = book.read(session, previous) if previous is not None else None
    book.refresh()
    with console.sessions() as session:
        after = book.read(session, saved.version)
    if console.monitors is not None and before is not None and after is not None:
        cause = {"rule_change": saved.version, "from_version": previous, "by": who}
        moved = console.monitors.reevaluate(before, after, now, cause)
    log.info("rules: version %s saved by %s (%d change(s))", saved.version, who, len(lines))
    return SavedOut(version=saved.version, changes=lines, reevaluated=moved)


def commit_or_answer(console: Console, monitors: object, **options: Any) -> SavedOut | JSONResponse:
    """:func:`commit`, with its refusals as the API answers them."""
    try:
        return commit(console, monitors, **options)
    except RulesInvalid as invalid:
        return JSONResponse(
            {
                "detail": str(invalid),
                "problems": [{"path": p.path, "message": p.message} for p in invalid.problems],
            },
            status_code=422,
        )
    except (rulesets.StaleBase, rulesets.NothingChanged) as refused:
        raise HTTPException(409, str(refused)) from refused


@router.get("/rules")
def current_rules(db: Db, _: Viewer, console: ConsoleDep) -> VersionDetail:
    """The current rule-set version and its rules."""
    row = rulesets.current(db)
    if row is None:
        raise HTTPException(404, "no rule version yet")
    return VersionDetail(**version_out(row, row.id).model_dump(), rules=list(row.rules))


@router.get("/rules/versions")
def versions(
    db: Db,
    _: Viewer,
    console: ConsoleDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> VersionList:
    """Every version, newest first, with author, time, comment and diff."""
    current = rulesets.current_number(db)
    total, rows = rulesets.history(db, offset=offset, limit=limit)
    return VersionList(
        total=total,
        current=current,
        running=console.rules.number if console.rules is not None else 0,
        items=[version_out(r, current) for r in rows],
    )


@router.get("/rules/versions/{number}")
def one_version(number: int, db: Db, _: Viewer) -> VersionDetail:
    row = rulesets.version(db, number) if 0 < number <= MAX_ID else None
    if row is None:
        raise HTTPException(404, f"rule version {number} not found")
    current = rulesets.current_number(db)
    return VersionDetail(**version_out(row, current).model_dump(), rules=list(row.rules))


@router.put("/rules", status_code=201, response_model=SavedOut)
def save_rules(body: SaveRules, principal: Ops, console: ConsoleDep) -> SavedOut | JSONResponse:
    """Save a whole ``monitors`` section as the new current version."""
    return commit_or_answer(
        console,
        body.rules,
        who=actor(principal, "api"),
        source="api",
        comment=body.comment,
        base=body.base_version,
    )


@router.put("/rules/{rule_id}", status_code=201, response_model=SavedOut)
def save_rule(
    rule_id: str, body: SaveRule, principal: Ops, console: ConsoleDep
) -> SavedOut | JSONResponse:
    """Replace one rule (or add it), keeping every other rule of the current version."""
    rule = {**body.rule, "id": body.rule.get("id", rule_id)}
    if rule["id"] != rule_id:
        raise HTTPException(422, f"the rule's id {rule['id']!r} is not {rule_id!r}")
    with console.sessions() as session:
        row = rulesets.current(session)
        current = list(row.rules) if row is not None else []
    replaced = [rule if r.get("id") == rule_id else r for r in current]
    if not any(r.get("id") == rule_id for r in current):
        replaced.append(rule)
    return commit_or_answer(
        console,
        replaced,
        who=actor(principal, "api"),
        source="api",
        comment=body.comment,
        base=body.base_version,
    )


@router.post("/rules/versions/{number}/rollback", status_code=201, response_model=SavedOut)
def rollback(
    number: int, body: Rollback, principal: Ops, console: ConsoleDep
) -> SavedOut | JSONResponse:
    """Make version ``number``'s rules current again, as a new version."""
    return rollback_to(console, number, actor(principal, "api"), body.comment)


def rollback_to(console: Console, number: int, who: str, comment: str) -> SavedOut | JSONResponse:
    with console.sessions() as session:
        row = rulesets.version(session, number) if 0 < number <= MAX_ID else None
        rules = list(row.rules) if row is not None else None
    if rules is None:
        raise HTTPException(404, f"rule version {number} not found")
    return commit_or_answer(
        console,
        rules,
        who=who,
        source="rollback",
        comment=comment,
        base=None,
        restored_from=number,
    )
