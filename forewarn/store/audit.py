"""The audit trail: every ops action as a row with who, when, what and why.

Each action writes its row in the transaction that does the action (:func:`record`), so an
action that rolls back leaves no audit row and no action goes unrecorded. The console's
``/audit`` page and ``GET /api/audit`` read them (:func:`entries`).

Kinds (``kind``), each named ``<thing>.<verb>``:

* ``rules.change``, ``rules.rollback``, ``rules.provision`` (the file changed),
  ``rules.budget_override`` (saved although the backtest exceeded the budget guard);
* ``silence.create``, ``silence.expire``; ``alert.acknowledge``;
* ``ticket.assign``, ``ticket.command`` (close, cancel, resolve... by ops or from the
  console), ``ticket.status_update``; ``follow_up.close``;
* ``notification.resend``, ``quarantine.drop``, ``quarantine.release``;
* ``conversation.reply``, ``conversation.take``, ``conversation.move``,
  ``conversation.close`` (the reply's text stays with its message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from forewarn.store.models import Base

KINDS = (
    "rules.change",
    "rules.rollback",
    "rules.provision",
    "rules.budget_override",
    "silence.create",
    "silence.expire",
    "alert.acknowledge",
    "ticket.assign",
    "ticket.command",
    "ticket.status_update",
    "follow_up.close",
    "notification.resend",
    "quarantine.drop",
    "quarantine.release",
    "conversation.reply",
    "conversation.take",
    "conversation.move",
    "conversation.close",
)
MAX_TEXT = 2000


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    """Who: the token's name (``ops:alice``), its role (``ops (console)``), or ``file``."""
    kind: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    """What it was done to: ``rules``, ``alert:12``, ``ticket:7``, ``silence:<id>``..."""
    summary: Mapped[str] = mapped_column(Text)
    """What was done, in one line."""
    reason: Mapped[str] = mapped_column(Text, default="")
    """Why: the comment or note the person gave (may be empty)."""
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The specifics: a rule diff, the exceeded budget, a closure code."""


@dataclass(frozen=True)
class Audited:
    """One audit row as read back."""

    id: int
    at: datetime
    actor: str
    kind: str
    subject: str
    summary: str
    reason: str
    detail: Mapping[str, Any]


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    kind: str,
    subject: str,
    summary: str,
    reason: str = "",
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Add one audit row to ``session``'s transaction (it commits with the action)."""
    if kind not in KINDS:
        raise ValueError(f"unknown audit kind {kind!r}")
    session.add(
        AuditEntry(
            at=at,
            actor=actor[:128],
            kind=kind,
            subject=subject[:200],
            summary=summary[:MAX_TEXT],
            reason=reason[:MAX_TEXT],
            detail=dict(detail or {}),
        )
    )


def entries(
    session: Session,
    *,
    kind: str | None = None,
    actor: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[Audited]]:
    """The total matching and one page of them, newest first. ``kind`` may name a group
    (``rules`` matches every ``rules.*``); ``actor`` matches a part of the name."""
    query = select(AuditEntry)
    if kind:
        query = query.where(
            AuditEntry.kind == kind if "." in kind else AuditEntry.kind.startswith(f"{kind}.")
        )
    if actor:
        query = query.where(func.lower(AuditEntry.actor).contains(actor.lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).offset(offset).limit(limit)
    ).all()
    return total, [
        Audited(r.id, r.at, r.actor, r.kind, r.subject, r.summary, r.reason, r.detail) for r in rows
    ]
