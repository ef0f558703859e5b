"""Signed, expiring links that confirm a visit window from an email (pure).

A link carries the window's id and an expiry, signed with HMAC-SHA256 under
``FOREWARN_LINK_SECRET``: ``/visit/<id>.<expires>.<signature>``. Anyone holding the email
can confirm that one window until it expires, and nothing else: the id is not a secret,
the signature is. Opening the link shows the window and a button (mail scanners open
links; only the button's POST confirms).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

PATH = "/visit"


class LinkProblem(ValueError):
    """The link is malformed, forged or expired; the message says which, for the page."""


def sign(appointment_id: int, expires: datetime, secret: str) -> str:
    """The token for ``appointment_id``, valid until ``expires``."""
    stamp = int(expires.timestamp())
    return f"{appointment_id}.{stamp}.{_mac(appointment_id, stamp, secret)}"


def url(public_url: str, appointment_id: int, expires: datetime, secret: str) -> str:
    return f"{public_url.rstrip('/')}{PATH}/{sign(appointment_id, expires, secret)}"


def verify(token: str, secret: str, now: datetime) -> int:
    """The appointment id a valid token names; raises :class:`LinkProblem`."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise LinkProblem("this link is not a visit link we sent")
    appointment_id, stamp = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(parts[2], _mac(appointment_id, stamp, secret)):
        raise LinkProblem("this link is not a visit link we sent")
    if now >= datetime.fromtimestamp(stamp, UTC):
        raise LinkProblem("this link has expired")
    return appointment_id


def _mac(appointment_id: int, stamp: int, secret: str) -> str:
    message = f"visit:{appointment_id}:{stamp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]
