"""``/metrics`` in the Prometheus text exposition format (version 0.0.4), written by hand.

Gauges about the store are computed at scrape time, each with one grouped ``COUNT``
query, so a scrape costs the same with ten devices or a million:

* ``forewarn_devices{state="reporting|silent"}``
* ``forewarn_alerts_open{severity}``
* ``forewarn_tickets_open{status}``
* ``forewarn_notifications{status}``
* ``forewarn_quarantine_total``

In-process counters (ingest statistics and the like) join through ``metrics_sources``:
callables returning ``(name, labels, value)`` samples. A sample whose name ends in
``_total`` is exposed as a counter, any other as a gauge. A source that raises or yields
an invalid sample is left out of that scrape and logged once, without failing the scrape.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy.orm import Session

from forewarn.web import queries
from forewarn.web.auth import Role
from forewarn.web.dependencies import ConsoleDep, Db, api_access

log = logging.getLogger(__name__)

Sample = tuple[str, Mapping[str, str], float]
MetricsSource = Callable[[], Iterable[Sample]]
"""Called at each scrape; returns ``(metric name, labels, value)`` samples."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass
class Family:
    """One metric name with its help text, type and samples."""

    name: str
    kind: Literal["gauge", "counter"]
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


STORE_NAMES = (
    "forewarn_devices",
    "forewarn_alerts_open",
    "forewarn_tickets_open",
    "forewarn_notifications",
    "forewarn_quarantine_total",
)
"""The families :func:`store_families` returns (a source may not take their names)."""


def store_families(session: Session, now: datetime, silent_after: timedelta) -> list[Family]:
    """The gauges read from the store as of ``now``."""
    devices = Family("forewarn_devices", "gauge", "Devices by whether they reported recently.")
    for state, n in queries.device_states(session, now, silent_after).items():
        devices.samples.append(({"state": state}, n))
    alerts = Family("forewarn_alerts_open", "gauge", "Open (pending or firing) alerts.")
    for severity, n in queries.open_alerts_by_severity(session).items():
        alerts.samples.append(({"severity": severity}, n))
    tickets = Family("forewarn_tickets_open", "gauge", "Open tickets by status.")
    for status, n in sorted(queries.open_tickets_by_status(session).items()):
        tickets.samples.append(({"status": status}, n))
    notifications = Family("forewarn_notifications", "gauge", "Notifications by status.")
    for status, n in sorted(queries.notifications_by_status(session).items()):
        notifications.samples.append(({"status": status}, n))
    quarantine = Family(
        "forewarn_quarantine_total", "counter", "Rejected inputs kept in quarantine."
    )
    quarantine.samples.append(({}, queries.quarantined(session)))
    return [devices, alerts, tickets, notifications, quarantine]


class SourceReader:
    """Collects the samples of the in-process sources, logging each new problem once."""

    def __init__(self, sources: Sequence[MetricsSource]) -> None:
        self.sources = tuple(sources)
        self._reported: set[str] = set()

    def families(self, taken: set[str]) -> list[Family]:
        """Families from every source; ``taken`` names (the store's) cannot be reused."""
        found: dict[str, Family] = {}
        for source in self.sources:
            try:
                samples = [_checked(sample, taken) for sample in source()]
            except Exception as exc:  # noqa: BLE001 - a broken counter must not take the scrape down
                self._report(f"metrics source {_name_of(source)} left out: {exc}")
                continue
            for name, labels, value in samples:
                kind: Literal["gauge", "counter"] = (
                    "counter" if name.endswith("_total") else "gauge"
                )
                family = found.setdefault(name, Family(name, kind, f"{name} (in-process)."))
                family.samples.append((labels, value))
        return list(found.values())

    def _report(self, problem: str) -> None:
        if problem not in self._reported:
            self._reported.add(problem)
            log.error("%s", problem)


def _name_of(source: MetricsSource) -> str:
    return getattr(source, "__qualname__", None) or repr(source)


def _checked(sample: Sample, taken: set[str]) -> tuple[str, dict[str, str], float]:
    name, labels, value = sample
    if not _METRIC_NAME.match(name):
        raise ValueError(f"invalid metric name {name!r}")
    if name in taken:
        raise ValueError(f"metric name {name!r} belongs to the store's gauges")
    for key in labels:
        if not _LABEL_NAME.match(key) or key.startswith("__"):
            raise ValueError(f"invalid label name {key!r} on {name}")
    return name, {str(k): str(v) for k, v in labels.items()}, float(value)


def exposition(families: Iterable[Family]) -> str:
    """The text format: ``# HELP``, ``# TYPE`` and one line per sample, per family."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            rendered = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
            lines.append(
                f"{family.name}{{{rendered}}} {_number(value)}"
                if rendered
                else f"{family.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    value = float(value)  # counts arrive as int
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


router = APIRouter(tags=["metrics"], dependencies=[Depends(api_access(Role.viewer))])


@router.get("/metrics", response_class=Response)
def metrics(console: ConsoleDep, db: Db) -> Response:
    """The exposition; needs a viewer's bearer token when tokens are configured."""
    # Sources first: on SQLite every transaction holds the write lock, and a source that
    # reads the store (the KPIs, forewarn.web.kpis) opens a session of its own.
    extra = console.metrics.families(set(STORE_NAMES))
    families = store_families(db, console.clock.now(), console.silent_after)
    families += extra
    return Response(exposition(families), media_type=CONTENT_TYPE)
