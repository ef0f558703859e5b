"""The one backoff helper: capped exponential ceiling, full jitter, the provider's floor."""

from __future__ import annotations

import random
from datetime import timedelta

from forewarn.notifier.retry import backoff

BASE = timedelta(seconds=5)
CAP = timedelta(minutes=15)


def delays(attempt: int, n: int = 500, retry_after: float | None = None) -> list[float]:
    rng = random.Random(attempt)
    return [
        backoff(attempt, base=BASE, cap=CAP, rng=rng, retry_after=retry_after).total_seconds()
        for _ in range(n)
    ]


def test_the_ceiling_doubles_per_attempt_and_the_delay_is_drawn_below_it() -> None:
    for attempt, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (8, 640)]:
        drawn = delays(attempt)
        assert all(0 <= d <= ceiling for d in drawn)
        # Full jitter: the whole range is used, not only its upper half.
        assert min(drawn) < ceiling * 0.1 and max(drawn) > ceiling * 0.9


def test_it_never_waits_longer_than_the_cap_even_after_thousands_of_attempts() -> None:
    for attempt in (9, 10, 100, 10_000):
        drawn = delays(attempt)
        assert max(drawn) <= CAP.total_seconds()
        assert max(drawn) > CAP.total_seconds() * 0.9


def test_it_waits_at_least_as_long_as_the_provider_asks() -> None:
    assert min(delays(1, retry_after=120.0)) == 120.0
    # A Retry-After beyond the cap is honoured: the provider knows its own outage.
    assert min(delays(3, retry_after=3600.0)) == 3600.0


def test_a_burst_of_failures_comes_back_spread_out() -> None:
    rng = random.Random(1)
    burst = [backoff(1, base=BASE, cap=CAP, rng=rng).total_seconds() for _ in range(100)]

    assert len({round(d, 3) for d in burst}) > 90
