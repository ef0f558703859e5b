"""Tables of the alert lifecycle beyond ``alerts`` / ``alert_events``.

* ``latest_readings``: the newest fresh reading per device and metric, kept by the
  monitors inside the ingest transaction, so scheduled checks (pending timers, absence of
  a metric, fleet-peer deviation, resolution of alerts opened by another worker) read one
  row per device instead of scanning the readings history.
* ``silences``: silences and maintenance windows created through the API (those in the
  config file are not copied here; the file stays their source of truth).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from forewarn.store.models import Base


class LatestReading(Base):
    __tablename__ = "latest_readings"
    __table_args__ = (Index("ix_latest_readings_metric_ts", "metric", "ts"),)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[datetime]
    """Event time of the newest fresh (not stale) reading."""
    value: Mapped[float | None] = mapped_column(Float)
    code: Mapped[str | None] = mapped_column(String(64))


class Silence(Base):
    __tablename__ = "silences"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    matchers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """``{"devices": [...], "sites": [...], "models": [...], "tags": [...], "rules": [...]}``."""
    starts: Mapped[datetime | None]
    ends: Mapped[datetime | None] = mapped_column(index=True)
    days: Mapped[list[Any]] = mapped_column(default=list)
    hours: Mapped[str | None] = mapped_column(String(16))
    """Recurring local hours, ``22:00-06:00``."""
    timezone: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    notify_customers: Mapped[bool] = mapped_column(Boolean, default=False)
    """A planned-maintenance window: its customers are told before, and when it is over."""
    notice_before_seconds: Mapped[float | None] = mapped_column(Float)
