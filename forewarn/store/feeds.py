"""The feeds' bookkeeping in SQL: files of a watched folder taken once per content, where
each polled HTTP feed stands, and the inputs quarantined with the reason.

The adapters in :mod:`forewarn.feeds` call these inside their own transaction; a database
race (two processes taking the same file) is translated here into :class:`FileTaken`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from forewarn.store.models import Quarantine
from forewarn.store.orders import FeedCursor, FeedFile

MAX_QUARANTINED_BYTES = 4096


class FileTaken(Exception):
    """Another process took this file (same feed, path and content) first."""


class Raced(Exception):
    """A concurrent writer stored the same order, event or alert first; the transaction
    was rolled back and may be run again (it then finds their rows)."""


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work whose unique-key race is raised as :class:`Raced`."""
    try:
        with sessions.begin() as session:
            yield session
    except IntegrityError as exc:
        raise Raced("a concurrent writer stored the same row first") from exc


def quarantine(
    session: Session, feed: str, origin: str, payload: bytes, reason: str, now: datetime
) -> None:
    """Keep an input that could not be taken (or was taken with a problem), with why."""
    session.add(
        Quarantine(
            received_at=now,
            source=f"feed:{feed}"[:32],
            origin=origin,
            payload=payload[:MAX_QUARANTINED_BYTES],
            reason=reason,
        )
    )


def file_seen(session: Session, feed: str, path: str, sha256: str) -> bool:
    """Whether this content of ``path`` was taken already."""
    found = session.scalar(
        select(FeedFile.id).where(
            FeedFile.feed == feed, FeedFile.path == path, FeedFile.sha256 == sha256
        )
    )
    return found is not None


def take_file(
    session: Session, feed: str, path: str, sha256: str, size: int, now: datetime
) -> FeedFile:
    """Claim this content of ``path`` for this transaction; raises :class:`FileTaken`
    (the transaction is then to be abandoned) if another process claimed it."""
    row = FeedFile(feed=feed, path=path, sha256=sha256, size=size, processed_at=now)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise FileTaken(path) from exc
    return row


def cursor(session: Session, feed: str, *, lock: bool = False) -> FeedCursor | None:
    """Where ``feed`` stands (validators, backoff), if it was ever polled."""
    return session.get(FeedCursor, feed, with_for_update=lock)


def cursor_for_update(session: Session, feed: str) -> FeedCursor:
    """``feed``'s cursor, locked until the transaction ends (created if new)."""
    row = cursor(session, feed, lock=True)
    if row is None:
        row = FeedCursor(feed=feed, failures=0)
        session.add(row)
    return row
