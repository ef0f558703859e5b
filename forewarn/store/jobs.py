"""How each scheduled job is doing, as rows: one per job, written by whoever ran it.

A ``--role web`` process has no scheduler of its own, yet its ``/readyz`` and ``/metrics``
must show whether the leader's jobs are running. So every run of a scheduled job updates
its row (last success, last error, counts); any process reads them. Leader-only jobs are
written by the one leader; jobs that every sender runs (``outbox``) by whichever ran last.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from forewarn.store.models import Base


class JobRun(Base):
    """The latest outcome of one scheduled job, across every process that runs it."""

    __tablename__ = "job_runs"
    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    interval_seconds: Mapped[float] = mapped_column(Float)
    """The job's schedule: a job is late after 3 of these without a success."""
    leader_only: Mapped[bool] = mapped_column(Boolean)
    worker: Mapped[str | None] = mapped_column(String(128))
    """Host and process id of the process that ran it last."""
    last_started_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_duration_seconds: Mapped[float | None] = mapped_column(Float)
    last_error_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    """Exception type and first line, without SQL parameters (they can hold message text)."""
    successes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
