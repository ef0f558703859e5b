"""ReadingStore: the same answers from memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from forewarn.config.schema import OfflineMonitor, PeerMonitor
from forewarn.ports import Latest
from forewarn.telemetry.sample import Sample
from tests.store.contract.conftest import REGISTERED, Unit

T0 = REGISTERED + timedelta(days=1)


def reading(
    device: str,
    minute: int,
    value: float | None,
    *,
    metric: str = "t",
    stale: bool = False,
    code: str | None = None,
) -> Sample:
    at = T0 + timedelta(minutes=minute)
    return Sample(device, metric, at, received_at=at, value=value, code=code, stale=stale)


def test_it_stores_a_redelivered_reading_once(unit: Unit) -> None:
    with unit() as stores:
        assert stores.readings.add_readings([reading("d1", 0, 1.0), reading("d1", 1, 2.0)], T0) == 2
    with unit() as stores:
        assert stores.readings.add_readings([reading("d1", 1, 2.0), reading("d1", 2, 3.0)], T0) == 1
        history = stores.readings.history("d1", "t", T0, T0 + timedelta(hours=1))
    assert [v for _, v in history] == [1.0, 2.0, 3.0]


def test_its_history_is_in_event_time_order_without_stale_or_empty_readings(unit: Unit) -> None:
    with unit() as stores:
        stores.readings.add_readings(
            [
                reading("d1", 5, 5.0),
                reading("d1", 1, 1.0),
                reading("d1", 3, 9.0, stale=True),
                reading("d1", 4, None, code="E1"),
                reading("d1", 2, 2.0),
                reading("d2", 2, 7.0),
            ],
            T0,
        )
    with unit() as stores:
        points = stores.readings.history(
            "d1", "t", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
        )
        every = stores.readings.history("d1", "t", T0, T0 + timedelta(minutes=9))
    assert points == [(T0 + timedelta(minutes=1), 1.0), (T0 + timedelta(minutes=2), 2.0)]
    assert [v for _, v in every] == [1.0, 2.0, 5.0]


def test_it_averages_the_recent_window_and_the_baseline_before_it(unit: Unit) -> None:
    with unit() as stores:
        stores.readings.add_readings([reading("d1", m, float(m)) for m in range(10)], T0)
    with unit() as stores:
        recent, baseline = stores.readings.averages(
            "d1",
            "t",
            T0 + timedelta(minutes=5),
            T0 + timedelta(minutes=1),
            T0 + timedelta(minutes=8),
        )
    assert (recent.mean, recent.count) == (7.0, 3)  # 6, 7, 8
    assert (baseline.mean, baseline.count, baseline.first) == (3.5, 4, T0 + timedelta(minutes=2))


def test_it_keeps_the_newest_fresh_reading_as_the_latest(unit: Unit) -> None:
    with unit() as stores:
        stores.readings.record_latest([reading("d1", 2, 2.0), reading("d1", 1, 1.0)])
        stores.readings.record_latest([reading("d1", 3, 9.0, stale=True), reading("d2", 1, 4.0)])
    with unit() as stores:
        stores.readings.record_latest([reading("d1", 0, 0.0)])  # older: ignored
        latest = stores.readings.latest(["d1", "d2", "d3"], "t")
    assert latest == {
        "d1": Latest(T0 + timedelta(minutes=2), 2.0),
        "d2": Latest(T0 + timedelta(minutes=1), 4.0),
    }


def test_it_names_the_devices_silent_past_the_cutoff_in_the_rules_scope(unit: Unit) -> None:
    rule = OfflineMonitor.model_validate(
        {"id": "gone", "kind": "offline", "after": "10m", "applies_to": {"kinds": ["inverter"]}}
    )
    with unit() as stores:
        stores.readings.add_readings(
            [reading("d1", 0, 1.0), reading("d2", 30, 1.0), reading("b1", 0, 1.0)], T0
        )
    with unit() as stores:
        changes = dict(stores.readings.offline_changes(rule, T0 + timedelta(minutes=20)))
    # d3 and d4 never reported: silent since they were registered.
    assert changes == {"d1": T0, "d3": REGISTERED, "d4": REGISTERED}
    with unit() as stores:
        heard = stores.readings.last_heard(rule)
    assert heard == {"d1": T0, "d2": T0 + timedelta(minutes=30), "d3": REGISTERED, "d4": REGISTERED}


def test_it_judges_a_device_against_its_cohorts_median(unit: Unit) -> None:
    rule = PeerMonitor.model_validate(
        {"id": "peer", "kind": "fleet_peer", "metric": "t", "min_cohort": 3, "fresh": "1h"}
    )
    with unit() as stores:
        stores.readings.record_latest(
            [
                reading("d1", 0, 100.0),
                reading("d2", 0, 101.0),
                reading("d3", 0, 99.0),
                reading("d4", 0, 10.0),
            ]
        )
    with unit() as stores:
        found = stores.readings.peer_readings(rule, T0 + timedelta(minutes=5), ["d2"])
    assert set(found) == {"d4", "d2"}
    assert found["d4"].cohort_size == 4
    assert found["d4"].median == 99.5
