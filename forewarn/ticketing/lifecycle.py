"""The ticket lifecycle as a pure state machine: a status and an action give the next status.

::

    open ──assign──▶ assigned ──accept──▶ accepted ──depart──▶ en_route ──arrive──▶ on_site
      ▲                 │ ▲                                                           │
      │              decline│ reassign (escalation)                            resolve / no_fault
      │                 ▼ │                                                           ▼
      │             declined ──assign──▶ assigned        resolved | no_fault_found ──close──▶ closed
      │                                                          │
      └──────────────────────────── reopen (recurrence) ◀────────┘ (also from closed)

    await_parts (DONE PARTS): assigned / accepted / en_route / on_site ──▶ awaiting_parts,
    still holding the episode; parts_arrived ──▶ open, and dispatch plans the return visit.
    escalate: open / assigned / accepted / declined ──▶ escalated (it needs a person);
    from escalated a person may assign, resolve, close or cancel it.
    cancel: from any working status to cancelled (ops, or the alert cleared before work began)

The same machine serves repair work orders and delay cases: a delay case never visits the
technician states; it is resolved straight from ``open`` (delivered) or goes to a person
(``escalate``: a carrier exception that does not clear, an order long past its promise),
who resolves or cancels it like any ticket. :mod:`forewarn.ticketing.transitions` records
every transition as a ``ticket_events`` row; this module only decides.
"""

from __future__ import annotations

from typing import Literal

Status = Literal[
    "open",
    "assigned",
    "accepted",
    "declined",
    "escalated",
    "en_route",
    "on_site",
    "awaiting_parts",
    "resolved",
    "no_fault_found",
    "closed",
    "cancelled",
]
Action = Literal[
    "assign",
    "reassign",
    "accept",
    "decline",
    "requeue",
    "escalate",
    "depart",
    "arrive",
    "resolve",
    "no_fault",
    "await_parts",
    "parts_arrived",
    "close",
    "cancel",
    "reopen",
]

WORKING: tuple[Status, ...] = (
    "open",
    "assigned",
    "accepted",
    "declined",
    "escalated",
    "en_route",
    "on_site",
    "awaiting_parts",
)
"""Statuses in which the ticket holds its fault episode (``open_fingerprint`` is set); a
ticket waiting for parts still does: the fault is not fixed, and a new alert joins it."""
NOT_STARTED: tuple[Status, ...] = ("open", "assigned", "accepted", "declined", "escalated")
"""Nobody is on the way yet: a cleared alert may still close the ticket without a visit."""
DONE: tuple[Status, ...] = ("resolved", "no_fault_found", "closed", "cancelled")

TRANSITIONS: dict[str, tuple[tuple[Status, ...], Status]] = {
    # action: (the statuses it is allowed from, the status it leads to)
    "assign": (("open", "declined", "escalated"), "assigned"),
    "reassign": (("assigned",), "assigned"),
    "accept": (("assigned",), "accepted"),
    "decline": (("assigned", "accepted"), "declined"),
    # Declined and nobody else is eligible: back to the dispatcher queue.
    "requeue": (("declined",), "open"),
    # Forewarn cannot settle it by itself: a person must (the dispatcher queue lists it).
    "escalate": (("open", "assigned", "accepted", "declined"), "escalated"),
    # Leaving without an explicit ACK still means the technician has the job.
    "depart": (("assigned", "accepted"), "en_route"),
    "arrive": (("assigned", "accepted", "en_route"), "on_site"),
    # DONE without the intermediate steps is common in the field; delay cases resolve
    # straight from open, or from escalated when a person settled them.
    "resolve": (("open", "assigned", "accepted", "escalated", "en_route", "on_site"), "resolved"),
    "no_fault": (("assigned", "accepted", "en_route", "on_site"), "no_fault_found"),
    # The visit ended without a fix: a part must be ordered. The ticket stays open for the
    # return visit, which is planned when the parts are in.
    "await_parts": (("assigned", "accepted", "en_route", "on_site"), "awaiting_parts"),
    "parts_arrived": (("awaiting_parts",), "open"),
    "close": (("resolved", "no_fault_found", *NOT_STARTED), "closed"),
    "cancel": (WORKING, "cancelled"),
    "reopen": (("resolved", "no_fault_found", "closed"), "open"),
}

ACTIONS: tuple[str, ...] = tuple(TRANSITIONS)

CLOSURE_CODES = ("fixed", "no_fault_found", "customer_cause", "parts_needed")
"""What a technician may report when closing a job."""
SYSTEM_CLOSURE_CODES = ("cleared_before_visit", "cancelled")
"""Closure codes forewarn records by itself (the alert cleared; ops cancelled)."""


class IllegalTransition(ValueError):
    """The action is not allowed from the ticket's current status."""

    def __init__(self, status: str, action: str) -> None:
        allowed = TRANSITIONS[action][0] if action in TRANSITIONS else ()
        if allowed:
            hint = f"it is allowed only from {', '.join(allowed)}"
        else:
            hint = f"known actions are {', '.join(ACTIONS)}"
        super().__init__(f"cannot {action} a ticket that is {status}: {hint}")
        self.status = status
        self.action = action


def transition(status: str, action: str) -> Status:
    """The status after ``action``; raises :class:`IllegalTransition` if it is not allowed."""
    allowed, to = TRANSITIONS.get(action, ((), "open"))
    if status not in allowed:
        raise IllegalTransition(status, action)
    return to


def allowed_actions(status: str) -> tuple[str, ...]:
    """Every action the status allows, in lifecycle order (for the console's buttons)."""
    return tuple(action for action, (allowed, _) in TRANSITIONS.items() if status in allowed)
