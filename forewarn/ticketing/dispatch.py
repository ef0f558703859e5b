"""Choosing a technician: hard filters first, then a score. Pure: data in, decision out.

Filters (a technician failing any is excluded, with the reason recorded): active; not
excluded for this job (by the customer or site, or because they declined it or let it
time out); skill for the product; service region (one of their area codes, or within the
radius of their home base); on shift now or starting a shift before the SLA is due;
capacity (open jobs < max jobs).

Score (lower is better), see ``docs/dispatch.md``:

* current load as a share of capacity, times 10 (dominates: spread the work);
* distance from home base, 0.01 per km (0.02 for a critical job: who arrives first matters);
* hours until the technician's shift starts, 0.5 per hour (1.0 for critical);
* minus 3 for a technician the customer or site prefers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from forewarn.ticketing.shifts import Schedule, next_on_duty

ALWAYS = Schedule()
"""On duty at any hour (no shifts configured)."""
LOAD_WEIGHT = 10.0
DISTANCE_WEIGHT = {"critical": 0.02}
DEFAULT_DISTANCE_WEIGHT = 0.01
WAIT_WEIGHT = {"critical": 1.0}
DEFAULT_WAIT_WEIGHT = 0.5
PREFERENCE_BONUS = 3.0


@dataclass(frozen=True)
class Candidate:
    id: str
    name: str
    skills: frozenset[str]
    regions: frozenset[str]
    max_jobs: int
    open_jobs: int
    lat: float | None = None
    lon: float | None = None
    active: bool = True
    schedule: Schedule = ALWAYS
    """Working hours and days off; the default is always on duty."""
    radius_km: float | None = None
    """Also serves any site within this distance of home base, whatever its region."""


@dataclass(frozen=True)
class Job:
    skill: str
    """The product type (device kind) to be repaired."""
    region: str
    priority: str
    """The alert's severity (``critical``, ``major``, ...)."""
    lat: float | None = None
    lon: float | None = None
    now: datetime | None = None
    """When dispatching happens; without it working hours are not considered."""
    due: datetime | None = None
    """The SLA due time: a technician whose next shift starts later is not eligible."""
    preferred: frozenset[str] = frozenset()
    """Technicians the customer or site prefers."""
    excluded: dict[str, str] = field(default_factory=dict)
    """Technicians who must not get this job, with the reason (customer exclusion,
    declined it, did not acknowledge it in time)."""


@dataclass(frozen=True)
class Ranked:
    id: str
    score: float
    open_jobs: int
    distance_km: float | None
    available_from: datetime | None = None
    """When the technician can start, if later than ``now`` (next shift)."""
    preferred: bool = False


@dataclass(frozen=True)
class Decision:
    technician_id: str | None
    reason: str
    ranked: tuple[Ranked, ...] = ()
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def runner_up(self) -> Ranked | None:
        return self.ranked[1] if len(self.ranked) > 1 else None

    def record(self) -> dict[str, Any]:
        """The decision as stored on the ticket (``tickets.dispatch``)."""
        runner_up = self.runner_up
        return {
            "chosen": self.technician_id,
            "reason": self.reason,
            "runner_up": (
                None
                if runner_up is None
                else {"technician": runner_up.id, "score": round(runner_up.score, 3)}
            ),
            "candidates": [
                {
                    "technician": r.id,
                    "score": round(r.score, 3),
                    "open_jobs": r.open_jobs,
                    "distance_km": None if r.distance_km is None else round(r.distance_km, 1),
                    "available_from": (
                        None if r.available_from is None else r.available_from.isoformat()
                    ),
                    "preferred": r.preferred,
                }
                for r in self.ranked
            ],
            "excluded": dict(self.excluded),
        }


def choose_technician(job: Job, candidates: list[Candidate]) -> Decision:
    """The best eligible technician for ``job``, or none with the reasons why."""
    excluded: dict[str, str] = {}
    ranked: list[Ranked] = []
    for tech in candidates:
        # The cheap filters first: a storm weighs every technician for every ticket, and
        # most of them fail on skill or region before distance and shifts matter.
        problem = _unqualified(job, tech)
        if problem:
            excluded[tech.id] = problem
            continue
        distance = _distance_km(job, tech)
        start = None if job.now is None else _next_on_duty(tech.schedule, job.now)
        problem = _ineligible(job, tech, distance, start)
        if problem:
            excluded[tech.id] = problem
            continue
        load = tech.open_jobs / tech.max_jobs
        distance_weight = DISTANCE_WEIGHT.get(job.priority, DEFAULT_DISTANCE_WEIGHT)
        score = load * LOAD_WEIGHT + (distance or 0.0) * distance_weight
        later = None
        if start is not None and job.now is not None and start > job.now:
            later = start
            hours = (start - job.now).total_seconds() / 3600
            score += hours * WAIT_WEIGHT.get(job.priority, DEFAULT_WAIT_WEIGHT)
        preferred = tech.id in job.preferred
        if preferred:
            score -= PREFERENCE_BONUS
        ranked.append(Ranked(tech.id, score, tech.open_jobs, distance, later, preferred))
    ranked.sort(key=lambda r: (r.score, r.id))
    if not ranked:
        return Decision(None, "no eligible technician: sent to the dispatcher queue", (), excluded)
    best = ranked[0]
    parts = [f"has the skill '{job.skill}'"]
    if job.region in next(c.regions for c in candidates if c.id == best.id):
        parts.append(f"serves region '{job.region}'")
    else:
        parts.append("within the radius of their home base")
    if job.now is not None:
        parts.append(
            "on shift now"
            if best.available_from is None
            else f"on shift from {best.available_from.isoformat()}"
        )
    parts.append(f"{best.open_jobs} open job(s)")
    if best.distance_km is not None:
        parts.append(f"{best.distance_km:.1f} km from home base")
    if best.preferred:
        parts.append("preferred for this customer or site")
    return Decision(best.id, "; ".join(parts), tuple(ranked), excluded)


_next_on_duty = functools.lru_cache(maxsize=4096)(next_on_duty)
"""Every ticket of a storm asks the same technicians at the same time."""


def _unqualified(job: Job, tech: Candidate) -> str | None:
    """The filters that need neither distance nor shifts, in :func:`_ineligible`'s order."""
    if not tech.active:
        return "inactive"
    if tech.id in job.excluded:
        return job.excluded[tech.id]
    if job.skill not in tech.skills:
        return f"lacks skill '{job.skill}'"
    if job.region not in tech.regions and tech.radius_km is None:
        return f"does not serve region '{job.region}'"
    return None


def _ineligible(
    job: Job, tech: Candidate, distance: float | None, start: datetime | None
) -> str | None:
    if job.region not in tech.regions and tech.radius_km is not None:
        if distance is None:
            return f"does not serve region '{job.region}' (no coordinates to measure the radius)"
        if distance > tech.radius_km:
            return (
                f"does not serve region '{job.region}' and is {distance:.1f} km away "
                f"(radius {tech.radius_km:g} km)"
            )
    if job.now is not None:
        if start is None:
            return "no shift in the next three weeks"
        if job.due is not None and start > job.due:
            return f"off shift until {start.isoformat()}, after the SLA due time"
    if tech.open_jobs >= tech.max_jobs:
        return f"at capacity ({tech.open_jobs}/{tech.max_jobs} open jobs)"
    return None


def _distance_km(job: Job, tech: Candidate) -> float | None:
    if job.lat is None or job.lon is None or tech.lat is None or tech.lon is None:
        return None
    lat1, lon1, lat2, lon2 = map(math.radians, (job.lat, job.lon, tech.lat, tech.lon))
    a = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(a))
