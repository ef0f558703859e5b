"""What every route of the console shares: the store, the clock and the rules of access."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from forewarn.clock import Clock
from forewarn.config.loading import Config
from forewarn.config.schema import MonitorSettings, OfflineMonitor
from forewarn.web.auth import TokenTable
from forewarn.web.rendering import Pages
from forewarn.web.throttle import FailureLimiter

if TYPE_CHECKING:  # these modules import the routes' dependencies, which import this one
    from forewarn.alerting import Monitors
    from forewarn.backtest.runs import Runs
    from forewarn.rulebook import RuleBook
    from forewarn.web.health import DatabaseWatch, ProcessStatus
    from forewarn.web.metrics import SourceReader

DEFAULT_SILENT_AFTER = timedelta(minutes=15)
"""A device is counted silent after this long without data when no offline monitor says."""

MAX_ID = 2**31 - 1
"""Largest id the integer primary keys can hold; larger ones cannot exist (and PostgreSQL
would reject them with an error instead of finding nothing)."""


def silent_after(config: Config) -> timedelta:
    """How long without data makes a device "silent" on the console and in ``/metrics``.

    The shortest ``after`` of the configured offline monitors, so the dashboard agrees with
    the alerts; without one, :data:`DEFAULT_SILENT_AFTER`.
    """
    windows = [m.after for m in config.settings.monitors if isinstance(m, OfflineMonitor)]
    return min(windows, default=DEFAULT_SILENT_AFTER)


@dataclass(frozen=True)
class Console:
    """The application's shared parts, kept on ``app.state.console``."""

    config: Config
    sessions: sessionmaker[Session]
    clock: Clock
    tokens: TokenTable
    pages: Pages
    silent_after: timedelta
    metrics: SourceReader
    database_watch: DatabaseWatch
    login_limiter: FailureLimiter
    """Wrong tokens per client (429 past ``web.login_failures_per_minute``)."""
    process: ProcessStatus
    """The roles this process serves and their live state, for ``/readyz``."""
    can_release: bool = False
    """Whether quarantined MQTT messages can be published again (a broker is configured)."""
    rules: RuleBook | None = None
    """The rule-set version this process runs; the rule editor saves new ones through it."""
    monitors: Monitors | None = None
    """The running monitors: a saved rule version re-judges their open alerts."""
    _runs: list[Runs] = field(default_factory=list, repr=False)

    def backtest_runs(self) -> Runs:
        """The backtests of this app (``/backtest``, the API and the rule editor): one
        queue, one worker thread."""
        if not self._runs:
            from forewarn.backtest.runs import Runs

            self._runs.append(Runs(self.config.settings.backtest.keep_results))
        return self._runs[0]

    def current_monitors(self) -> tuple[MonitorSettings, ...]:
        """The rules this process runs now (the current version; the file's without one)."""
        return self.rules.monitors if self.rules is not None else self.config.settings.monitors
