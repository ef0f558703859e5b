"""Teaching the learned-baseline rules (leader only, from the scheduled sweep).

Once an hour has ended (and settled: :data:`~forewarn.monitors.baseline.SETTLE` plus the
lateness bound, which the sweep's clock already lags by), each baseline rule learns it in
one unit of work: one grouped read of that hour's readings over the fleet, one read of
the bands of that hour's slot, the pure :func:`~forewarn.monitors.baseline.learn` per
device, one batched write, and the rule's watermark moved by compare-and-set. Never a
query per device.

Hours in which a device had an alert of a rule on the same metric (or a fault code), or
was silenced for this rule (maintenance), are left out for that device: data from a
device that is alerting or in maintenance does not teach its normal range.

Replay and live learn the same hours from the same readings: a replay's clock wakes up
at each hour's learning time (:func:`next_learning`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from forewarn.config.schema import BaselineMonitor, FaultCodeMonitor, OfflineMonitor
from forewarn.monitors.baseline import (
    BUCKET,
    SETTLE,
    Band,
    hour_start,
    learn,
    slot_of,
    state_key,
)
from forewarn.monitors.core import AlertCore
from forewarn.ports import Stores


def sweep_baselines(core: AlertCore, now: datetime) -> int:
    """Learn every hour that has ended and settled by ``now``; returns the hours learned
    (summed over rules)."""
    learned = 0
    for rule in core.baseline_rules:
        with core.storage.begin() as stores:
            learned += _learn_rule(core, stores, rule, now)
    return learned


def next_learning(core: AlertCore, stores: Stores, now: datetime) -> datetime | None:
    """When the next hour becomes learnable (for a replay's clock)."""
    times = []
    for rule in core.baseline_rules:
        done = stores.baselines.learned_until(state_key(rule))
        times.append(now + timedelta.resolution if done is None else done + BUCKET + SETTLE)
    return min(times, default=None)


def guards(core: AlertCore, rule: BaselineMonitor) -> set[str]:
    """The rules whose alerts keep a device's hour out of ``rule``'s learning."""
    return {
        m.id
        for m in core.rules.values()
        if isinstance(m, FaultCodeMonitor)
        or (not isinstance(m, OfflineMonitor) and getattr(m, "metric", None) == rule.metric)
    }


def _learn_rule(core: AlertCore, stores: Stores, rule: BaselineMonitor, now: datetime) -> int:
    key = state_key(rule)
    done = stores.baselines.learned_until(key)
    ready = hour_start(now - SETTLE)
    # After a long stop, learn no more than the band's memory holds.
    start = max(done or ready - BUCKET, ready - rule.window)
    if start + BUCKET > ready:
        return 0
    blocked = guards(core, rule)
    changed: dict[tuple[str, int], Band] = {}
    hour = start
    while hour + BUCKET <= ready:
        _learn_hour(core, stores, rule, hour, blocked, changed)
        hour += BUCKET
    if not stores.baselines.advance_learning(key, done, hour):
        return 0  # another leader learned these hours meanwhile
    stores.baselines.save_bands(key, changed, now)
    return int((hour - start) / BUCKET)


def _learn_hour(
    core: AlertCore,
    stores: Stores,
    rule: BaselineMonitor,
    hour: datetime,
    blocked: set[str],
    changed: dict[tuple[str, int], Band],
) -> None:
    end = hour + BUCKET
    buckets = stores.baselines.hour_buckets(rule, hour, end)
    if not buckets:
        return
    excluded = stores.alerts.alerting_subjects(blocked, hour, end)
    excluded |= _silenced(core, stores, rule, buckets.keys(), hour)
    slot = slot_of(rule, hour)
    kept = stores.baselines.bands(state_key(rule), slot=slot)
    for device, bucket in buckets.items():
        if device in excluded or device not in core.by_device:
            continue
        at = (device, slot)
        changed[at] = learn(rule, changed.get(at) or kept.get(at), bucket)


def _silenced(
    core: AlertCore,
    stores: Stores,
    rule: BaselineMonitor,
    devices: Iterable[str],
    hour: datetime,
) -> set[str]:
    silences = core.silences(stores, hour)
    if not silences:
        return set()
    found = set()
    moments = (hour, hour + BUCKET / 2, hour + BUCKET - timedelta(seconds=1))
    for device_id in devices:
        device = core.devices.get(device_id)
        if device is None:
            continue
        zone = core.site_zones.get(device.site, "UTC")
        for silence in silences:
            if silence.matches(device, rule.id) and any(
                silence.active_at(m, silence.zone(zone)) for m in moments
            ):
                found.add(device_id)
                break
    return found
