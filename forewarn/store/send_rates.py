"""The senders' token buckets (``sender_buckets``), shared by every sender process.

:func:`take` runs inside the sender's claim transaction: it locks the sender's row (``FOR
UPDATE`` on PostgreSQL; SQLite's writers are serialised by ``BEGIN IMMEDIATE``), refills
it for the time that passed and takes what it grants, so two senders never spend the
same token. See :mod:`forewarn.notifier.rates`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from forewarn.notifier.rates import SendRate, grant
from forewarn.store.models import Base


class SenderBucket(Base):
    """What one sender (a number, an API key) may still send, as of ``updated_at``."""

    __tablename__ = "sender_buckets"
    sender: Mapped[str] = mapped_column(String(160), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


def take(session: Session, rate: SendRate, want: int, now: datetime) -> int:
    """Take up to ``want`` tokens from ``rate``'s bucket at ``now``; returns how many."""
    if want <= 0:
        return 0
    bucket = _locked(session, rate.sender)
    if bucket is None:
        try:
            with session.begin_nested():
                session.add(SenderBucket(sender=rate.sender, tokens=rate.burst, updated_at=now))
        except IntegrityError:
            pass  # another sender created it first: use theirs
        bucket = _locked(session, rate.sender)
        assert bucket is not None
    granted, left = grant(bucket.tokens, bucket.updated_at, now, rate, want)
    bucket.tokens = left
    bucket.updated_at = max(now, bucket.updated_at)
    return granted


def give_back(session: Session, rate: SendRate, count: int) -> None:
    """Return tokens taken for messages that were not claimed after all."""
    if count <= 0:
        return
    bucket = _locked(session, rate.sender)
    if bucket is not None:
        bucket.tokens = min(rate.burst, bucket.tokens + count)


def _locked(session: Session, sender: str) -> SenderBucket | None:
    return session.scalar(
        select(SenderBucket)
        .where(SenderBucket.sender == sender)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
