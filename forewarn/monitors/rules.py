"""Monitor rules as the evaluator sees them: config plus inheritance, resolved per device.

Threshold levels inherit global -> device model -> site -> single device: an override for
a device beats one for its site, which beats one for its model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from forewarn.config.durations import format_duration
from forewarn.config.schema import (
    BaselineMonitor,
    DeviceSettings,
    DriftMonitor,
    FaultCodeMonitor,
    ForecastMonitor,
    MonitorSettings,
    OfflineMonitor,
    PeerMonitor,
    RateMonitor,
    Selector,
    ThresholdMonitor,
)


@dataclass(frozen=True)
class Levels:
    """The effective levels of a threshold rule for one device."""

    above: float | None
    below: float | None
    clear: float
    hold: timedelta

    def breached(self, value: float) -> bool:
        if self.above is not None:
            return value > self.above
        assert self.below is not None
        return value < self.below

    def cleared(self, value: float) -> bool:
        return value <= self.clear if self.above is not None else value >= self.clear

    def describe(self) -> str:
        level = f"> {self.above:g}" if self.above is not None else f"< {self.below:g}"
        return level + (f" for {format_duration(self.hold)}" if self.hold else "")


def rule_version(rule: MonitorSettings) -> str:
    """A short stable hash of the rule's settings, stored with every decision it makes."""
    text = rule.model_dump_json(by_alias=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def selects(selector: Selector, device: DeviceSettings) -> bool:
    return (
        (not selector.kinds or device.kind in selector.kinds)
        and (not selector.models or device.model in selector.models)
        and (not selector.sites or device.site in selector.sites)
        and (not selector.devices or device.id in selector.devices)
    )


def levels_for(rule: ThresholdMonitor, device: DeviceSettings) -> Levels:
    above, below, clear, hold = rule.above, rule.below, rule.clear, rule.for_
    # Later, more specific overrides win: model, then site, then device.
    ranked = sorted(
        (o for o in rule.overrides if _override_matches(o.model, o.site, o.device, device)),
        key=lambda o: (o.device is not None, o.site is not None, o.model is not None),
    )
    for override in ranked:
        if override.above is not None:
            above, below = override.above, None
        if override.below is not None:
            above, below = None, override.below
        if override.clear is not None:
            clear = override.clear
        if override.for_ is not None:
            hold = override.for_
    level = above if above is not None else below
    assert level is not None
    if (
        clear is None
        or (above is not None and clear > above)
        or (below is not None and clear < below)
    ):
        clear = level
    return Levels(above=above, below=below, clear=clear, hold=hold)


def _override_matches(
    model: str | None, site: str | None, device_id: str | None, device: DeviceSettings
) -> bool:
    return (
        (model is None or model == device.model)
        and (site is None or site == device.site)
        and (device_id is None or device_id == device.id)
    )


def fingerprint(rule_id: str, subject: str) -> str:
    return f"{rule_id}:{subject}"


@dataclass(frozen=True)
class DeviceRules:
    """The rules that watch one device, resolved once at start-up (not per message)."""

    thresholds: dict[str, tuple[tuple[ThresholdMonitor, Levels], ...]]
    """metric -> threshold rules with this device's levels."""
    fault_codes: tuple[FaultCodeMonitor, ...]
    offline: tuple[OfflineMonitor, ...]
    rates: dict[str, tuple[RateMonitor, ...]]
    """metric -> rate-of-change rules."""
    drifts: dict[str, tuple[DriftMonitor, ...]]
    """metric -> moving-average drift rules."""
    baselines: dict[str, tuple[BaselineMonitor, ...]]
    """metric -> learned-baseline rules."""
    forecasts: dict[str, tuple[ForecastMonitor, ...]]
    """metric -> time-to-limit rules."""
    tracked: frozenset[str]
    """Metrics whose latest reading scheduled checks need (``latest_readings``)."""


def compile_rules(
    monitors: tuple[MonitorSettings, ...], devices: tuple[DeviceSettings, ...]
) -> dict[str, DeviceRules]:
    compiled: dict[str, DeviceRules] = {}
    for device in devices:
        thresholds: dict[str, list[tuple[ThresholdMonitor, Levels]]] = {}
        faults: list[FaultCodeMonitor] = []
        offline: list[OfflineMonitor] = []
        rates: dict[str, list[RateMonitor]] = {}
        drifts: dict[str, list[DriftMonitor]] = {}
        baselines: dict[str, list[BaselineMonitor]] = {}
        forecasts: dict[str, list[ForecastMonitor]] = {}
        tracked: set[str] = set()
        for rule in monitors:
            if not selects(rule.applies_to, device):
                continue
            if isinstance(rule, ThresholdMonitor):
                thresholds.setdefault(rule.metric, []).append((rule, levels_for(rule, device)))
                tracked.add(rule.metric)
            elif isinstance(rule, FaultCodeMonitor):
                faults.append(rule)
            elif isinstance(rule, RateMonitor):
                rates.setdefault(rule.metric, []).append(rule)
            elif isinstance(rule, DriftMonitor):
                drifts.setdefault(rule.metric, []).append(rule)
            elif isinstance(rule, BaselineMonitor):
                baselines.setdefault(rule.metric, []).append(rule)
            elif isinstance(rule, ForecastMonitor):
                forecasts.setdefault(rule.metric, []).append(rule)
                tracked.add(rule.metric)  # its judging starts from the latest reading
            elif isinstance(rule, PeerMonitor):
                tracked.add(rule.metric)
            else:
                offline.append(rule)
                if rule.metric is not None:
                    tracked.add(rule.metric)
        compiled[device.id] = DeviceRules(
            thresholds={m: tuple(r) for m, r in thresholds.items()},
            fault_codes=tuple(faults),
            offline=tuple(offline),
            rates={m: tuple(r) for m, r in rates.items()},
            drifts={m: tuple(r) for m, r in drifts.items()},
            baselines={m: tuple(r) for m, r in baselines.items()},
            forecasts={m: tuple(r) for m, r in forecasts.items()},
            tracked=frozenset(tracked),
        )
    return compiled


@dataclass(frozen=True)
class Inherited:
    """One setting of a threshold rule as one device really gets it, and where from."""

    key: str
    """``above`` or ``below``, ``clear`` or ``for``."""
    value: str
    source: str
    """``global (the rule)``, ``model override (SunPeak 8K)``, ``site override (s-lisbon)``,
    ``device override (inv-101)``, or why a default applies."""


def level_trace(rule: ThresholdMonitor, device: DeviceSettings) -> list[Inherited]:
    """:func:`levels_for` with the origin of each value: the same precedence (device beats
    site beats model beats the rule), for the rule editor's inheritance table."""
    levels = levels_for(rule, device)
    ranked = sorted(
        (o for o in rule.overrides if _override_matches(o.model, o.site, o.device, device)),
        key=lambda o: (o.device is not None, o.site is not None, o.model is not None),
    )
    origin = {
        "level": "global (the rule)",
        "clear": "global (the rule)",
        "for": "global (the rule)",
    }
    for override in ranked:
        where = _override_name(override.model, override.site, override.device)
        if override.above is not None or override.below is not None:
            origin["level"] = where
        if override.clear is not None:
            origin["clear"] = where
        if override.for_ is not None:
            origin["for"] = where
    level = levels.above if levels.above is not None else levels.below
    assert level is not None
    written = rule.clear
    for override in ranked:
        if override.clear is not None:
            written = override.clear
    if written is None:
        origin["clear"] = "the firing level (no clear level set)"
    elif written != levels.clear:
        origin["clear"] = f"the firing level (the clear level {written:g} is past it)"
    return [
        Inherited("above" if levels.above is not None else "below", f"{level:g}", origin["level"]),
        Inherited("clear", f"{levels.clear:g}", origin["clear"]),
        Inherited("for", format_duration(levels.hold), origin["for"]),
    ]


def _override_name(model: str | None, site: str | None, device: str | None) -> str:
    if device is not None:
        return f"device override ({device})"
    if site is not None:
        return f"site override ({site})" + (f" for model {model}" if model else "")
    return f"model override ({model})"
