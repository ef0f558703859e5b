"""Rules as versioned data: how fast every process follows a saved version, and the budget
guard a draft's backtest is held to before it is saved (see docs/rules.md)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from forewarn.config.schema.base import Duration, Model


class BudgetSettings(Model):
    """Limits a draft's backtest must stay within; past one, saving needs an explicit
    confirmation, which is recorded in the audit (``rules.budget_override``)."""

    messages_per_customer_per_day: int | None = Field(3, ge=1)
    """The most messages (SMS and email) any one customer would have got in one day.
    Empty: no limit."""
    tickets_per_day: int | None = Field(50, ge=1)
    """The most tickets opened on any one day. Empty: no limit."""


class RulesSettings(Model):
    """Rule versions made in the console or the API, and how every process reloads them."""

    reload_interval: Duration = timedelta(seconds=1)
    """How often a process that ingests nothing (a web-only one) checks for a newer rule
    version; ingest batches and scheduled sweeps check before every run anyway."""
    budget: BudgetSettings = BudgetSettings()
    """The budget guard of the console's rule editor."""

    @field_validator("reload_interval")
    @classmethod
    def _sensible(cls, value: timedelta) -> timedelta:
        if not timedelta(milliseconds=100) <= value <= timedelta(minutes=5):
            raise ValueError("must be between 100ms and 5m")
        return value
