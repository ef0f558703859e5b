"""Learned baseline bands in SQL (:class:`forewarn.ports.BaselineStore`).

* ``baseline_bands``: one row per rule (its :func:`~forewarn.monitors.baseline.state_key`),
  device and hour slot: the learned centre, spread and how many hours taught it.
* ``baseline_progress``: per rule, the end of the last hour learned (the scheduler's
  watermark, moved by compare-and-set).

The hour's aggregate is one grouped scan of that hour's readings over the whole fleet
(the readings' time index); the new bands go back in one batched upsert.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import Float, Integer, String, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from forewarn.config.schema import BaselineMonitor
from forewarn.monitors.baseline import Band, Bucket
from forewarn.store.models import Base, Device, Reading
from forewarn.store.readings import scope_clauses

_CHUNK = 500


class BaselineBand(Base):
    __tablename__ = "baseline_bands"
    rule_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    center: Mapped[float] = mapped_column(Float)
    spread: Mapped[float] = mapped_column(Float)
    samples: Mapped[int] = mapped_column(Integer)
    learned_at: Mapped[datetime]


class BaselineProgress(Base):
    __tablename__ = "baseline_progress"
    rule_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    learned_until: Mapped[datetime]


class SqlBaselineStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def hour_buckets(
        self, rule: BaselineMonitor, start: datetime, end: datetime
    ) -> dict[str, Bucket]:
        scope = scope_clauses(rule.applies_to)
        query = select(
            Reading.device_id,
            func.count(Reading.value),
            func.sum(Reading.value),
            func.sum(Reading.value * Reading.value),
        ).where(
            Reading.metric == rule.metric,
            Reading.ts >= start,
            Reading.ts < end,
            Reading.stale.is_(False),
            Reading.value.is_not(None),
        )
        if scope:
            query = query.join(Device, Device.id == Reading.device_id).where(*scope)
        rows = self._session.execute(query.group_by(Reading.device_id))
        return {
            device: Bucket(int(count), float(total or 0.0), float(squares or 0.0))
            for device, count, total, squares in rows
            if count
        }

    def bands(
        self,
        key: str,
        *,
        devices: Collection[str] | None = None,
        slot: int | None = None,
    ) -> dict[tuple[str, int], Band]:
        base = select(
            BaselineBand.device_id,
            BaselineBand.slot,
            BaselineBand.center,
            BaselineBand.spread,
            BaselineBand.samples,
        ).where(BaselineBand.rule_key == key)
        if slot is not None:
            base = base.where(BaselineBand.slot == slot)
        queries = [base]
        if devices is not None:
            ordered = sorted(devices)
            queries = [
                base.where(BaselineBand.device_id.in_(ordered[i : i + _CHUNK]))
                for i in range(0, len(ordered), _CHUNK)
            ]
        found: dict[tuple[str, int], Band] = {}
        for query in queries:
            for device, at, center, spread, samples in self._session.execute(query):
                found[(device, at)] = Band(center, spread, samples)
        return found

    def save_bands(self, key: str, bands: Mapping[tuple[str, int], Band], at: datetime) -> None:
        if not bands:
            return
        rows = [
            {
                "rule_key": key,
                "device_id": device,
                "slot": slot,
                "center": band.center,
                "spread": band.spread,
                "samples": band.samples,
                "learned_at": at,
            }
            for (device, slot), band in sorted(bands.items())
        ]
        dialect = self._session.get_bind().dialect.name
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        statement = insert(BaselineBand)
        statement = statement.on_conflict_do_update(
            index_elements=["rule_key", "device_id", "slot"],
            set_={
                "center": statement.excluded.center,
                "spread": statement.excluded.spread,
                "samples": statement.excluded.samples,
                "learned_at": statement.excluded.learned_at,
            },
        )
        for start in range(0, len(rows), _CHUNK):
            self._session.execute(statement, rows[start : start + _CHUNK])

    def learned_until(self, key: str) -> datetime | None:
        return self._session.scalar(
            select(BaselineProgress.learned_until).where(BaselineProgress.rule_key == key)
        )

    def advance_learning(self, key: str, before: datetime | None, after: datetime) -> bool:
        if before is None:
            dialect = self._session.get_bind().dialect.name
            insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
            inserted = self._session.execute(
                insert(BaselineProgress)
                .values(rule_key=key, learned_until=after)
                .on_conflict_do_nothing(index_elements=["rule_key"])
                .returning(BaselineProgress.rule_key)
            ).all()
            return len(inserted) == 1
        moved = self._session.execute(
            update(BaselineProgress)
            .where(BaselineProgress.rule_key == key, BaselineProgress.learned_until == before)
            .values(learned_until=after)
            .execution_options(synchronize_session=False)
        )
        return moved.rowcount == 1  # type: ignore[attr-defined, no-any-return]
