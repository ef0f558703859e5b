"""Slowing down token guessing: at most N wrong tokens per client per minute.

A small in-process limiter rather than the ``limits`` package: ``limits`` reads the wall
clock inside its storage, so "the client may try again after a minute" could only be
tested by sleeping, and its shared backends (Redis, Memcached, MongoDB) are services
forewarn does not run; the in-memory one gives nothing these forty lines do not. Each web
process counts on its own: behind N processes a client gets at most N times the limit,
still far too few guesses for a 16+ character token.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW = 60.0
"""Seconds a failure counts against its client."""
MAX_CLIENTS = 10_000
"""Clients remembered at once; beyond it the oldest are forgotten (memory stays bounded
under a spray of addresses, at the price of forgetting some of them)."""


class FailureLimiter:
    """Counts failures per client over a sliding minute; blocks at ``limit``."""

    def __init__(self, limit: int, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._monotonic = monotonic
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        now = self._monotonic()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + WINDOW - now))

    def failed(self, client: str) -> None:
        """Record one wrong token from ``client``."""
        now = self._monotonic()
        with self._lock:
            failures = self._recent(client, now)
            failures.append(now)
            self._failures[client] = failures
            if len(self._failures) > MAX_CLIENTS:
                del self._failures[next(iter(self._failures))]

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.pop(client, deque())
        while failures and failures[0] <= now - WINDOW:
            failures.popleft()
        if failures:
            # Re-inserted last: the dict's first key is the client idle longest.
            self._failures[client] = failures
        return failures
