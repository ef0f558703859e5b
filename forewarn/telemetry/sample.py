"""The value a reading becomes once it has passed the data-quality gate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

STATUS_METRIC = "status"
"""Metric name under which fault/status codes are stored and evaluated."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One metric of one device at one device time.

    ``stale`` samples (retained on connect, replayed, or older than the configured age) are
    stored for history but never fire or clear a rule.
    """

    device_id: str
    metric: str
    ts: datetime
    received_at: datetime
    value: float | None = None
    code: str | None = None
    stale: bool = False
