"""Rule sets as versioned rows: every version kept, one pointer to the current one.

* ``rule_versions``: the whole ``monitors`` section of each version (as
  :func:`forewarn.config.rules.rules_data`), who saved it, when, why, and its diff against
  the version before it;
* ``rule_set``: one row (``id = 1``) naming the current version and the digest of the
  file's rules when they were last provisioned. Every process polls this row to reload
  (:mod:`forewarn.rulebook`); changing it is what "saving" means.

Writers lock the pointer row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one
writer), so two saves in flight become two versions one after the other, and a save
based on a version that is no longer current is refused (:class:`StaleBase`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from forewarn.config.rules import diff_rules
from forewarn.store.models import Base

SOURCES = ("file", "console", "api", "rollback")


class RuleVersion(Base):
    __tablename__ = "rule_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """The version number (1, 2, 3...)."""
    created_at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16))
    """``file`` (provisioned at start), ``console``, ``api`` or ``rollback``."""
    comment: Mapped[str] = mapped_column(Text, default="")
    rules: Mapped[list[Any]] = mapped_column()
    """The ``monitors`` section of this version, as the file would write it."""
    diff: Mapped[list[Any]] = mapped_column()
    """What changed against the version before (:func:`forewarn.config.rules.diff_rules`)."""
    file_digest: Mapped[str | None] = mapped_column(String(64))
    """For a version from the file: the digest of the file's rules it came from."""
    restored_from: Mapped[int | None] = mapped_column(Integer)
    """For a rollback: the version whose rules it restored."""


class RuleSet(Base):
    __tablename__ = "rule_set"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int | None] = mapped_column(ForeignKey("rule_versions.id"))
    file_digest: Mapped[str | None] = mapped_column(String(64))
    """Digest of the file's ``monitors`` when they were last provisioned."""
    changed_at: Mapped[datetime | None]


class StaleBase(Exception):
    """The edit was made on a version that is no longer current (someone saved since)."""


class NothingChanged(Exception):
    """The rules saved are the current version's rules."""


@dataclass(frozen=True)
class Saved:
    version: int
    diff: list[dict[str, Any]]


def pointer(session: Session, *, lock: bool = False) -> RuleSet:
    """The ``rule_set`` row, created if missing; ``lock``: held until the transaction ends."""
    query = select(RuleSet).where(RuleSet.id == 1)
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        try:
            with session.begin_nested():
                session.add(RuleSet(id=1))
        except IntegrityError:
            pass  # another process made it meanwhile
        row = session.scalar(query)
        assert row is not None
    return row


def current_number(session: Session) -> int | None:
    """The current version number: what every process polls (one primary-key read)."""
    return session.scalar(select(RuleSet.version).where(RuleSet.id == 1))


def pointer_state(session: Session) -> tuple[int | None, datetime | None]:
    """The current version number and when it became current."""
    found = session.execute(
        select(RuleSet.version, RuleSet.changed_at).where(RuleSet.id == 1)
    ).first()
    return (found[0], found[1]) if found is not None else (None, None)


def version(session: Session, number: int) -> RuleVersion | None:
    return session.get(RuleVersion, number)


def current(session: Session) -> RuleVersion | None:
    number = current_number(session)
    return None if number is None else session.get(RuleVersion, number)


def history(session: Session, *, offset: int = 0, limit: int = 50) -> tuple[int, list[RuleVersion]]:
    """How many versions exist, and one page of them, newest first."""
    total = session.scalar(select(func.count()).select_from(RuleVersion)) or 0
    rows = session.scalars(
        select(RuleVersion).order_by(RuleVersion.id.desc()).offset(offset).limit(limit)
    ).all()
    return total, list(rows)


def save(
    session: Session,
    rules: list[dict[str, Any]],
    *,
    author: str,
    source: str,
    comment: str,
    now: datetime,
    base: int | None = None,
    file_digest: str | None = None,
    restored_from: int | None = None,
) -> Saved:
    """Make ``rules`` the current version (a new row) in ``session``'s transaction.

    ``base``: the version the edit started from; if another version became current since,
    :class:`StaleBase` is raised and nothing is written. Raises :class:`NothingChanged`
    when ``rules`` equal the current version's.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown rule version source {source!r}")
    row = pointer(session, lock=True)
    if base is not None and row.version is not None and base != row.version:
        raise StaleBase(f"version {row.version} was saved after version {base}: reload and edit it")
    previous = session.get(RuleVersion, row.version) if row.version is not None else None
    old_rules = list(previous.rules) if previous is not None else []
    diff = diff_rules(old_rules, rules)
    if previous is not None and not diff and old_rules == rules:
        raise NothingChanged(f"the rules are those of version {previous.id}")
    added = RuleVersion(
        created_at=now,
        author=author[:128],
        source=source,
        comment=comment,
        rules=rules,
        diff=diff,
        file_digest=file_digest,
        restored_from=restored_from,
    )
    session.add(added)
    session.flush()
    row.version = added.id
    row.changed_at = now
    if file_digest is not None:
        row.file_digest = file_digest
    return Saved(added.id, diff)
