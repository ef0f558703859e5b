"""AlertStore: the same answers from memory, SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from forewarn.config.schema import SilenceSettings
from forewarn.monitors.silences import Silence
from forewarn.ports import AlertEventRecord, AlertExists, AlertRecord
from tests.store.contract.conftest import REGISTERED, Unit

T0 = REGISTERED + timedelta(days=1)


def alert(rule: str = "hot", subject: str = "d1", state: str = "pending") -> AlertRecord:
    return AlertRecord(
        fingerprint=f"{rule}:{subject}",
        rule_id=rule,
        rule_version="v1",
        subject=subject,
        state=state,
        severity="major",
        summary="t 90 above 80",
        pending_since=T0,
        last_ts=T0,
        breaches=1,
        evidence={"value": 90},
    )


def test_it_gives_a_new_alert_an_id_and_finds_it_open(unit: Unit) -> None:
    with unit() as stores:
        stored = stores.alerts.insert(alert())
        other = stores.alerts.insert(alert("cold", "d2", "firing"))
    assert stored.id > 0 and other.id != stored.id
    with unit() as stores:
        assert stores.alerts.get(stored.id) == stored
        assert stores.alerts.open_alerts(subjects=["d1"]) == [stored]
        assert stores.alerts.open_alerts(fingerprints=["cold:d2", "x:y"]) == [other]
        assert stores.alerts.open_alerts(rule_ids=["hot"], states=["pending"]) == [stored]
        assert stores.alerts.open_alerts(states=["firing"]) == [other]
        assert stores.alerts.open_alerts() == [stored, other]


def test_it_refuses_a_second_open_alert_for_one_fingerprint_and_stays_usable(unit: Unit) -> None:
    with unit() as stores:
        first = stores.alerts.insert(alert())
        with pytest.raises(AlertExists):
            stores.alerts.insert(alert())
        stores.alerts.insert(alert("cold"))
    with unit() as stores:
        assert next(a.id for a in stores.alerts.open_alerts(subjects=["d1"])) == first.id
        assert len(stores.alerts.open_alerts(subjects=["d1"])) == 2


def test_a_resolved_alert_is_no_longer_open_and_its_end_is_remembered(unit: Unit) -> None:
    end = T0 + timedelta(minutes=5)
    with unit() as stores:
        stored = stores.alerts.insert(alert(state="firing"))
        stores.alerts.update(replace(stored, state="resolved", resolved_at=end, evidence={"v": 1}))
    with unit() as stores:
        assert stores.alerts.open_alerts(subjects=["d1"]) == []
        assert stores.alerts.last_resolved("hot:d1") == end
        assert stores.alerts.last_resolved("cold:d1") is None
        again = stores.alerts.insert(alert())  # a new episode
        assert again.id != stored.id
        got = stores.alerts.get(stored.id)
    assert got is not None and got.state == "resolved" and got.evidence == {"v": 1}


def test_it_counts_the_changes_to_and_from_firing_within_a_window(unit: Unit) -> None:
    with unit() as stores:
        stored = stores.alerts.insert(alert())
        for minute, (before, after) in enumerate(
            [
                (None, "pending"),
                ("pending", "firing"),
                ("firing", "resolved"),
                ("flapping", "flapping"),
            ]
        ):
            stores.alerts.add_event(
                AlertEventRecord(stored.id, T0 + timedelta(minutes=minute), before, after, "v1")
            )
    with unit() as stores:
        assert stores.alerts.count_changes("hot:d1", T0) == 3
        assert stores.alerts.count_changes("hot:d1", T0 + timedelta(minutes=1)) == 2
        assert stores.alerts.count_changes("cold:d1", T0) == 0


def test_it_acknowledges_an_open_alert_once(unit: Unit) -> None:
    with unit() as stores:
        stored = stores.alerts.insert(alert(state="firing"))
    with unit() as stores:
        acked = stores.alerts.acknowledge(stored.id, "ana", T0)
        assert acked is not None and acked.acknowledged_by == "ana"
        assert stores.alerts.acknowledge(stored.id, "rui", T0) is None
        assert stores.alerts.acknowledge(stored.id + 100, "rui", T0) is None


def test_it_keeps_api_silences_until_they_are_expired(unit: Unit) -> None:
    weekly = SilenceSettings.model_validate(
        {
            "id": "nightly",
            "sites": ["s1"],
            "hours": "22:00-06:00",
            "days": ["mon", "fri"],
            "timezone": "Europe/Lisbon",
            "created_by": "ops",
        }
    )
    once = SilenceSettings.model_validate(
        {"id": "visit", "devices": ["d1"], "starts": T0, "ends": T0 + timedelta(hours=2)}
    )
    with unit() as stores:
        stores.alerts.add_silence(Silence.from_settings(weekly, source="api"), T0)
        stores.alerts.add_silence(Silence.from_settings(once, source="api"), T0)
    with unit() as stores:
        kept = stores.alerts.silences(T0)
        assert [s.id for s in kept] == ["nightly", "visit"]
        assert kept[0] == Silence.from_settings(weekly, source="api")
        assert stores.alerts.expire_silence("visit", T0 + timedelta(hours=1)) is True
        assert stores.alerts.expire_silence("visit", T0 + timedelta(hours=1)) is False
        assert stores.alerts.expire_silence("nope", T0) is False
    with unit() as stores:
        assert [s.id for s in stores.alerts.silences(T0 + timedelta(hours=1))] == ["nightly"]
