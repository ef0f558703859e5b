"""What the ingester reports: its counters and the state of its broker link."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class IngestCounts:
    """A consistent snapshot of the ingester's counters (for ``/metrics`` and tests)."""

    received: int = 0
    """Messages taken from the broker (or given to ``ingest_payloads``)."""
    accepted: int = 0
    """Messages that passed the gate, committed (redeliveries count again)."""
    rejected: int = 0
    """Messages quarantined, committed."""
    stored: int = 0
    """Readings rows that were new."""
    duplicates: int = 0
    """Samples that were already stored (redelivery or replay)."""
    batches: int = 0
    failed_batches: int = 0
    """Batches rolled back and left unacknowledged for the broker to redeliver."""
    hook_failures: int = 0
    """Batches whose ``on_batch`` hook raised; their readings were still stored."""

    @property
    def committed(self) -> int:
        """Messages whose outcome (readings or quarantine) is committed."""
        return self.accepted + self.rejected


class IngestStats:
    """Counters added to by the ingest thread once per batch, readable from any thread."""

    def __init__(self) -> None:
        self._totals = IngestCounts()
        self._changed = threading.Condition()
        self.received = 0
        """Bumped per message without the lock: an int store is atomic under the GIL."""

    def snapshot(self) -> IngestCounts:
        with self._changed:
            return replace(self._totals, received=self.received)

    def wait_for_committed(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` messages are committed; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._totals.committed >= count, timeout)

    def add(self, delta: IngestCounts) -> None:
        """Add one batch's counts (called by the ingester)."""
        with self._changed:
            totals = self._totals
            self._totals = IngestCounts(
                *(getattr(totals, f.name) + getattr(delta, f.name) for f in fields(IngestCounts))
            )
            self._changed.notify_all()


@dataclass(frozen=True)
class MqttLink:
    """Whether the ingester is connected, since when, and when the last message came."""

    connected: bool
    since: float
    """Epoch seconds of the last change (or of the ingester's creation)."""
    last_message_at: float | None
