"""The pure evaluators: a rule, one sample (or silence) and the open alert in, a verdict out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from forewarn.config.schema import (
    DeviceSettings,
    FaultCodeMonitor,
    OfflineMonitor,
    ThresholdMonitor,
)
from forewarn.monitors.evaluate import (
    OpenAlert,
    evaluate_fault_code,
    evaluate_offline,
    evaluate_threshold,
)
from forewarn.monitors.rules import Levels, levels_for
from forewarn.telemetry.sample import STATUS_METRIC, Sample

T0 = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)
DEVICE = DeviceSettings(id="inv-1", site="s-1", model="SunPeak 5K", kind="inverter")


def threshold(**settings: Any) -> tuple[ThresholdMonitor, Levels]:
    rule = ThresholdMonitor.model_validate(
        {"id": "hot", "kind": "threshold", "metric": "temperature", **settings}
    )
    return rule, levels_for(rule, DEVICE)


def reading(value: float, at: datetime, *, stale: bool = False) -> Sample:
    return Sample("inv-1", "temperature", at, received_at=at, value=value, stale=stale)


def status(code: str, at: datetime, *, stale: bool = False) -> Sample:
    return Sample("inv-1", STATUS_METRIC, at, received_at=at, code=code, stale=stale)


def pending(since: datetime, last_ts: datetime | None = None) -> OpenAlert:
    return OpenAlert(state="pending", pending_since=since, last_ts=last_ts or since)


def firing(since: datetime, last_ts: datetime | None = None) -> OpenAlert:
    return OpenAlert(state="firing", pending_since=since, last_ts=last_ts or since)


FAULTS = FaultCodeMonitor.model_validate(
    {
        "id": "faults",
        "kind": "fault_code",
        "severity": "minor",
        "codes": {
            "E021": {
                "severity": "critical",
                "description": "grid isolation fault",
                "suggested_fix": "Measure insulation resistance of the PV strings.",
            },
            "E044": {"severity": "major", "description": "DC arc detected"},
        },
    }
)
OFFLINE = OfflineMonitor.model_validate({"id": "offline", "kind": "offline", "after": "10m"})


# -- threshold ---------------------------------------------------------------------------


def test_it_pends_when_the_level_is_first_crossed_and_a_hold_is_configured() -> None:
    rule, levels = threshold(above=80, **{"for": "5m"})

    verdict = evaluate_threshold(rule, levels, reading(85, T0), None)

    assert verdict.action == "pend"
    assert verdict.at == T0
    assert verdict.value == 85


def test_it_waits_while_the_condition_has_held_for_less_than_the_hold() -> None:
    rule, levels = threshold(above=80, **{"for": "5m"})

    verdict = evaluate_threshold(rule, levels, reading(85, T0 + timedelta(minutes=4)), pending(T0))

    assert verdict.action == "none"


def test_it_fires_once_the_condition_has_held_for_the_hold() -> None:
    rule, levels = threshold(
        above=80, severity="critical", suggested_fix="Clean the fan.", **{"for": "5m"}
    )
    at = T0 + timedelta(minutes=5)

    verdict = evaluate_threshold(rule, levels, reading(86, at), pending(T0))

    assert verdict.action == "fire"
    assert verdict.at == at
    assert verdict.severity == "critical"
    assert verdict.suggested_fix == "Clean the fan."
    assert verdict.evidence["held_since"] == T0.isoformat()
    assert verdict.evidence["value"] == 86


def test_it_fires_at_once_without_a_hold() -> None:
    rule, levels = threshold(above=80)

    verdict = evaluate_threshold(rule, levels, reading(81, T0), None)

    assert verdict.action == "fire"
    assert verdict.at == T0


def test_it_cancels_a_pending_alert_when_the_value_is_back_before_the_hold() -> None:
    rule, levels = threshold(above=80, clear=70, **{"for": "5m"})
    at = T0 + timedelta(minutes=2)

    # 79 is above the clear level, but a pending alert only needs the firing level unmet.
    verdict = evaluate_threshold(rule, levels, reading(79, at), pending(T0))

    assert verdict.action == "cancel"
    assert verdict.at == at


def test_it_ignores_a_normal_value_when_nothing_is_open() -> None:
    rule, levels = threshold(above=80)

    assert evaluate_threshold(rule, levels, reading(80, T0), None).action == "none"


def test_it_keeps_firing_between_the_clear_and_the_firing_level() -> None:
    rule, levels = threshold(above=80, clear=70)

    verdict = evaluate_threshold(rule, levels, reading(71, T0 + timedelta(minutes=1)), firing(T0))

    assert verdict.action == "none"


def test_it_resolves_at_the_clear_level() -> None:
    rule, levels = threshold(above=80, clear=70)
    at = T0 + timedelta(minutes=1)

    verdict = evaluate_threshold(rule, levels, reading(70, at), firing(T0))

    assert verdict.action == "resolve"
    assert verdict.at == at


def test_it_resolves_at_the_firing_level_when_no_clear_level_is_set() -> None:
    rule, levels = threshold(above=80)

    verdict = evaluate_threshold(rule, levels, reading(80, T0 + timedelta(minutes=1)), firing(T0))

    assert verdict.action == "resolve"


def test_it_fires_below_a_lower_level_and_clears_above_its_clear_level() -> None:
    rule, levels = threshold(below=10, clear=15)

    fired = evaluate_threshold(rule, levels, reading(9, T0), None)
    between = evaluate_threshold(rule, levels, reading(14, T0 + timedelta(minutes=1)), firing(T0))
    cleared = evaluate_threshold(rule, levels, reading(15, T0 + timedelta(minutes=2)), firing(T0))

    assert fired.action == "fire"
    assert between.action == "none"
    assert cleared.action == "resolve"


def test_it_never_fires_on_a_stale_sample() -> None:
    rule, levels = threshold(above=80)

    assert evaluate_threshold(rule, levels, reading(95, T0, stale=True), None).action == "none"


def test_it_never_clears_on_a_stale_sample() -> None:
    rule, levels = threshold(above=80, clear=70)
    stale = reading(20, T0 + timedelta(minutes=1), stale=True)

    assert evaluate_threshold(rule, levels, stale, firing(T0)).action == "none"


def test_it_ignores_a_sample_older_than_the_one_that_last_moved_the_alert() -> None:
    rule, levels = threshold(above=80, clear=70)
    alert = firing(T0, last_ts=T0 + timedelta(minutes=5))

    older = evaluate_threshold(rule, levels, reading(20, T0 + timedelta(minutes=3)), alert)
    same = evaluate_threshold(rule, levels, reading(20, T0 + timedelta(minutes=5)), alert)
    newer = evaluate_threshold(rule, levels, reading(20, T0 + timedelta(minutes=6)), alert)

    assert older.action == "none"
    assert same.action == "none"
    assert newer.action == "resolve"


def test_it_does_not_cancel_a_pending_alert_on_an_out_of_order_sample() -> None:
    rule, levels = threshold(above=80, **{"for": "5m"})
    alert = pending(T0, last_ts=T0 + timedelta(minutes=1))

    verdict = evaluate_threshold(rule, levels, reading(20, T0 + timedelta(seconds=30)), alert)

    assert verdict.action == "none"


# -- fault codes -------------------------------------------------------------------------


def test_it_fires_a_listed_fault_code_at_once_with_its_severity_and_fix() -> None:
    verdict = evaluate_fault_code(FAULTS, status("E021", T0), None)

    assert verdict.action == "fire"
    assert verdict.at == T0
    assert verdict.severity == "critical"
    assert verdict.suggested_fix == "Measure insulation resistance of the PV strings."
    assert "grid isolation fault" in verdict.summary


def test_it_clears_a_fault_when_the_device_reports_another_code() -> None:
    verdict = evaluate_fault_code(FAULTS, status("OK", T0 + timedelta(minutes=1)), firing(T0))

    assert verdict.action == "resolve"
    assert verdict.at == T0 + timedelta(minutes=1)


def test_it_does_nothing_for_an_unlisted_code_when_no_fault_is_open() -> None:
    assert evaluate_fault_code(FAULTS, status("OK", T0), None).action == "none"


def test_it_does_not_fire_again_while_a_fault_is_open() -> None:
    verdict = evaluate_fault_code(FAULTS, status("E044", T0 + timedelta(minutes=1)), firing(T0))

    assert verdict.action == "none"


def test_it_ignores_stale_and_out_of_order_status_codes() -> None:
    stale = evaluate_fault_code(FAULTS, status("E021", T0, stale=True), None)
    older = evaluate_fault_code(
        FAULTS, status("OK", T0 - timedelta(minutes=1)), firing(T0, last_ts=T0)
    )

    assert stale.action == "none"
    assert older.action == "none"


# -- offline -----------------------------------------------------------------------------


def test_it_fires_an_offline_alert_at_the_timeout_not_when_it_is_noticed() -> None:
    last_seen = T0
    now = T0 + timedelta(minutes=47)

    verdict = evaluate_offline(OFFLINE, last_seen, None, now)

    assert verdict.action == "fire"
    assert verdict.at == last_seen + timedelta(minutes=10)
    assert verdict.evidence["last_seen"] == last_seen.isoformat()


def test_it_does_not_fire_before_the_timeout() -> None:
    now = T0 + timedelta(minutes=9, seconds=59)

    assert evaluate_offline(OFFLINE, T0, None, now).action == "none"


def test_it_fires_exactly_at_the_timeout() -> None:
    assert evaluate_offline(OFFLINE, T0, None, T0 + timedelta(minutes=10)).action == "fire"


def test_it_resolves_an_offline_alert_when_the_device_reports_again() -> None:
    back = T0 + timedelta(minutes=30)

    verdict = evaluate_offline(OFFLINE, back, firing(T0 + timedelta(minutes=10)), back)

    assert verdict.action == "resolve"
    assert verdict.at == back


def test_it_keeps_an_offline_alert_while_the_device_stays_silent() -> None:
    alert = firing(T0 + timedelta(minutes=10))

    verdict = evaluate_offline(OFFLINE, T0, alert, T0 + timedelta(hours=2))

    assert verdict.action == "none"
