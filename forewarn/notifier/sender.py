"""Delivering the outbox: claim, render, send, record. The one place delivery errors land.

Claiming is a compare-and-set on the row (``status='queued'`` -> ``'sending'`` with a lease),
so several senders never send the same row; a sender killed mid-send leaves a row whose
lease expires and which another sender reclaims. On PostgreSQL the candidate rows are
picked with ``FOR UPDATE SKIP LOCKED`` so senders do not queue behind each other.

Providers have no idempotency key, so delivery is at-least-once: the row is marked sent in
its own short transaction right after the provider accepted it, keeping the window in
which a crash could cause a resend as small as possible.

:class:`SenderPool` runs several senders in one process, each on its own thread with its
own worker id. The threads stand apart exactly as processes do (each claims its own rows
by compare-and-set, renews each row's lease before sending it and records each outcome),
and they overlap the waits on the provider and the database, where a sender spends
its time.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from forewarn.clock import Clock
from forewarn.config.schema import NotificationSettings
from forewarn.notifier.channels import Channel, DeliveryError, Outbound, Receipt
from forewarn.notifier.events import MERGED, PROACTIVE, STANDALONE
from forewarn.notifier.held import recheck
from forewarn.notifier.policy import within_budget
from forewarn.notifier.preferences import is_opted_out, opt_out
from forewarn.notifier.privacy import mask_address, scrub
from forewarn.notifier.rates import SendRate
from forewarn.notifier.render import Rendered, Renderer, TemplateProblem
from forewarn.notifier.retry import Failure, not_in_quiet_hours, settle
from forewarn.store.models import Customer, DeliveryAttempt, Notification
from forewarn.store.send_rates import give_back
from forewarn.store.send_rates import take as take_tokens

log = logging.getLogger(__name__)

BUDGET_WINDOW = timedelta(days=1)
# Statuses a receipt can bring before the sender has recorded "sent": the provider's
# callback may overtake our own commit.
# A failed receipt may already have put the row back in the queue ("queued") or ended it.
_RECEIPTED = ("sent", "delivered", "undelivered", "bounced", "queued")


@dataclass(frozen=True)
class Claimed:
    id: int
    event: str
    channel: str
    address: str
    locale: str
    attempts: int
    recipient_role: str
    recipient_id: str
    context: dict[str, Any]
    critical: bool
    created_at: datetime


class Sender:
    """Sends due outbox rows through the channel for each medium."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        channels: Mapping[str, Channel],
        renderer: Renderer,
        clock: Clock,
        settings: NotificationSettings,
        worker_id: str,
        rng: random.Random | None = None,
        rates: Mapping[str, SendRate] | None = None,
    ) -> None:
        self._sessions = sessions
        self._channels = channels
        self._renderer = renderer
        self._clock = clock
        self._settings = settings
        self._worker = worker_id
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._rates = dict(rates or {})
        """Channel name -> the pace of its sender (a Twilio number, a SendGrid key)."""

    def run_once(self, limit: int = 50) -> int:
        """Claim up to ``limit`` due rows and try each once; returns how many were tried."""
        claimed = self._claim(limit)
        for row in claimed:
            self._deliver(row)
        return len(claimed)

    def drain(self, limit: int = 50) -> int:
        """Send until nothing is due (tests, the demo and the benchmark)."""
        total = 0
        while (count := self.run_once(limit)) > 0:
            total += count
        return total

    def _claim(self, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due rows per channel, critical first, each rate-limited
        channel only as many as its sender's bucket grants now
        (:mod:`forewarn.notifier.rates`)."""
        now = self._clock.now()
        lease_until = now + self._settings.lease
        due = or_(
            and_(Notification.status == "queued", Notification.next_attempt_at <= now),
            and_(Notification.status == "sending", Notification.lease_until < now),
        )
        with self._sessions.begin() as session:
            skip_locked = session.get_bind().dialect.name == "postgresql"

            def pick(*where: Any) -> list[int]:
                query = (
                    select(Notification.id)
                    .where(due, *where)
                    .order_by(Notification.critical.desc(), Notification.id)
                    .limit(limit)
                )
                if skip_locked:
                    query = query.with_for_update(skip_locked=True)
                return list(session.scalars(query))

            ids = pick(Notification.channel.not_in(list(self._rates)))
            granted: dict[str, int] = {}
            for channel, rate in self._rates.items():
                waiting = pick(Notification.channel == channel)
                granted[channel] = take_tokens(session, rate, len(waiting), now)
                ids += waiting[: granted[channel]]
            if not ids:
                return []
            # Compare-and-set: only rows still due are taken, whatever another sender did.
            rows = session.execute(
                update(Notification)
                .where(Notification.id.in_(ids), due)
                .values(
                    status="sending",
                    lease_until=lease_until,
                    claimed_by=self._worker,
                    attempts=Notification.attempts + 1,
                )
                .returning(
                    Notification.id,
                    Notification.event,
                    Notification.channel,
                    Notification.address,
                    Notification.locale,
                    Notification.attempts,
                    Notification.recipient_role,
                    Notification.recipient_id,
                    Notification.context,
                    Notification.critical,
                    Notification.created_at,
                )
            ).all()
            taken = Counter(row.channel for row in rows)
            for channel, rate in self._rates.items():
                # A row another sender took between our pick and our update (SQLite has
                # no SKIP LOCKED) leaves its token unused: it goes back.
                give_back(session, rate, granted[channel] - taken[channel])
        # RETURNING has no order: restore the pick's, critical first.
        claimed = (Claimed(**row._mapping) for row in rows)
        return sorted(claimed, key=lambda c: (not c.critical, c.id))

    def _deliver(self, row: Claimed) -> None:
        channel = self._channels.get(row.channel)
        provider = channel.provider if channel else row.channel
        try:
            if channel is None:
                raise DeliveryError(f"no {row.channel} channel is configured", permanent=True)
            prepared = self._prepare(row)
            if prepared is None:
                return
            row, rendered = prepared
            receipt = channel.send(
                Outbound(
                    notification_id=row.id,
                    to=row.address,
                    body=rendered.body,
                    subject=rendered.subject,
                    html=rendered.html,
                )
            )
        except DeliveryError as exc:
            self._failed(row, provider, exc)
            return
        except Exception as exc:  # noqa: BLE001 - one bad row must not stall the batch
            # A bug or an unforeseen SDK error: retried like a transient failure, so it is
            # bounded by give_up_after and recorded on the row instead of lost in a log.
            message = f"unexpected {type(exc).__name__}: {scrub(str(exc))}"
            self._failed(row, provider, DeliveryError(message, permanent=False))
            return
        self._sent(row, receipt)

    def _prepare(self, row: Claimed) -> tuple[Claimed, Rendered] | None:
        """Apply the contact policy, render, store the text and renew the lease: one
        transaction just before sending.

        A batch is sent one row after another, so a row late in a batch could otherwise
        outlive its lease and be reclaimed (and sent) by another sender. Returns None if
        this sender no longer owns the row or the policy put it back to wait.
        """
        now = self._clock.now()
        with self._sessions.begin() as session:
            if row.recipient_role == "customer":
                policy = self._prepare_for_customer(session, row, now)
                if policy is None:
                    return None
                row = policy
            try:
                rendered = self._renderer.render(row.event, row.channel, row.locale, row.context)
            except TemplateProblem as exc:
                raise DeliveryError(f"template error: {exc}", permanent=True) from exc
            result = session.execute(
                update(Notification)
                .where(
                    Notification.id == row.id,
                    Notification.claimed_by == self._worker,
                    Notification.status == "sending",
                )
                .values(
                    body=rendered.body,
                    subject=rendered.subject,
                    lease_until=now + self._settings.lease,
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                log.warning("notification %s was reclaimed before it was sent", row.id)
                return None
        return row, rendered

    def _sent(self, row: Claimed, receipt: Receipt) -> None:
        """Mark the row sent, or, when the provider's receipt overtook this commit, complete
        what the receipt already decided: either way the row ends with ``sent_at``,
        ``provider`` and the provider's message id, exactly as if the receipt came last."""
        now = self._clock.now()
        with self._sessions.begin() as session:
            done = session.execute(
                update(Notification)
                .where(
                    Notification.id == row.id,
                    Notification.claimed_by == self._worker,
                    Notification.status.in_(("sending", *_RECEIPTED)),
                )
                .values(
                    status=case(
                        (Notification.status == "sending", "sent"), else_=Notification.status
                    ),
                    provider=receipt.provider,
                    provider_message_id=receipt.provider_message_id,
                    sent_at=now,
                    lease_until=None,
                    last_error=case(
                        (Notification.status == "sending", None), else_=Notification.last_error
                    ),
                )
            )
            session.add(
                DeliveryAttempt(
                    notification_id=row.id,
                    at=now,
                    provider=receipt.provider,
                    outcome="sent",
                    provider_message_id=receipt.provider_message_id,
                )
            )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            log.warning("notification %s was reclaimed while being sent", row.id)
        log.info(
            "sent notification %s (%s %s to %s via %s)",
            row.id,
            row.event,
            row.channel,
            mask_address(row.address),
            receipt.provider,
        )

    def _failed(self, row: Claimed, provider: str, error: DeliveryError) -> None:
        now = self._clock.now()
        with self._sessions.begin() as session:
            notification = session.scalar(
                select(Notification)
                .where(
                    Notification.id == row.id,
                    Notification.claimed_by == self._worker,
                    Notification.status == "sending",
                )
                .with_for_update()
            )
            if notification is None:
                log.warning("notification %s was reclaimed; its outcome is not ours", row.id)
                return
            settled = settle(
                session,
                notification,
                Failure(str(error), error.permanent, error.retry_after, error.code),
                provider=provider,
                now=now,
                settings=self._settings,
                rng=self._rng,
            )
            if error.code == "21610" and row.recipient_role == "customer":
                # Twilio says the number replied STOP to us at some point: honour it as
                # if the STOP had reached our own webhook.
                customer = session.get(Customer, row.recipient_id)
                if customer is not None:
                    opt_out(session, customer, ["sms"], "Twilio 21610")
        log.warning(
            "notification %s %s failure: %s", row.id, settled.outcome, scrub(settled.reason)
        )

    def _prepare_for_customer(
        self, session: Session, row: Claimed, now: datetime
    ) -> Claimed | None:
        """Apply the customer's current preferences and the contact policy to a claimed row.

        Returns the row to send (possibly merged with the customer's other waiting
        notices), or None when it was put back to wait (merge window, contact budget) or
        is no longer this sender's. Raises :class:`DeliveryError` when the customer has
        opted out of the channel since the message was queued.
        """
        mine = (
            Notification.id == row.id,
            Notification.claimed_by == self._worker,
            Notification.status == "sending",
        )
        customer = session.get(Customer, row.recipient_id)
        if customer is not None and is_opted_out(customer, row.channel):
            raise DeliveryError(f"customer opted out of {row.channel}", permanent=True)
        notification = session.scalar(select(Notification).where(*mine))
        if notification is None:
            return None  # merged into another message while it waited in our batch
        # The ticket may have moved on while the notice waited: re-decide it from now.
        decided = recheck(session, notification, now)
        if decided.action == "superseded":
            return None
        if decided.action == "wait":
            assert decided.until is not None
            notification.status = "queued"
            notification.next_attempt_at = decided.until
            notification.attempts -= 1
            notification.lease_until = None
            notification.last_error = "held: waiting for the fault notice to go first"
            return None
        row = replace(row, critical=decided.critical)
        if row.event not in PROACTIVE or row.critical:
            return row
        hold = row.created_at + self._settings.merge_window
        held_by = "merge window"
        if hold <= now:
            hold = within_budget(
                self._proactive_sent(session, row.recipient_id, now, row.id),
                now,
                self._settings.contact_budget,
                BUDGET_WINDOW,
            )
            held_by = f"contact budget ({self._settings.contact_budget} a day) reached"
        if hold > now:
            session.execute(
                update(Notification)
                .where(*mine)
                .values(
                    status="queued",
                    next_attempt_at=not_in_quiet_hours(session, notification, hold),
                    attempts=Notification.attempts - 1,
                    lease_until=None,
                    last_error=None if held_by == "merge window" else f"held: {held_by}",
                )
            )
            return None
        return self._merge(session, row)

    def _proactive_sent(
        self, session: Session, customer_id: str, now: datetime, exclude: int
    ) -> list[datetime]:
        """When the customer's proactive messages went out in the last day (one per message:
        a fallback re-send of the same message is not a second contact, nor is a retry of
        ``exclude`` after a failed receipt)."""
        return list(
            session.scalars(
                select(Notification.sent_at).where(
                    Notification.recipient_role == "customer",
                    Notification.recipient_id == customer_id,
                    Notification.event.in_((*PROACTIVE, MERGED)),
                    Notification.fallback_of.is_(None),
                    Notification.id != exclude,
                    Notification.sent_at > now - BUDGET_WINDOW,
                )
            )
        )

    def _merge(self, session: Session, row: Claimed) -> Claimed:
        """Fold the customer's other waiting proactive notices on this channel into ``row``.

        Rows still in their merge window are waiting precisely for this. Rows this sender
        claimed in the same batch are taken too; the loop then finds them merged and skips
        them. Each merged row keeps its own context (and evidence) and points here.
        """
        if row.event in STANDALONE:
            return row
        others = session.execute(
            update(Notification)
            .where(
                Notification.recipient_role == "customer",
                Notification.recipient_id == row.recipient_id,
                Notification.channel == row.channel,
                Notification.event.in_(PROACTIVE - STANDALONE),
                Notification.critical.is_(False),
                Notification.fallback_of.is_(None),
                Notification.id != row.id,
                or_(
                    Notification.status == "queued",
                    and_(
                        Notification.status == "sending",
                        Notification.claimed_by == self._worker,
                    ),
                ),
            )
            .values(status="merged", merged_into=row.id, lease_until=None)
            .returning(Notification.id, Notification.event, Notification.context)
        ).all()
        if not others:
            return row
        parts = [
            (row.id, row.event, row.context),
            *sorted(((o.id, o.event, o.context) for o in others), key=lambda part: part[0]),
        ]
        context: dict[str, Any] = {
            "issues": [{"event": event, **_issue(ctx)} for _, event, ctx in parts],
            "customer": row.context.get("customer", {}),
            "recipient": row.context.get("recipient", {}),
            "merged": [row_id for row_id, _, _ in parts],
        }
        session.execute(
            update(Notification)
            .where(Notification.id == row.id)
            .values(event=MERGED, context=context)
        )
        log.info("notification %s carries %d issues for one customer", row.id, len(parts))
        return replace(row, event=MERGED, context=context)


class SenderPool:
    """Several :class:`Sender` s sending concurrently, one thread each.

    Each sender has its own worker id, so the merge step (which folds the rows *this*
    worker claimed) never takes a row another thread is sending.
    """

    MAX_ROUNDS = 20
    """Batches a thread sends per :meth:`run_once` while full batches keep coming, so a
    scheduled run ends (and the scheduler can stop) even under a steady stream."""

    def __init__(self, senders: Sequence[Sender]) -> None:
        if not senders:
            raise ValueError("a sender pool needs at least one sender")
        self._senders = tuple(senders)
        self._executor = (
            ThreadPoolExecutor(len(senders), thread_name_prefix="sender")
            if len(senders) > 1
            else None
        )

    def run_once(self, limit: int = 20) -> int:
        """Let every thread send batches of up to ``limit`` until fewer are due; returns
        how many rows were tried. Raises the first thread's error, if any."""
        if self._executor is None:
            return self._busy(self._senders[0], limit)
        futures = [self._executor.submit(self._busy, sender, limit) for sender in self._senders]
        return sum(future.result() for future in futures)

    def drain(self, limit: int = 20) -> int:
        """Send until nothing is due (tests, the demo and the benchmark)."""
        total = 0
        while (count := self.run_once(limit)) > 0:
            total += count
        return total

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _busy(self, sender: Sender, limit: int) -> int:
        total = 0
        for _ in range(self.MAX_ROUNDS):
            count = sender.run_once(limit)
            total += count
            if count < limit:
                break
        return total


def _issue(context: Mapping[str, Any]) -> dict[str, Any]:
    """One issue of a merged message: the event's context without the per-recipient parts."""
    return {k: v for k, v in context.items() if k not in ("recipient", "customer")}


def count_due(session: Session, now: datetime) -> int:
    """Rows a sender would pick up now (for metrics and the benchmark)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.status == "queued", Notification.next_attempt_at <= now)
        )
        or 0
    )
