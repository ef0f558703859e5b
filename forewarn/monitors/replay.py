"""Replay: readings through the same monitors with an event-driven simulated clock.

Readings go in batches, exactly as the ingester would have stored them, and the scheduled
sweep runs at every ``step`` boundary with the clock at that moment (live runs it every
check interval). Because rules run on the readings' own timestamps and timers on the
clock passed in, a replay of last week produces the alerts live operation did (to within
one ``step`` for scheduled timers).

The clock jumps over empty time: when no reading falls before the next boundary, it moves
straight to the first boundary at which a timer can change something (an offline
deadline, a pending ``for``, a flapping alert's settle, a rate or drift window emptying,
a fleet-peer reading going stale), or to the next reading. A boundary skipped this way
would have run a sweep that changed nothing, so the result is the one stepping gives.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TextIO

from forewarn.config.schema import DriftMonitor, ForecastMonitor, RateMonitor, ThresholdMonitor
from forewarn.monitors import sweeps
from forewarn.monitors.core import AlertCore
from forewarn.monitors.learning import next_learning
from forewarn.ports import Stores
from forewarn.telemetry.sample import Sample


class ReplayError(ValueError):
    """The input cannot be replayed (a bad CSV row, an unusable scratch store)."""


@dataclass
class SimulatedClock:
    """The replay's clock: moved by the replay, read by every part of forewarn."""

    at: datetime

    def now(self) -> datetime:
        return self.at


Ingest = Callable[[Sequence[Sample], datetime], None]
"""Store a batch and run the monitors on it, as the ingester does."""


class Timers(Protocol):
    """Scheduled work beside the monitors' sweep that a backtest runs on the same clock
    (the ticket sweep, technicians answering, the outbox)."""

    def next_due(self) -> datetime | None:
        """When something is next due; at or before the clock means now."""
        ...

    def run(self, now: datetime) -> None:
        """Do everything due at ``now``."""
        ...


def read_csv(source: TextIO, origin: str = "readings.csv") -> Iterator[Sample]:
    """Readings from a CSV with a header: ``device_id, metric, ts`` and ``value`` or
    ``code``; an optional ``stale`` column (``true``/``1``) keeps the gate's verdict."""
    reader = csv.DictReader(source)
    missing = {"device_id", "metric", "ts"} - set(reader.fieldnames or ())
    if missing:
        raise ReplayError(f"{origin}: missing column(s) {', '.join(sorted(missing))}")
    for line, row in enumerate(reader, start=2):
        try:
            ts = datetime.fromisoformat(row["ts"].strip())
            value_text = (row.get("value") or "").strip()
            value = float(value_text) if value_text else None
        except ValueError as exc:
            raise ReplayError(f"{origin}:{line}: {exc}") from exc
        if ts.tzinfo is None:
            raise ReplayError(f"{origin}:{line}: timestamp {row['ts']!r} has no UTC offset")
        code = (row.get("code") or "").strip() or None
        stale = (row.get("stale") or "").strip().lower() in {"1", "true", "yes"}
        yield Sample(
            row["device_id"].strip(),
            row["metric"].strip(),
            ts.astimezone(UTC),
            received_at=ts.astimezone(UTC),
            value=value,
            code=code,
            stale=stale,
        )


def run(
    core: AlertCore,
    ordered: Sequence[Sample],
    step: timedelta,
    ingest: Ingest,
    clock: SimulatedClock,
    *,
    jump: bool = True,
    progress: Callable[[int], None] | None = None,
    timers: Timers | None = None,
    until: datetime | None = None,
) -> datetime:
    """Feed ``ordered`` (sorted by event time) through ``ingest`` and the sweeps of
    ``core``; returns the simulated time it ended at. ``progress`` hears how many readings
    are done after each batch. ``timers`` run at every boundary where they are due; with
    ``until`` the clock goes on after the last reading, to every sweep or timer due up to
    ``until`` (a device that fell silent, a message held for the night)."""
    if step <= timedelta(0):
        raise ReplayError("the step must be positive")
    if not ordered:
        return clock.at
    start = moment = swept = ordered[0].ts
    index = 0
    due: datetime | None = None
    known = -1  # the core's write count ``due`` was computed at; -1: not computed
    reported = 0
    while index < len(ordered):
        boundary = moment + step
        if jump and ordered[index].ts >= boundary:
            if known != core.writes:
                due, known = _wakeup(core, swept), core.writes
            # A reading is taken at the first boundary after it; a deadline is acted on at
            # the first boundary at or after it.
            reading = start + ((ordered[index].ts - start) // step + 1) * step
            candidates = [reading]
            if due is not None:
                candidates.append(_ceiling(start, due, step))
            timed = timers.next_due() if timers is not None else None
            if timed is not None:
                candidates.append(_ceiling(start, timed, step))
            boundary = max(boundary, min(candidates))
        moment = boundary
        batch_end = index
        while batch_end < len(ordered) and ordered[batch_end].ts < moment:
            batch_end += 1
        clock.at = moment
        ingested = batch_end > index
        if ingested:
            ingest(ordered[index:batch_end], moment)
            index = batch_end
            if core.lateness > timedelta(0):
                known = -1  # held readings set a release time of their own
        if jump and not (ingested and core.peer_rules):
            # Readings only push timers later; only a changed alert can bring one closer.
            if known != core.writes:
                due, known = _wakeup(core, swept), core.writes
            if (due is None or due > moment) and not _due(timers, moment):
                continue  # a sweep now would change nothing
        sweeps.sweep(core, moment)
        swept, known = moment, -1
        if timers is not None and (not jump or _due(timers, moment)):
            timers.run(moment)
        if progress is not None and index - reported >= len(ordered) // 200:
            progress(index)
            reported = index
    if until is not None:
        moment = _run_out(core, step, clock, start, moment, until, jump=jump, timers=timers)
    if progress is not None:
        progress(index)
    return moment


def _ceiling(start: datetime, at: datetime, step: timedelta) -> datetime:
    """The first boundary at or after ``at``."""
    return start + -((start - at) // step) * step


def _due(timers: Timers | None, now: datetime) -> bool:
    if timers is None:
        return False
    due = timers.next_due()
    return due is not None and due <= now


def _run_out(
    core: AlertCore,
    step: timedelta,
    clock: SimulatedClock,
    start: datetime,
    moment: datetime,
    until: datetime,
    *,
    jump: bool,
    timers: Timers | None,
) -> datetime:
    """After the last reading: every sweep and timer due up to ``until``."""
    while True:
        if jump:
            wakeups = [w for w in (_wakeup(core, moment), _next(timers)) if w is not None]
            if not wakeups:
                return moment
            boundary = max(moment + step, _ceiling(start, min(wakeups), step))
        else:
            boundary = moment + step
        if boundary > until:
            return moment
        moment = clock.at = boundary
        sweeps.sweep(core, moment)
        if timers is not None and (not jump or _due(timers, moment)):
            timers.run(moment)


def _next(timers: Timers | None) -> datetime | None:
    return timers.next_due() if timers is not None else None


def _wakeup(core: AlertCore, now: datetime) -> datetime | None:
    with core.storage.begin() as stores:
        return next_wakeup(core, stores, now)


def next_wakeup(core: AlertCore, stores: Stores, now: datetime) -> datetime | None:
    """The earliest time after ``now`` at which a sweep could change an alert with no new
    reading (a lower bound: waking early costs a sweep, waking late would be wrong).

    Deadlines at or before ``now`` were seen by the sweep that just ran at ``now``: what
    it did not act on waits for a reading (an N-in-a-row count, say), not for the clock.
    """
    wakeups: list[datetime] = []
    settle = core.alerting.flapping.settle
    for alert in stores.alerts.open_alerts(rule_ids=core.rules):
        rule = core.rules[alert.rule_id]
        if alert.state == "firing" and alert.notified_at is None and rule.notify:
            # Held by a silence or an inhibition, which may end at any time.
            return now + timedelta.resolution
        hold = getattr(rule, "for_", timedelta(0))
        if isinstance(rule, ThresholdMonitor):
            compiled = core.by_device.get(alert.subject)
            levels = compiled.thresholds.get(rule.metric, ()) if compiled else ()
            hold = min((lv.hold for _, lv in levels), default=timedelta(0))
        if alert.state == "pending":
            wakeups.append(alert.pending_since + hold)
        elif alert.state == "flapping" and alert.condition_since is not None:
            wakeups.append(alert.condition_since + min(settle, hold))
        if isinstance(rule, RateMonitor | DriftMonitor | ForecastMonitor):
            points = stores.readings.history(alert.subject, rule.metric, now - rule.window, now)
            if points:
                wakeups.append(points[-1][0] + rule.window)
    for offline in core.offline_rules:
        open_fps = {
            a.fingerprint
            for a in stores.alerts.open_alerts(rule_ids=[offline.id])
            if a.condition != "clear"
        }
        for device, heard in stores.readings.last_heard(offline).items():
            if f"{offline.id}:{device}" not in open_fps:
                wakeups.append(heard + offline.after)
    learning = next_learning(core, stores, now)
    if learning is not None:
        wakeups.append(learning)
    for peer in core.peer_rules:
        for latest in stores.readings.latest(core.devices, peer.metric).values():
            wakeups.append(latest.ts + peer.fresh)
    # The sweeps judge timers on the clock less the lateness bound.
    later = [w + core.lateness for w in wakeups]
    release = core.next_release()
    if release is not None:
        later.append(release)
    return min((w for w in later if w > now), default=None)
