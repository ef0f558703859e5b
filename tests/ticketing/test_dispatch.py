"""Choosing a technician: hard filters with reasons, then load before distance."""

from __future__ import annotations

from typing import Any

import pytest

from forewarn.ticketing.dispatch import Candidate, Job, choose_technician

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

    assert set(record) == {"chosen", "reason", "candidates", "excluded"}
    assert record["chosen"] == "nohome"
    assert record["reason"] == decision.reason
    assert record["excluded"] == {"joao": "does not serve region 'lisbon-west'"}
    nohome, ana = record["candidates"]
    assert nohome == {"technician": "nohome", "score": 0.0, "open_jobs": 0, "distance_km": None}
    assert ana["technician"] == "ana"
    assert ana["open_jobs"] == 1
    assert ana["distance_km"] == 10.4
    # A third of capacity weighs 10/3; each km 0.01.
    assert ana["score"] == pytest.approx(10 / 3 + 10.4 * 0.01, abs=0.001)
