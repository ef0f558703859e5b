"""``forewarn backtest``: what a draft rule set would have done over stored history.

:func:`run_backtest` reads the period's history once (one streamed query: the readings of
the devices in scope and of the metrics the rules read; the real tickets and how they
ended; how technicians answered), then runs the whole live path
(:mod:`forewarn.backtest.live`) twice on the same readings, under the current rules and
under the draft, and compares them (:mod:`forewarn.backtest.report`).

The result (:meth:`Backtest.as_dict`) is the stable JSON of the CLI's ``--json`` and of
``GET /api/backtests/{id}``::

    {"period": {"since", "until", "step"}, "scope", "devices", "readings",
     "currency", "prices": {"sms_segment", "email"},
     "crew": {"accept_after", "visit", "source"},
     "current": SUMMARY, "draft": SUMMARY,
     "changed_rules": [rule ids],
     "diff": {"appear_count", "disappear_count", "unchanged", "appear": [...], "disappear": [...]},
     "no_fault_found": {"real_fault", "no_fault_found", "no_visit", "unmatched",
                        "real_tickets_with_code", "real_fault_share", "no_fault_share"} | null,
     "chart": {"device", "metric", "rule", "from", "until", "points": [[ts, value]],
               "current_levels"/"draft_levels": [{"rule", "level", "direction", "clear", "for"}],
               "current_alerts"/"draft_alerts": [{"rule", "from", "until"}]} | null,
     "elapsed_seconds"}

    SUMMARY = {"alerts", "alerts_by_rule", "held", "flapping_episodes", "tickets",
               "tickets_by_rule", "reopened", "auto_closed", "escalations",
               "max_tickets_per_day", "technician_hours", "messages" (by channel),
               "messages_total", "messages_by_recipient", "messages_by_event",
               "sms_segments", "cost", "cost_by_channel", "merged", "dropped",
               "quiet_hours_held", "waiting_at_end",
               "max_per_customer_day", "max_per_customer_week": {"customer", "messages", "from"}}
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine

from forewarn.backtest.chart import changed_rules, chart_data
from forewarn.backtest.live import Crew, Outcome, simulate
from forewarn.backtest.report import (
    AlertDiff,
    ClosureMatch,
    Prices,
    Summary,
    closure_match,
    diff_alerts,
    summarize,
)
from forewarn.config import Config
from forewarn.config.durations import format_duration
from forewarn.config.schema import (
    DeviceSettings,
    FaultCodeMonitor,
    MonitorSettings,
    OfflineMonitor,
    PeerMonitor,
    Settings,
)
from forewarn.store.history import CrewTimes, PastTicket
from forewarn.telemetry.sample import STATUS_METRIC, Sample

Progress = Callable[[str, float], None]
"""Told the phase (``history``, ``current``, ``draft``, ``report``) and the share of the
whole run done, 0 to 1."""
CREW_HISTORY = timedelta(days=90)
"""How far back technicians' answers are looked at for the simulated crew."""


class BacktestError(ValueError):
    """The backtest cannot run as asked (an unknown scope, an empty period)."""


@dataclass(frozen=True)
class Scope:
    """Which devices a backtest looks at: the fleet, one device, a site or a model."""

    kind: Literal["fleet", "device", "site", "model"]
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> Scope:
        text = text.strip()
        if text in ("", "fleet"):
            return cls("fleet")
        kind, _, value = text.partition(":")
        if kind not in ("device", "site", "model") or not value.strip():
            raise BacktestError(f"scope {text!r}: give fleet, device:ID, site:ID or model:NAME")
        return cls(kind, value.strip())  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.kind if self.kind == "fleet" else f"{self.kind}:{self.value}"

    def devices(self, settings: Settings) -> tuple[DeviceSettings, ...]:
        """The configured devices in scope; raises :class:`BacktestError` if it names
        nothing that exists."""
        if self.kind == "fleet":
            return settings.devices
        if self.kind == "site" and self.value not in {s.id for s in settings.sites}:
            raise BacktestError(f"scope {self}: no site {self.value!r} in the configuration")
        found = tuple(
            d
            for d in settings.devices
            if (self.kind == "device" and d.id == self.value)
            or (self.kind == "site" and d.site == self.value)
            or (self.kind == "model" and d.model == self.value)
        )
        if not found:
            what = {"device": "device", "site": "device at site", "model": "device of model"}
            raise BacktestError(
                f"scope {self}: no {what[self.kind]} {self.value!r} in the configuration"
            )
        return found


@dataclass(frozen=True)
class Request:
    """One backtest: the draft against the current rules over ``[since, until)``."""

    draft: tuple[MonitorSettings, ...]
    since: datetime
    until: datetime
    scope: Scope = Scope("fleet")
    current: tuple[MonitorSettings, ...] | None = None
    """The rules to compare with; None: the configuration's."""


@dataclass(frozen=True)
class History:
    """What the backtest reads from the store (or a test builds)."""

    readings: Sequence[Sample]
    """In event-time order."""
    tickets: Sequence[PastTicket] = ()
    crew: CrewTimes | None = None


@dataclass(frozen=True)
class Backtest:
    """A finished backtest (see the module docstring for its JSON)."""

    request: Request
    settings: Settings
    scope_devices: tuple[str, ...]
    readings: int
    step: timedelta
    crew: Crew
    crew_source: str
    prices: Prices
    current: Summary
    draft: Summary
    changed: tuple[str, ...]
    diff: AlertDiff
    closures: ClosureMatch | None
    chart: dict[str, Any] | None
    elapsed: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": {
                "since": self.request.since.isoformat(),
                "until": self.request.until.isoformat(),
                "step": format_duration(self.step),
            },
            "scope": str(self.request.scope),
            "devices": len(self.scope_devices),
            "readings": self.readings,
            "currency": self.prices.currency,
            "prices": {"sms_segment": self.prices.sms_segment, "email": self.prices.email},
            "crew": {
                "accept_after": (
                    format_duration(self.crew.accept_after)
                    if self.crew.accept_after is not None
                    else None
                ),
                "visit": format_duration(self.crew.visit),
                "source": self.crew_source,
            },
            "current": self.current.as_dict(),
            "draft": self.draft.as_dict(),
            "changed_rules": list(self.changed),
            "diff": self.diff.as_dict(),
            "no_fault_found": self.closures.as_dict() if self.closures else None,
            "chart": self.chart,
            "elapsed_seconds": round(self.elapsed, 3),
        }


def simulated_devices(
    settings: Settings, scoped: Sequence[DeviceSettings], rules: Iterable[MonitorSettings]
) -> tuple[DeviceSettings, ...]:
    """The devices a scoped run must simulate: those in scope, their parents (a gateway
    offline inhibits its devices' alarms) and, with a fleet-peer rule, the cohorts they
    are judged against (same model)."""
    wanted = {d.id for d in scoped}
    wanted |= {d.parent for d in scoped if d.parent}
    if any(isinstance(r, PeerMonitor) for r in rules):
        models = {d.model for d in scoped}
        wanted |= {d.id for d in settings.devices if d.model in models}
    return tuple(d for d in settings.devices if d.id in wanted)


def metrics_read(rules: Iterable[MonitorSettings]) -> tuple[set[str] | None, bool]:
    """The metrics the rules read, and whether any rule hears "any reading" (an offline
    rule without a metric). None: a rule kind this function does not know: read all."""
    metrics: set[str] = set()
    heartbeat = False
    for rule in rules:
        if isinstance(rule, FaultCodeMonitor):
            metrics.add(STATUS_METRIC)
        elif isinstance(rule, OfflineMonitor) and rule.metric is None:
            heartbeat = True
        elif isinstance(metric := getattr(rule, "metric", None), str):
            metrics.add(metric)
        else:
            return None, heartbeat
    return metrics, heartbeat


def thin(samples: Iterable[Sample], metrics: Collection[str]) -> Iterable[Sample]:
    """Readings of ``metrics``, and of the other metrics only one per device and time
    (an offline rule hears that the device spoke, not what it said)."""
    spoke: dict[str, datetime] = {}
    for sample in samples:
        if sample.metric in metrics or (
            not sample.stale and spoke.get(sample.device_id) != sample.ts
        ):
            spoke[sample.device_id] = sample.ts
            yield sample


def run_backtest(
    config: Config,
    request: Request,
    *,
    progress: Progress | None = None,
    history: History | None = None,
    engine: Engine | None = None,
) -> Backtest:
    """Run ``request`` (see the module docstring); ``history`` defaults to the store's
    (through ``engine``, else a new engine on the configured database)."""
    began = time.perf_counter()
    settings = config.settings
    current = request.current if request.current is not None else settings.monitors
    if request.until <= request.since:
        raise BacktestError("the period is empty: --until must be after --since")
    scoped = request.scope.devices(settings)
    simulated = simulated_devices(settings, scoped, (*current, *request.draft))
    if history is None:
        history = load_history(
            config, request, simulated, (*current, *request.draft), progress, engine
        )
    tell = progress or (lambda phase, share: None)
    crew, source = crew_of(settings, history.crew)
    step = settings.backtest.step
    backdrop = _narrowed(settings, simulated)
    total = max(len(history.readings), 1)

    def replay(rules: Sequence[MonitorSettings], progress: Callable[[int], None]) -> Outcome:
        return simulate(
            backdrop.model_copy(update={"monitors": tuple(rules)}),
            history.readings,
            step,
            crew,
            start=request.since,
            until=request.until,
            progress=progress,
        )

    tell("current", 0.2)
    waiting = _beside(lambda: replay(current, lambda done: None))
    if waiting is None:
        before = replay(current, lambda done: tell("current", 0.2 + 0.4 * done / total))
        tell("draft", 0.6)
        after = replay(request.draft, lambda done: tell("draft", 0.6 + 0.4 * done / total))
    else:
        # The current rules run in a forked process on the other core meanwhile.
        after = replay(request.draft, lambda done: tell("draft", 0.2 + 0.75 * done / total))
        before = waiting()
    tell("report", 1.0)
    in_scope = {d.id for d in scoped}
    customers = {c.id: c for c in settings.customers}
    prices = Prices(
        settings.backtest.prices.currency,
        settings.backtest.prices.sms_segment,
        settings.backtest.prices.email,
    )
    diff = diff_alerts(before.alerts, after.alerts, request.until, in_scope)
    return Backtest(
        request=request,
        settings=settings,
        scope_devices=tuple(sorted(in_scope)),
        readings=len(history.readings),
        step=step,
        crew=crew,
        crew_source=source,
        prices=prices,
        current=summarize(before, prices, devices=in_scope, customers=customers),
        draft=summarize(after, prices, devices=in_scope, customers=customers),
        changed=tuple(changed_rules(current, request.draft)),
        diff=diff,
        closures=closure_match(after, history.tickets, in_scope),
        chart=chart_data(
            current,
            request.draft,
            scoped,
            history.readings,
            before.alerts,
            after.alerts,
            diff,
            request.since,
            request.until,
            in_scope,
        ),
        elapsed=time.perf_counter() - began,
    )


def _beside(work: Callable[[], Outcome]) -> Callable[[], Outcome] | None:
    """Start ``work`` in a forked process and return how to wait for its outcome; None
    (run it here, afterwards) where forking is not safe: another thread is running (the
    web server, a progress bar's refresher) or the platform has no fork."""
    if not hasattr(os, "fork") or threading.active_count() > 1 or os.cpu_count() == 1:
        return None
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        try:
            sender.send((True, work()))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent as data
            sender.send((False, f"{type(exc).__name__}: {exc}"))

    process = context.Process(target=child, daemon=True)
    process.start()
    sender.close()

    def wait() -> Outcome:
        try:
            ok, value = receiver.recv()
        except EOFError as exc:
            raise BacktestError("the replay of the current rules stopped unexpectedly") from exc
        finally:
            process.join()
            receiver.close()
        if not ok:
            raise BacktestError(f"the replay of the current rules failed: {value}")
        assert isinstance(value, Outcome)
        return value

    return wait


def crew_of(settings: Settings, learned: CrewTimes | None) -> tuple[Crew, str]:
    """The simulated crew: history's medians where it has them, else the configuration."""
    configured = settings.backtest.crew
    accept = learned.accept_after if learned else None
    visit = learned.visit if learned else None
    source = (
        "history"
        if accept is not None and visit is not None
        else (
            "history and configuration"
            if accept is not None or visit is not None
            else "configuration"
        )
    )
    return (
        Crew(
            accept if accept is not None else configured.accept_after,
            visit if visit is not None else configured.visit_hours,
        ),
        source,
    )


def _narrowed(settings: Settings, devices: tuple[DeviceSettings, ...]) -> Settings:
    """``settings`` with only ``devices`` (and their sites and customers): a scoped run
    does not simulate the rest of the fleet."""
    if len(devices) == len(settings.devices):
        return settings
    sites = {d.site for d in devices}
    kept_sites = tuple(s for s in settings.sites if s.id in sites)
    customers = {s.customer for s in kept_sites}
    return settings.model_copy(
        update={
            "devices": devices,
            "sites": kept_sites,
            "customers": tuple(c for c in settings.customers if c.id in customers),
        }
    )


def load_history(
    config: Config,
    request: Request,
    devices: Sequence[DeviceSettings],
    rules: Sequence[MonitorSettings],
    progress: Progress | None = None,
    given: Engine | None = None,
) -> History:
    """The period's readings (only what the rules read), real tickets and crew times."""
    from forewarn.store.engine import make_engine
    from forewarn.store.history import crew_times, read_readings, read_tickets

    engine = given or make_engine(config.database_url)
    try:
        ids = [d.id for d in devices]
        fleet = len(devices) == len(config.settings.devices)
        metrics, heartbeat = metrics_read(rules)
        stream: Iterable[Sample] = read_readings(
            engine,
            request.since,
            request.until,
            devices=None if fleet else ids,
            metrics=metrics if metrics is not None and not heartbeat else None,
        )
        if metrics is not None and heartbeat:
            stream = thin(stream, metrics)
        readings: list[Sample] = []
        for sample in stream:
            readings.append(sample)
            if progress is not None and len(readings) % 100_000 == 0:
                progress("history", 0.1)
        if progress is not None:
            progress("history", 0.2)
        tickets = read_tickets(engine, request.since, request.until, None if fleet else ids)
        crew = crew_times(engine, request.until - CREW_HISTORY)
    finally:
        if given is None:
            engine.dispose()
    return History(readings, tickets, crew)
