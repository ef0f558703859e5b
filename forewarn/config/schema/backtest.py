"""Backtests: what a "what would this draft have done" run assumes where history is silent."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from forewarn.config.schema.base import Duration, Model


class PriceSettings(Model):
    """What each message costs, for the backtest's cost figure (your provider's price list)."""

    currency: str = Field("USD", min_length=1, max_length=8)
    """Shown beside every cost; forewarn does not convert."""
    sms_segment: float = Field(0.0083, ge=0)
    """Price of one SMS segment (160 GSM-7 or 70 UCS-2 characters; a longer message is
    sent as several segments of 153 or 67)."""
    email: float = Field(0.001, ge=0)
    """Price of one email."""


class CrewSettings(Model):
    """How simulated technicians answer their work orders in a backtest, when the stored
    history has no answered work orders to learn it from (with history, its medians win)."""

    accept_after: Duration | None = timedelta(minutes=20)
    """How long a technician takes to ACK a work order; null: nobody ever answers, so
    every job runs the whole escalation chain."""
    visit_hours: Duration = timedelta(hours=2)
    """From ACK to DONE: the technician hours one visit costs."""


class BacktestSettings(Model):
    """Defaults of ``forewarn backtest`` and the console's backtest (docs/backtest.md)."""

    period: Duration = timedelta(days=7)
    """History replayed when no ``--since`` is given."""
    step: Duration = timedelta(seconds=30)
    """The simulated scheduler interval (sweeps, ticket sweep, outbox)."""
    prices: PriceSettings = PriceSettings()
    """Message prices for the cost figure."""
    crew: CrewSettings = CrewSettings()
    """Simulated technicians, when history cannot say."""
    max_draft_bytes: int = Field(262_144, ge=1024, le=16_777_216)
    """Largest draft the API accepts (bigger bodies get 413)."""
    keep_results: int = Field(20, ge=1, le=1000)
    """Finished console backtests kept in memory per process (oldest dropped first)."""
