"""The console's own tables.

* ``sessions``: a signed-in browser. The cookie holds a random session id; the row keeps
  only its SHA-256, so a copy of the database cannot be replayed as a cookie. The row
  also keeps the SHA-256 of the token that opened it, and every request checks that the
  token is still configured: withdrawing a token ends its sessions. Logout sets
  ``revoked_at``; ``expires_at`` ends it anyway. ``csrf`` is the value console forms
  must send back (a forged cross-site POST cannot read it).
* ``customer_contacts``: a customer reached out to us (an inbound message, or a call or
  chat recorded through ``POST /api/contacts``). The KPIs compare the first contact of
  an episode with forewarn's first notice: the proactive rate.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from forewarn.store.models import Base


class ConsoleSession(Base):
    __tablename__ = "sessions"
    id_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 (hex) of the session id in the cookie."""
    token_digest: Mapped[str] = mapped_column(String(64), index=True)
    """SHA-256 (hex) of the access token that opened the session."""
    role: Mapped[str] = mapped_column(String(16))
    technician_id: Mapped[str | None] = mapped_column(String(128))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]
    client: Mapped[str] = mapped_column(String(64), default="")
    """The address it was opened from (for the operator; not checked)."""


class CustomerContact(Base):
    __tablename__ = "customer_contacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    channel: Mapped[str] = mapped_column(String(32))
    """``sms`` (an inbound message), ``phone``, ``chat``, ``email``, ``other``."""
    source: Mapped[str] = mapped_column(String(32))
    """``inbound`` (recorded by forewarn) or ``api``."""
    device_id: Mapped[str | None] = mapped_column(String(128))
    ticket_id: Mapped[int | None] = mapped_column(Integer, index=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    """The call centre's id: recording the same call twice changes nothing."""
    note: Mapped[str] = mapped_column(Text, default="")
