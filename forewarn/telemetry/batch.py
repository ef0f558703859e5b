"""A batch of gated messages and the one transaction that stores it.

Readings (``ON CONFLICT DO NOTHING``), device last-seen times and quarantine rows go into
one transaction together with whatever the ``on_batch`` hook writes (alerts, tickets,
outbox rows). The caller acknowledges the batch's messages only after :meth:`BatchStore.commit`
returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from forewarn.clock import Clock
from forewarn.store.models import Base, Quarantine
from forewarn.store.readings_bulk import insert_samples
from forewarn.telemetry.sample import Sample
from forewarn.telemetry.stats import IngestCounts

log = logging.getLogger("forewarn.telemetry.ingest")

BatchHook = Callable[[Session, Sequence[Sample], datetime], None]
"""Called inside a batch's transaction with the samples that were new in it and ``now``.

Whatever it writes commits atomically with the readings. It is not called for a batch
that brought no new samples (e.g. a pure redelivery).
"""

_QUARANTINE = Base.metadata.tables[Quarantine.__tablename__]


class Batch:
    """Messages received since the last commit."""

    __slots__ = ("accepted", "acks", "opened", "quarantine", "rejected", "samples", "urgent")

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.quarantine: list[dict[str, object]] = []
        self.acks: list[int] = []
        """Message ids to PUBACK after the commit; cleared when the connection is lost,
        because an id is only meaningful on the connection it arrived on."""
        self.accepted = 0
        self.rejected = 0
        self.opened = 0.0
        self.urgent = False
        """A device's status code changed in this batch (a fault appearing or clearing):
        commit as soon as the socket is drained instead of waiting for batch_interval."""

    @property
    def messages(self) -> int:
        return self.accepted + self.rejected


class BatchStore:
    """Commits batches: readings, last-seen times, quarantine and the hook's writes."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Clock, on_batch: BatchHook | None
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._on_batch = on_batch
        self._insert_quarantine = insert(_QUARANTINE)

    def commit(self, batch: Batch) -> IngestCounts:
        """Store ``batch`` in one transaction; raises if it could not be committed."""
        new: list[Sample] = []
        hook_failed = False
        with self._sessions() as session, session.begin():
            connection = session.connection()
            if batch.samples:
                new = insert_samples(connection, batch.samples)
            if batch.quarantine:
                connection.execute(self._insert_quarantine, batch.quarantine)
            if new and self._on_batch is not None:
                hook_failed = self._run_hook(session, new)
        return IngestCounts(
            accepted=batch.accepted,
            rejected=batch.rejected,
            stored=len(new),
            duplicates=len(batch.samples) - len(new),
            batches=1,
            hook_failures=int(hook_failed),
        )

    def _run_hook(self, session: Session, new: Sequence[Sample]) -> bool:
        """Run the hook in a savepoint; True if it failed.

        A hook that raises (a monitor bug, a unique violation) must not stop telemetry
        from being stored for the whole fleet: its writes are rolled back, the readings
        are kept, and the failure is logged and counted.
        """
        assert self._on_batch is not None
        try:
            with session.begin_nested():
                self._on_batch(session, new, self._clock.now())
        except Exception:
            log.exception("the on_batch hook failed for %d new samples", len(new))
            return True
        return False
