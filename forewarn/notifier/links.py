"""Signed answer links in customer emails: an email customer answers with one click.

An SMS customer replies FIXED; an email customer cannot reply to a no-reply sender, so
the email carries one link per answer. A link names what it answers (``purpose`` and the
subject's id), the answer, and when it stops working, and is signed with HMAC-SHA256
under ``FOREWARN_LINK_SECRET``: nobody can make a link for another ticket or another
answer, and an old email cannot answer forever. Without the secret (or without
``web.public_url``) emails carry no links and say to reply by SMS or ask for a person.

The same signer serves any purpose (self-service answers, appointment confirmations).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

LINK_PATH = "/answer"


class BadLink(ValueError):
    """A link that was altered, signed under another secret, or has expired."""


@dataclass(frozen=True)
class Answer:
    purpose: str
    subject: int
    answer: str


@dataclass(frozen=True)
class LinkSigner:
    public_url: str
    secret: str

    def _mac(self, purpose: str, subject: int, answer: str, expires: int) -> str:
        message = f"{purpose}\x00{subject}\x00{answer}\x00{expires}".encode()
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()[:32]

    def link(self, purpose: str, subject: int, answer: str, expires: datetime) -> str:
        """The public URL that answers ``answer`` for ``purpose`` #``subject``."""
        until = int(expires.timestamp())
        mac = self._mac(purpose, subject, answer, until)
        base = self.public_url.rstrip("/")
        return (
            f"{base}{LINK_PATH}/{quote(purpose)}/{subject}/{quote(answer)}?until={until}&sig={mac}"
        )

    def verify(
        self, purpose: str, subject: int, answer: str, until: int, sig: str, now: datetime
    ) -> Answer:
        """The answer a link carries; raises :class:`BadLink` if forged or expired."""
        good = self._mac(purpose, subject, answer, until)
        if not hmac.compare_digest(good, sig):
            raise BadLink("this link is not valid (it was changed or is not ours)")
        if now >= datetime.fromtimestamp(until, UTC):
            raise BadLink("this link has expired")
        return Answer(purpose, subject, answer)
