"""What the learned-baseline rules have learned (:mod:`forewarn.monitors.baseline`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Protocol

from forewarn.config.schema import BaselineMonitor
from forewarn.monitors.baseline import Band, Bucket


class BaselineStore(Protocol):
    """The learned bands of baseline rules, one row per rule, device and hour slot, and how
    far each rule has learned."""

    def hour_buckets(
        self, rule: BaselineMonitor, start: datetime, end: datetime
    ) -> dict[str, Bucket]:
        """Count, sum and sum of squares of the fresh numeric readings of ``rule.metric``
        with ``start <= ts < end``, per device in ``rule``'s scope that has any: one
        grouped pass over the fleet."""
        ...

    def bands(
        self,
        key: str,
        *,
        devices: Collection[str] | None = None,
        slot: int | None = None,
    ) -> dict[tuple[str, int], Band]:
        """The bands learned under ``key`` (of these devices, of this slot), by device and
        slot."""
        ...

    def save_bands(self, key: str, bands: Mapping[tuple[str, int], Band], at: datetime) -> None:
        """Keep these bands (insert or replace), learned at ``at``."""
        ...

    def learned_until(self, key: str) -> datetime | None:
        """The end of the last hour learned under ``key``; None before the first."""
        ...

    def advance_learning(self, key: str, before: datetime | None, after: datetime) -> bool:
        """Move ``learned_until`` from ``before`` to ``after`` (compare-and-set); False if
        another leader moved it first (then nothing this unit learned may be kept)."""
        ...
