"""Choosing a technician: hard filters with reasons, then load before distance."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from forewarn.ticketing.dispatch import Candidate, Job, choose_technician
from forewarn.ticketing.shifts import Schedule, Shift

# A job at Cascais; longitudes east of it are roughly 87 km per degree at this latitude.
JOB = Job(skill="inverter", region="lisbon-west", priority="major", lat=38.70, lon=-9.42)


def technician(ident: str, **changes: Any) -> Candidate:
    settings: dict[str, Any] = {
        "id": ident,
        "name": ident.title(),
        "skills": frozenset({"inverter", "battery"}),
        "regions": frozenset({"lisbon-west"}),
        "max_jobs": 3,
        "open_jobs": 0,
        "lat": 38.70,
        "lon": -9.30,
        "active": True,
    }
    settings.update(changes)
    return Candidate(**settings)


def test_it_excludes_a_technician_without_the_skill_for_the_product() -> None:
    decision = choose_technician(JOB, [technician("rui", skills=frozenset({"battery"}))])

    assert decision.technician_id is None
    assert decision.excluded == {"rui": "lacks skill 'inverter'"}


def test_it_excludes_a_technician_who_does_not_serve_the_region() -> None:
    decision = choose_technician(JOB, [technician("joao", regions=frozenset({"lisbon-south"}))])

    assert decision.excluded == {"joao": "does not serve region 'lisbon-west'"}


def test_it_excludes_a_technician_at_capacity() -> None:
    decision = choose_technician(JOB, [technician("ana", max_jobs=2, open_jobs=2)])

    assert decision.excluded == {"ana": "at capacity (2/2 open jobs)"}


def test_it_excludes_an_inactive_technician() -> None:
    decision = choose_technician(JOB, [technician("old", active=False)])

    assert decision.excluded == {"old": "inactive"}


def test_it_chooses_the_eligible_technician_and_says_why() -> None:
    decision = choose_technician(
        JOB,
        [
            technician("rui", skills=frozenset({"battery"})),
            technician("ana"),
            technician("joao", regions=frozenset({"lisbon-south"})),
        ],
    )

    assert decision.technician_id == "ana"
    assert [r.id for r in decision.ranked] == ["ana"]
    assert set(decision.excluded) == {"rui", "joao"}
    assert "has the skill 'inverter'" in decision.reason
    assert "serves region 'lisbon-west'" in decision.reason
    assert "km from home base" in decision.reason


def test_it_prefers_a_lighter_load_over_a_shorter_distance() -> None:
    near_but_busy = technician("near", lon=-9.41, open_jobs=1)
    far_but_free = technician("far", lon=-8.90)  # about 45 km away

    decision = choose_technician(JOB, [near_but_busy, far_but_free])

    assert decision.technician_id == "far"
    assert [r.id for r in decision.ranked] == ["far", "near"]


def test_it_breaks_a_tie_in_load_by_distance() -> None:
    far = technician("a-far", lon=-9.00, open_jobs=1)
    near = technician("b-near", lon=-9.40, open_jobs=1)

    decision = choose_technician(JOB, [far, near])

    assert decision.technician_id == "b-near"
    ranked = {r.id: r for r in decision.ranked}
    assert ranked["b-near"].distance_km is not None
    assert ranked["a-far"].distance_km is not None
    assert ranked["b-near"].distance_km < ranked["a-far"].distance_km


def test_it_sends_the_job_to_the_dispatcher_queue_when_nobody_is_eligible() -> None:
    decision = choose_technician(
        JOB,
        [technician("rui", skills=frozenset({"battery"})), technician("ana", open_jobs=3)],
    )

    assert decision.technician_id is None
    assert "dispatcher queue" in decision.reason
    assert decision.ranked == ()
    assert decision.excluded == {
        "rui": "lacks skill 'inverter'",
        "ana": "at capacity (3/3 open jobs)",
    }


def test_it_records_the_decision_with_candidates_scores_and_exclusions() -> None:
    decision = choose_technician(
        JOB,
        [
            technician("ana", lon=-9.30, open_jobs=1),
            technician("joao", regions=frozenset({"lisbon-south"})),
            technician("nohome", lat=None, lon=None),
        ],
    )

    record = decision.record()

    assert set(record) == {"chosen", "reason", "runner_up", "candidates", "excluded"}
    assert record["chosen"] == "nohome"
    assert record["reason"] == decision.reason
    assert record["excluded"] == {"joao": "does not serve region 'lisbon-west'"}
    nohome, ana = record["candidates"]
    assert nohome == {
        "technician": "nohome",
        "score": 0.0,
        "open_jobs": 0,
        "distance_km": None,
        "available_from": None,
        "preferred": False,
    }
    assert record["runner_up"] == {"technician": "ana", "score": ana["score"]}
    assert ana["technician"] == "ana"
    assert ana["open_jobs"] == 1
    assert ana["distance_km"] == 10.4
    # A third of capacity weighs 10/3; each km 0.01.
    assert ana["score"] == pytest.approx(10 / 3 + 10.4 * 0.01, abs=0.001)


NIGHT = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)  # a Tuesday, 03:00 in Lisbon
DAY_SHIFT = Schedule(
    "Europe/Lisbon", (Shift(frozenset({"mon", "tue", "wed", "thu", "fri"}), time(8), time(17)),)
)


def test_it_excludes_a_technician_whose_next_shift_starts_after_the_sla() -> None:
    job = replace(JOB, priority="critical", now=NIGHT, due=NIGHT + timedelta(hours=4))

    decision = choose_technician(job, [technician("ana", schedule=DAY_SHIFT)])

    assert decision.technician_id is None
    assert decision.excluded == {
        "ana": "off shift until 2026-11-03T08:00:00+00:00, after the SLA due time"
    }


def test_it_accepts_a_technician_whose_shift_starts_within_the_sla_but_prefers_one_on_duty() -> (
    None
):
    job = replace(JOB, now=NIGHT, due=NIGHT + timedelta(hours=24))

    decision = choose_technician(
        job, [technician("ana", schedule=DAY_SHIFT), technician("zoe", lon=-9.0)]
    )

    # On call now and 37 km away (0.37) beats five hours' wait (2.5) 10 km away.
    assert decision.technician_id == "zoe"
    ana = next(r for r in decision.ranked if r.id == "ana")
    assert ana.available_from == datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    assert "on shift now" in decision.reason


def test_it_serves_a_site_outside_the_regions_within_the_home_base_radius() -> None:
    outsider = technician("rui", regions=frozenset({"lisbon-south"}), radius_km=15)
    too_far = technician("ze", regions=frozenset({"porto"}), lon=-8.9, radius_km=15)

    decision = choose_technician(JOB, [outsider, too_far])

    assert decision.technician_id == "rui"
    assert "within the radius of their home base" in decision.reason
    assert decision.excluded == {
        "ze": "does not serve region 'lisbon-west' and is 45.1 km away (radius 15 km)"
    }


def test_it_never_dispatches_an_excluded_technician_and_scores_a_preferred_one_ahead() -> None:
    job = replace(
        JOB,
        preferred=frozenset({"far"}),
        excluded={"near": "excluded by customer c-silva"},
    )

    decision = choose_technician(
        job, [technician("near", lon=-9.41), technician("far", lon=-9.0), technician("mid")]
    )

    assert decision.technician_id == "far"
    assert decision.excluded == {"near": "excluded by customer c-silva"}
    assert decision.runner_up is not None and decision.runner_up.id == "mid"
    assert "preferred for this customer or site" in decision.reason
