"""The message events forewarn sends, and the part each plays in the contact policy.

An event is a template directory under ``templates/messages/``. What the policy needs to
know about each is here, in one place:

* proactive notices (a new issue the customer did not report) count against the
  contact budget, wait a short merge window, and oblige a follow-up;
* follow-ups (an update, a new ETA, the all-clear, an apology) answer a proactive notice
  and are never held by the budget: they are what the customer is waiting for;
* replies answer a message the customer just sent, by SMS only.
"""

from __future__ import annotations

PROACTIVE = frozenset({"fault_notice", "delay_notice", "self_service_offer"})
"""New-issue notices to customers: budgeted, merged, followed up."""

STANDALONE = frozenset({"self_service_offer"})
"""Proactive notices never merged into a digest: the steps and the answer they ask for
are the point of the message."""

MERGED = "issues_digest"
"""The event a merged message is rendered with; its context lists ``issues``."""

FOLLOW_UPS = frozenset(
    {
        "technician_assigned",
        "ticket_resolved",
        "delivered_after_delay",
        "status_update",
        "self_service_result",
        "conversation_reply",
    }
)
"""Customer messages that answer a proactive notice (the no-orphan promise): who is
coming and when, the all-clear (or the apology when nothing was wrong), the delivery
after a delay, an update written by ops, the outcome of self-service steps, a person's
answer in a conversation about the ticket."""

SURVEY = "satisfaction_survey"
"""The satisfaction survey; a digit 1-5 replied after it is its score."""

REPLIES = frozenset({"reply_help", "reply_stop", "reply_start", "reply_human", "reply_csat"})
"""Answers to inbound SMS: rendered in the customer's language, SMS only."""

TECHNICIAN = frozenset({"work_order", "job_cancelled"})
STAFF = frozenset({"dispatcher_alert", "conversation_escalated"})
CARE = frozenset({"maintenance_notice"})
"""Customer notices about no ticket (planned maintenance): not budgeted or merged."""
