"""Choosing a technician: hard filters first, then a score. Pure: data in, decision out.

Filters (a technician failing any is excluded, with the reason recorded):
skill for the product, service region, active, capacity (open jobs < max jobs).
Score (lower is better): current load as a share of capacity dominates, then the distance
from home base; a critical job weighs distance more, since the first to arrive matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class Job:
    skill: str
    """The product type (device kind) to be repaired."""
    region: str
    priority: str
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class Ranked:
    id: str
    score: float
    open_jobs: int
    distance_km: float | None


@dataclass(frozen=True)
class Decision:
    technician_id: str | None
    reason: str
    ranked: tuple[Ranked, ...] = ()
    excluded: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The decision as stored on the ticket (``tickets.dispatch``)."""
        return {
            "chosen": self.technician_id,
            "reason": self.reason,
            "candidates": [
                {
                    "technician": r.id,
                    "score": round(r.score, 3),
                    "open_jobs": r.open_jobs,
                    "distance_km": None if r.distance_km is None else round(r.distance_km, 1),
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
        problem = _ineligible(job, tech)
        if problem:
            excluded[tech.id] = problem
            continue
        distance = _distance_km(job, tech)
        load = tech.open_jobs / tech.max_jobs
        distance_weight = 0.02 if job.priority == "critical" else 0.01
        score = load * 10 + (distance or 0.0) * distance_weight
        ranked.append(Ranked(tech.id, score, tech.open_jobs, distance))
    ranked.sort(key=lambda r: (r.score, r.id))
    if not ranked:
        return Decision(None, "no eligible technician: sent to the dispatcher queue", (), excluded)
    best = ranked[0]
    parts = [
        f"has the skill '{job.skill}'",
        f"serves region '{job.region}'",
        f"{best.open_jobs} open job(s)",
    ]
    if best.distance_km is not None:
        parts.append(f"{best.distance_km:.1f} km from home base")
    return Decision(best.id, "; ".join(parts), tuple(ranked), excluded)


def _ineligible(job: Job, tech: Candidate) -> str | None:
    if not tech.active:
        return "inactive"
    if job.skill not in tech.skills:
        return f"lacks skill '{job.skill}'"
    if job.region not in tech.regions:
        return f"does not serve region '{job.region}'"
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
