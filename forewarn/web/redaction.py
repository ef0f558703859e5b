"""What a viewer or technician may read of a message body: no phone, email or street address.

Ops see a message as it was sent (they answer the customer about it). Everyone else sees
it with phone numbers and emails masked (:func:`~forewarn.notifier.privacy.scrub`) and
the street addresses forewarn knows for that message (its ticket's site, the recipient
customer's sites) replaced, so a read-only token cannot be used to harvest customers'
homes and numbers.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from forewarn.notifier.privacy import scrub
from forewarn.store.models import Device, Site, Ticket
from forewarn.web.auth import Principal, Role

HIDDEN_ADDRESS = "[address hidden]"
_SHORTEST_PART = 6
"""A comma-separated part of an address shorter than this ("Lisboa") is left alone."""


def sees_bodies_in_full(principal: Principal) -> bool:
    """Whether ``principal`` reads message bodies as sent (ops only)."""
    return principal.role >= Role.ops


def known_addresses(session: Session, ticket_id: int | None, customer_id: str | None) -> list[str]:
    """Street addresses a message about ``ticket_id`` to ``customer_id`` may quote."""
    wanted = []
    if customer_id is not None:
        wanted.append(Site.customer_id == customer_id)
    if ticket_id is not None:
        ticket = session.get(Ticket, ticket_id)
        if ticket is not None and ticket.device_id is not None:
            wanted.append(
                Site.id
                == select(Device.site_id).where(Device.id == ticket.device_id).scalar_subquery()
            )
        if ticket is not None and ticket.customer_id is not None:
            wanted.append(Site.customer_id == ticket.customer_id)
    if not wanted:
        return []
    return [a for a in session.scalars(select(Site.address).where(or_(*wanted))) if a]


def redact(text: str, addresses: list[str]) -> str:
    """``text`` with numbers and emails masked and the ``addresses`` (and their street
    parts) hidden."""
    pieces = set()
    for address in addresses:
        pieces.add(address.strip())
        pieces.update(p.strip() for p in address.split(",") if len(p.strip()) >= _SHORTEST_PART)
    # Longest first, so the whole address goes before its street part.
    for piece in sorted(pieces, key=len, reverse=True):
        if piece:
            text = text.replace(piece, HIDDEN_ADDRESS)
    return scrub(text)
