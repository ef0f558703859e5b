"""Event-time order within a lateness bound (pure, in memory): readings wait until the
same device has sent one ``lateness`` newer, or the clock is that far past them, and
leave in event-time order; one older than what already left is late.

Held readings live in this process only: a restart loses their judgement (not the
readings, which are stored), and several ingest workers each order what they receive
(docs/rules.md).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

from forewarn.telemetry.sample import Sample


class Reorder:
    """The readings held back per device, and how far each device was judged."""

    def __init__(self, lateness: timedelta) -> None:
        self.lateness = lateness
        self._held: dict[str, list[tuple[datetime, int, Sample]]] = {}
        self._newest: dict[str, datetime] = {}
        self._judged: dict[str, datetime] = {}
        """device -> samples at or before this were released; older arrivals are late."""
        self._seq = itertools.count()

    def arrive(self, samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
        """Hold ``samples``; returns those now due (unsorted) and those that are late."""
        late: list[Sample] = []
        for sample in samples:
            device = sample.device_id
            judged = self._judged.get(device)
            if judged is not None and sample.ts <= judged:
                late.append(sample)
                continue
            heapq.heappush(self._held.setdefault(device, []), (sample.ts, next(self._seq), sample))
            newest = self._newest.get(device)
            if newest is None or newest < sample.ts:
                self._newest[device] = sample.ts
        marks = {s.device_id: self._newest[s.device_id] - self.lateness for s in samples}
        return self._release(marks), late

    def due(self, now: datetime) -> list[Sample]:
        """The held samples the clock has passed by the bound (their device fell silent)."""
        return self._release({d: now - self.lateness for d, held in self._held.items() if held})

    def next_release(self) -> datetime | None:
        """When the clock releases the first held sample."""
        firsts = [held[0][0] for held in self._held.values() if held]
        return min(firsts) + self.lateness if firsts else None

    def _release(self, marks: dict[str, datetime]) -> list[Sample]:
        out: list[Sample] = []
        for device, mark in marks.items():
            held = self._held.get(device)
            while held and held[0][0] <= mark:
                out.append(heapq.heappop(held)[2])
            judged = self._judged.get(device)
            if judged is None or judged < mark:
                self._judged[device] = mark
        return out
