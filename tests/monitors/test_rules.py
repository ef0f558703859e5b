"""Rules resolved per device: threshold inheritance and which monitors watch which device."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from forewarn.config import parse_config
from forewarn.config.schema import DeviceSettings, ThresholdMonitor
from forewarn.monitors.rules import compile_rules, levels_for

SMALL = DeviceSettings(id="inv-101", site="s-cascais", model="SunPeak 5K", kind="inverter")
LARGE = DeviceSettings(id="inv-301", site="s-almada", model="SunPeak 8K", kind="inverter")
LARGE_AT_CASCAIS = DeviceSettings(
    id="inv-102", site="s-cascais", model="SunPeak 8K", kind="inverter"
)


def threshold(**settings: Any) -> ThresholdMonitor:
    return ThresholdMonitor.model_validate(
        {"id": "hot", "kind": "threshold", "metric": "temperature", **settings}
    )


def test_it_uses_the_rule_levels_when_no_override_matches() -> None:
    rule = threshold(above=75, clear=65, **{"for": "4m"})

    levels = levels_for(rule, SMALL)

    assert (levels.above, levels.below, levels.clear) == (75, None, 65)
    assert levels.hold == timedelta(minutes=4)


def test_it_applies_an_override_for_the_device_model() -> None:
    rule = threshold(above=75, clear=65, overrides=[{"model": "SunPeak 8K", "above": 80}])

    assert levels_for(rule, LARGE).above == 80
    assert levels_for(rule, SMALL).above == 75


def test_it_lets_a_site_override_beat_a_model_override_whatever_their_order() -> None:
    site_first = threshold(
        above=75,
        overrides=[{"site": "s-cascais", "above": 70}, {"model": "SunPeak 8K", "above": 80}],
    )
    model_first = threshold(
        above=75,
        overrides=[{"model": "SunPeak 8K", "above": 80}, {"site": "s-cascais", "above": 70}],
    )

    assert levels_for(site_first, LARGE_AT_CASCAIS).above == 70
    assert levels_for(model_first, LARGE_AT_CASCAIS).above == 70
    assert levels_for(model_first, LARGE).above == 80


def test_it_lets_a_device_override_beat_a_site_override() -> None:
    rule = threshold(
        above=75,
        overrides=[
            {"device": "inv-101", "above": 90, "for": "1m"},
            {"site": "s-cascais", "above": 70, "for": "10m"},
        ],
    )

    levels = levels_for(rule, SMALL)

    assert levels.above == 90
    assert levels.hold == timedelta(minutes=1)
    assert levels_for(rule, LARGE_AT_CASCAIS).above == 70


def test_it_keeps_inherited_settings_an_override_does_not_set() -> None:
    rule = threshold(
        above=75,
        clear=60,
        overrides=[{"model": "SunPeak 8K", "for": "2m"}, {"device": "inv-301", "above": 85}],
    )

    levels = levels_for(rule, LARGE)

    assert levels.above == 85
    assert levels.clear == 60
    assert levels.hold == timedelta(minutes=2)


def test_it_clears_at_the_firing_level_when_no_clear_level_is_set() -> None:
    assert levels_for(threshold(above=75), SMALL).clear == 75
    assert levels_for(threshold(below=10), SMALL).clear == 10


def test_it_drops_an_inherited_clear_level_that_an_override_put_on_the_wrong_side() -> None:
    # The rule clears at 65; a device override firing at 60 cannot clear above its level.
    rule = threshold(above=75, clear=65, overrides=[{"device": "inv-101", "above": 60}])

    levels = levels_for(rule, SMALL)

    assert levels.above == 60
    assert levels.clear == 60


def test_it_lets_an_override_turn_a_rule_into_a_lower_limit() -> None:
    rule = threshold(above=75, overrides=[{"device": "inv-101", "below": 5, "clear": 8}])

    levels = levels_for(rule, SMALL)

    assert (levels.above, levels.below, levels.clear) == (None, 5, 8)
    assert levels.breached(4)
    assert not levels.breached(90)
    assert levels.cleared(8)


def test_it_rejects_a_clear_level_beyond_the_firing_level() -> None:
    with pytest.raises(ValueError, match="clear"):
        threshold(above=75, clear=80)


FLEET = """
customers: [{id: c-1, name: Ana}]
sites:
  - {id: s-cascais, name: Home, customer: c-1, region: west}
  - {id: s-almada, name: Shop, customer: c-1, region: south}
devices:
  - {id: inv-101, site: s-cascais, model: SunPeak 5K, kind: inverter}
  - {id: bat-102, site: s-cascais, model: StoreX 10, kind: battery}
  - {id: inv-301, site: s-almada, model: SunPeak 8K, kind: inverter}
monitors:
  - {id: inverter-hot, kind: threshold, metric: temperature, above: 75,
     applies_to: {kinds: [inverter]}, overrides: [{model: SunPeak 8K, above: 80}]}
  - {id: big-inverter-power, kind: threshold, metric: power, below: 100,
     applies_to: {models: [SunPeak 8K]}}
  - {id: cascais-hot, kind: threshold, metric: temperature, above: 60,
     applies_to: {sites: [s-cascais]}}
  - {id: battery-faults, kind: fault_code, applies_to: {devices: [bat-102]},
     codes: {B7: {description: cell imbalance}}}
  - {id: offline, kind: offline, after: 10m}
"""


def test_it_compiles_for_each_device_only_the_monitors_its_selectors_pick() -> None:
    settings = parse_config(FLEET, {}).settings

    rules = compile_rules(settings.monitors, settings.devices)

    small, battery, large = rules["inv-101"], rules["bat-102"], rules["inv-301"]
    assert [r.id for r, _ in small.thresholds["temperature"]] == ["inverter-hot", "cascais-hot"]
    assert "power" not in small.thresholds
    assert [r.id for r, _ in battery.thresholds["temperature"]] == ["cascais-hot"]
    assert [r.id for r in battery.fault_codes] == ["battery-faults"]
    assert small.fault_codes == ()
    assert [r.id for r, _ in large.thresholds["temperature"]] == ["inverter-hot"]
    assert [r.id for r, _ in large.thresholds["power"]] == ["big-inverter-power"]
    assert all([r.id for r in d.offline] == ["offline"] for d in (small, battery, large))


def test_it_compiles_each_device_with_its_own_levels() -> None:
    settings = parse_config(FLEET, {}).settings

    rules = compile_rules(settings.monitors, settings.devices)

    (_, small_levels), _ = rules["inv-101"].thresholds["temperature"]
    ((_, large_levels),) = rules["inv-301"].thresholds["temperature"]
    assert small_levels.above == 75
    assert large_levels.above == 80
