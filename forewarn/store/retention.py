"""Data has a lifetime: the leader's retention job (``retention`` in forewarn.yaml).

What it does at each run, given ``now`` (docs/retention.md has the sizes behind it):

* **readings** older than ``retention.readings``: on PostgreSQL, the table is partitioned
  by day or week on ``ts`` (migration 0020); the job creates the partitions for the next
  ``create_ahead`` and drops those that end before the cutoff (a catalogue change, no row
  is touched); rows that landed in the default partition are deleted in batches. On
  SQLite, rows are deleted in batches.
* **quarantine**, **provider_events**, and (when configured) **alert_events** and
  **ticket_events**: rows older than their lifetime are deleted in batches.
* **personal data**: notifications older than ``notification_personal_data`` lose their
  address, text, subject and template context; inbound SMS (and the messages of closed
  conversations) older than ``inbound_texts``
  lose their text and our reply, and closed follow-ups quoting such a text lose the quote.
  The rows stay, with their status, channel, event and times, so delivery rates,
  proactive rate and CSAT are still counted from them.

A batch is one statement on at most ``batch_size`` rows in its own short transaction, so
ingest and senders wait for one batch at most, never for the whole clean-up. A run stops
after ``time_budget`` and the next run goes on where it left off.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Column,
    Connection,
    Delete,
    Engine,
    MetaData,
    Table,
    Update,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError

from forewarn.config.schema import RetentionSettings
from forewarn.store.care import Conversation, ConversationMessage
from forewarn.store.contacts import FollowUp, InboundMessage, ProviderEvent
from forewarn.store.models import AlertEvent, Notification, Quarantine, Reading, TicketEvent

log = logging.getLogger(__name__)

_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")
_ACTIVE = ("queued", "sending")
"""Notifications still to be delivered: never erased, whatever their age."""
_QUOTING = ("human", "free_text", "technician_reply")
"""Follow-up kinds whose ``detail`` quotes what a customer or technician wrote."""


@dataclass
class RetentionReport:
    """What one run did."""

    deleted: dict[str, int] = field(default_factory=dict)
    """Rows deleted per table."""
    scrubbed: dict[str, int] = field(default_factory=dict)
    """Rows whose personal data was erased, per table."""
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    finished: bool = True
    """False when the time budget ran out before everything expired was handled."""


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime


class Retention:
    """Enforces :class:`RetentionSettings` on the database at ``engine``."""

    def __init__(
        self,
        engine: Engine,
        settings: RetentionSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._monotonic = monotonic
        self._postgresql = engine.dialect.name == "postgresql"

    def run(self, now: datetime) -> RetentionReport:
        """One pass over every table; ``now`` is the time the lifetimes count back from."""
        s = self._settings
        deadline = self._monotonic() + s.time_budget.total_seconds()
        report = RetentionReport()
        readings = _table(Reading)
        if self._postgresql and self._partitioned():
            self._ensure_partitions(now, report)
            if s.readings is not None:
                self._drop_partitions(now - s.readings, report)
                # Rows outside every partition (older than the first, or late) live in the
                # default partition; they are few, and deleted row by row.
                readings = _DEFAULT_PARTITION
        steps: list[tuple[str, Table, Column[datetime], timedelta | None]] = [
            ("readings", readings, readings.c.ts, s.readings),
            ("quarantine", _table(Quarantine), _table(Quarantine).c.received_at, s.quarantine),
            (
                "provider_events",
                _table(ProviderEvent),
                _table(ProviderEvent).c.received_at,
                s.provider_events,
            ),
            ("alert_events", _table(AlertEvent), _table(AlertEvent).c.at, s.alert_events),
            ("ticket_events", _table(TicketEvent), _table(TicketEvent).c.at, s.ticket_events),
        ]
        for name, table, column, lifetime in steps:
            if lifetime is None:
                continue
            done = self._delete_expired(table, column, now - lifetime, deadline)
            report.deleted[name] = report.deleted.get(name, 0) + done.rows
            report.finished &= done.finished
        if s.notification_personal_data is not None:
            done = self._scrub_notifications(now - s.notification_personal_data, deadline)
            report.scrubbed["notifications"] = done.rows
            report.finished &= done.finished
        if s.inbound_texts is not None:
            done = self._scrub_inbound(now - s.inbound_texts, deadline)
            report.scrubbed["inbound_messages"] = done.rows
            report.finished &= done.finished
            done = self._scrub_follow_ups(now - s.inbound_texts, deadline)
            report.scrubbed["follow_ups"] = done.rows
            report.finished &= done.finished
            done = self._scrub_conversations(now - s.inbound_texts, deadline)
            report.scrubbed["conversation_messages"] = done.rows
            report.finished &= done.finished
        if (
            any(report.deleted.values())
            or any(report.scrubbed.values())
            or (report.partitions_dropped)
        ):
            log.info(
                "retention: deleted %s; erased personal data of %s; dropped partitions %s%s",
                _counts(report.deleted),
                _counts(report.scrubbed),
                ", ".join(report.partitions_dropped) or "none",
                "" if report.finished else " (time budget used up; continuing next run)",
            )
        return report

    # -- batches

    def _batches(self, statement: Callable[[], Delete | Update], deadline: float) -> _Done:
        """Run ``statement`` (one batch) in its own transaction until a batch comes back
        short or the deadline passes."""
        rows = 0
        while True:
            if self._monotonic() >= deadline:
                return _Done(rows, finished=False)
            with self._engine.begin() as connection:
                count = connection.execute(statement()).rowcount
            rows += count
            if count < self._settings.batch_size:
                return _Done(rows, finished=True)

    def _delete_expired(
        self, table: Table, column: Column[datetime], cutoff: datetime, deadline: float
    ) -> _Done:
        batch = (
            select(table.c.id).where(column < cutoff).limit(self._settings.batch_size)
        ).scalar_subquery()
        return self._batches(lambda: delete(table).where(table.c.id.in_(batch)), deadline)

    def _scrub_notifications(self, cutoff: datetime, deadline: float) -> _Done:
        table = _table(Notification)
        # "address <> ''" both picks the rows still holding personal data and matches
        # the partial index ix_notifications_unscrubbed, so erased rows are never rescanned.
        batch = (
            select(table.c.id)
            .where(
                table.c.address != "",
                table.c.created_at < cutoff,
                table.c.status.not_in(_ACTIVE),
            )
            .limit(self._settings.batch_size)
        ).scalar_subquery()
        return self._batches(
            lambda: (
                update(table)
                .where(table.c.id.in_(batch))
                .values(address="", body=None, subject=None, context={})
            ),
            deadline,
        )

    def _scrub_inbound(self, cutoff: datetime, deadline: float) -> _Done:
        table = _table(InboundMessage)
        batch = (
            select(table.c.id)
            .where(table.c.body != "", table.c.received_at < cutoff)
            .limit(self._settings.batch_size)
        ).scalar_subquery()
        return self._batches(
            lambda: update(table).where(table.c.id.in_(batch)).values(body="", reply=None),
            deadline,
        )

    def _scrub_follow_ups(self, cutoff: datetime, deadline: float) -> _Done:
        # Closed tasks only: an open one is somebody's work in progress. Follow-ups are
        # few (people handle each), so no index is needed to find them.
        table = _table(FollowUp)
        batch = (
            select(table.c.id)
            .where(
                table.c.detail != "",
                table.c.status == "done",
                table.c.kind.in_(_QUOTING),
                table.c.opened_at < cutoff,
            )
            .limit(self._settings.batch_size)
        ).scalar_subquery()
        return self._batches(
            lambda: update(table).where(table.c.id.in_(batch)).values(detail=""), deadline
        )

    def _scrub_conversations(self, cutoff: datetime, deadline: float) -> _Done:
        # What both sides wrote, in closed conversations only (an open one is being read).
        table, conversations = _table(ConversationMessage), _table(Conversation)
        closed = select(conversations.c.id).where(conversations.c.status == "closed")
        batch = (
            select(table.c.id)
            .where(
                table.c.body != "",
                table.c.at < cutoff,
                table.c.conversation_id.in_(closed.scalar_subquery()),
            )
            .limit(self._settings.batch_size)
        ).scalar_subquery()
        return self._batches(
            lambda: update(table).where(table.c.id.in_(batch)).values(body=""), deadline
        )

    # -- PostgreSQL partitions

    def _partitioned(self) -> bool:
        with self._engine.connect() as connection:
            kind = connection.scalar(
                text("SELECT relkind FROM pg_class WHERE oid = to_regclass('readings')")
            )
        return bool(kind == "p")

    def partitions(self) -> list[Partition]:
        """The range partitions of ``readings`` (PostgreSQL), oldest first."""
        with self._engine.begin() as connection:
            return _partitions(connection)

    def _ensure_partitions(self, now: datetime, report: RetentionReport) -> None:
        with self._engine.begin() as connection:
            existing = _partitions(connection)
        start = _period_start(now, self._settings.partition)
        horizon = now + self._settings.create_ahead
        while start < horizon:
            end = _period_end(start, self._settings.partition)
            if not any(p.start < end and start < p.end for p in existing):
                name = f"readings_p{start:%Y%m%d}"
                if self._create_partition(name, start, end):
                    report.partitions_created.append(name)
                    existing.append(Partition(name, start, end))
            start = end

    def _create_partition(self, name: str, start: datetime, end: datetime) -> bool:
        try:
            with self._engine.begin() as connection:
                # Attaching locks the parent table; wait briefly, never queue the ingest
                # behind us for long. There is a week of slack to try again.
                connection.execute(text("SET LOCAL lock_timeout = '5s'"))
                connection.execute(text(f"CREATE TABLE {name} (LIKE readings INCLUDING DEFAULTS)"))
                # Rows of this range that arrived before the partition existed sit in the
                # default partition; attaching would fail while they are there.
                moved = connection.execute(
                    text(
                        f"WITH moved AS (DELETE FROM readings_default WHERE ts >= :start "
                        f"AND ts < :end RETURNING *) INSERT INTO {name} SELECT * FROM moved"
                    ),
                    {"start": start, "end": end},
                ).rowcount
                connection.execute(
                    text(
                        f"ALTER TABLE readings ATTACH PARTITION {name} "
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                    )
                )
        except OperationalError as exc:
            log.warning("retention: cannot create partition %s yet: %s", name, _first_line(exc))
            return False
        log.info("retention: created readings partition %s (%d rows moved in)", name, moved)
        return True

    def _drop_partitions(self, cutoff: datetime, report: RetentionReport) -> None:
        with self._engine.begin() as connection:
            expired = [p for p in _partitions(connection) if p.end <= cutoff]
        for partition in expired:
            try:
                with self._engine.begin() as connection:
                    connection.execute(text("SET LOCAL lock_timeout = '5s'"))
                    connection.execute(text(f"DROP TABLE {partition.name}"))
            except OperationalError as exc:
                log.warning(
                    "retention: cannot drop partition %s yet: %s", partition.name, _first_line(exc)
                )
                continue
            report.partitions_dropped.append(partition.name)


@dataclass(frozen=True)
class _Done:
    rows: int
    finished: bool


def _table(model: type[object]) -> Table:
    table = getattr(model, "__table__")  # noqa: B009 - mypy knows no __table__ on object
    assert isinstance(table, Table)
    return table


_DEFAULT_PARTITION = Table(
    "readings_default",
    MetaData(),
    *[Column(c.name, c.type, primary_key=c.primary_key) for c in _table(Reading).columns],
)
"""PostgreSQL: the partition of ``readings`` that takes rows no range partition covers."""


def _partitions(connection: Connection) -> list[Partition]:
    # The bounds come back in the session's time zone; read them in UTC.
    connection.execute(text("SET LOCAL TimeZone = 'UTC'"))
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass"
        )
    )
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match:
            start, end = (datetime.fromisoformat(v).astimezone(UTC) for v in match.groups())
            found.append(Partition(name, start, end))
    return sorted(found, key=lambda p: p.start)


def _period_start(moment: datetime, period: str) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if period == "week" else day


def _period_end(start: datetime, period: str) -> datetime:
    return start + timedelta(days=7 if period == "week" else 1)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in counts.items() if n) or "nothing"


def _first_line(exc: OperationalError) -> str:
    return str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "unknown"
