"""One device on one page, and finding it: ``/devices/{id}`` and ``/search``.

The device page shows each metric as a chart over the last hour, day or week (zoom by
clicking a strip of the chart; ``?window=`` and ``?end=`` say what is shown), with the
effective level of every threshold rule that watches it drawn across (and where that
level comes from: the rule itself, or an override for the model, the site or the
device), the alerts shaded while they were open, the latest values, open tickets, the
silences that match the device now and its recently quarantined messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from forewarn.alerting import Monitors
from forewarn.config.schema import DeviceSettings, ThresholdMonitor
from forewarn.monitors.rules import compile_rules
from forewarn.store.alerting import LatestReading
from forewarn.store.models import (
    Alert,
    Customer,
    Device,
    Quarantine,
    Reading,
    Site,
    Ticket,
)
from forewarn.web import charts
from forewarn.web.console import Console
from forewarn.web.dependencies import ConsoleDep, Db, PageViewer

Window = Literal["1h", "6h", "1d", "7d"]
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
}
_CLOSER = {"7d": "1d", "1d": "6h", "6h": "1h", "1h": "1h"}
_WIDER = {"1h": "6h", "6h": "1d", "1d": "7d", "7d": "7d"}
MAX_POINTS = 50_000
"""Readings read per metric and chart at most (a week at 1 per 15 s); the newest win."""


@dataclass(frozen=True)
class Chart:
    metric: str
    svg: Markup
    points: int
    levels: list[tuple[str, str, str]]
    """(rule, level, where it comes from) for the table under the chart."""


@dataclass(frozen=True)
class Hit:
    device_id: str
    site_name: str
    customer_name: str
    model: str


def level_source(rule: ThresholdMonitor, device: DeviceSettings) -> str:
    """Where the device's level of ``rule`` comes from: the most specific override that
    sets it, else the rule itself (the same precedence as ``levels_for``)."""
    setting = [
        o
        for o in rule.overrides
        if (o.above is not None or o.below is not None)
        and (o.model is None or o.model == device.model)
        and (o.site is None or o.site == device.site)
        and (o.device is None or o.device == device.id)
    ]
    if not setting:
        return "global (the rule)"
    best = max(
        setting, key=lambda o: (o.device is not None, o.site is not None, o.model is not None)
    )
    if best.device is not None:
        return f"device override ({best.device})"
    if best.site is not None:
        return f"site override ({best.site})"
    return f"model override ({best.model})"


def _settings_of(console: Console, device: Device) -> DeviceSettings | None:
    for configured in console.config.settings.devices:
        if configured.id == device.id:
            return configured
    try:  # registered outside the file: what the store knows is enough for the levels
        return DeviceSettings(
            id=device.id, site=device.site_id, model=device.model, kind=device.kind
        )
    except ValidationError:
        return None


def charts_for(
    console: Console,
    db: Session,
    device: Device,
    start: datetime,
    end: datetime,
    zoom: dict[str, str],
) -> list[Chart]:
    """One chart per numeric metric the device reported (or a rule watches)."""
    settings = _settings_of(console, device)
    thresholds = (
        compile_rules(console.current_monitors(), (settings,))[device.id].thresholds
        if settings is not None
        else {}
    )
    metrics = set(
        db.scalars(
            select(LatestReading.metric).where(
                LatestReading.device_id == device.id, LatestReading.value.is_not(None)
            )
        )
    ) | set(thresholds)
    metrics |= set(
        db.scalars(
            select(Reading.metric)
            .where(
                Reading.device_id == device.id,
                Reading.ts >= start,
                Reading.ts <= end,
                Reading.value.is_not(None),
            )
            .distinct()
        )
    )
    alerts = db.scalars(
        select(Alert).where(
            Alert.subject == device.id,
            Alert.pending_since < end,
            or_(Alert.resolved_at.is_(None), Alert.resolved_at > start),
        )
    ).all()
    spans_by_rule: dict[str, list[charts.Span]] = {}
    for alert in alerts:
        spans_by_rule.setdefault(alert.rule_id, []).append(
            charts.Span(
                alert.firing_since or alert.pending_since,
                alert.resolved_at or end,
                f"alert #{alert.id} {alert.state}: {alert.summary}",
            )
        )
    found = []
    for metric in sorted(metrics):
        rows = db.execute(
            select(Reading.ts, Reading.value)
            .where(
                Reading.device_id == device.id,
                Reading.metric == metric,
                Reading.ts >= start,
                Reading.ts <= end,
                Reading.value.is_not(None),
            )
            .order_by(Reading.ts.desc())
            .limit(MAX_POINTS)
        ).all()
        points = [
            charts.Point(ts, float(value)) for ts, value in reversed(rows) if value is not None
        ]
        levels: list[charts.Level] = []
        table: list[tuple[str, str, str]] = []
        spans: list[charts.Span] = []
        for rule, level in thresholds.get(metric, ()):
            assert settings is not None
            where = level_source(rule, settings)
            edge = level.above if level.above is not None else level.below
            assert edge is not None
            sign = ">" if level.above is not None else "<"
            levels.append(charts.Level(edge, f"{rule.id} {sign} {edge:g}"))
            if level.clear != edge:
                levels.append(charts.Level(level.clear, f"clears at {level.clear:g}", "ok"))
            table.append((rule.id, level.describe(), where))
            spans.extend(spans_by_rule.get(rule.id, ()))
        if not table:  # a fault or offline alert is still worth seeing on every chart
            spans = [s for rule_spans in spans_by_rule.values() for s in rule_spans]

        def zoom_to(moment: datetime, metric: str = metric) -> str:
            closer = _CLOSER[zoom["window"]]
            half = WINDOWS[closer] / 2
            query = {"window": closer, "end": (moment + half).strftime("%Y-%m-%dT%H:%M")}
            return f"/devices/{device.id}?{urlencode(query)}#chart-{metric}"

        svg = charts.time_series(
            points,
            start,
            end,
            title=f"{device.id} {metric}",
            levels=levels,
            spans=spans,
            zoom=zoom_to,
        )
        found.append(Chart(metric, svg, len(points), table))
    return found


def make_router(monitors: Monitors | None) -> APIRouter:
    """The device page and search; ``monitors`` tells which silences match (None: not
    shown)."""
    router = APIRouter(tags=["console"], include_in_schema=False)

    @router.get("/devices/{device_id}", response_class=HTMLResponse)
    def device_page(
        request: Request,
        console: ConsoleDep,
        principal: PageViewer,
        db: Db,
        device_id: str,
        window: Window = "1d",
        end: Annotated[datetime | None, Query(description="window end (UTC)")] = None,
    ) -> HTMLResponse:
        """A device: charts with rule levels and alerts, latest values, tickets, silences."""
        from forewarn.web.pages import PageNotFound

        now = console.clock.now()
        # Before the first query of this request's session: on SQLite every transaction
        # holds the write lock, and the report opens a session of its own.
        report = monitors.silence_report(now) if monitors is not None else None
        device = db.get(Device, device_id)
        if device is None:
            raise PageNotFound(f"device {device_id}")
        site = db.get(Site, device.site_id)
        customer = db.get(Customer, site.customer_id) if site is not None else None
        if end is not None and end.tzinfo is None:
            end = end.replace(tzinfo=now.tzinfo)
        shown_end = min(end or now, now)
        start = shown_end - WINDOWS[window]
        found = charts_for(console, db, device, start, shown_end, {"window": window})
        latest = db.execute(
            select(LatestReading.metric, LatestReading.value, LatestReading.code, LatestReading.ts)
            .where(LatestReading.device_id == device.id)
            .order_by(LatestReading.metric)
        ).all()
        tickets = db.scalars(
            select(Ticket)
            .where(Ticket.device_id == device.id, Ticket.closed_at.is_(None))
            .order_by(Ticket.id.desc())
        ).all()
        quarantined = db.scalars(
            select(Quarantine)
            .where(Quarantine.origin.contains(device.id))
            .order_by(Quarantine.received_at.desc())
            .limit(10)
        ).all()
        settings = _settings_of(console, device)
        silences = (
            [
                s
                for s in report
                if settings is not None and s.silence.covers(settings) and not s.expired
            ]
            if report is not None
            else None
        )

        def link(**changes: str) -> str:
            query = {"window": window, **({"end": f"{shown_end:%Y-%m-%dT%H:%M}"} if end else {})}
            query.update(changes)
            query = {k: v for k, v in query.items() if v}
            return f"/devices/{device.id}?{urlencode(query)}"

        step = WINDOWS[window]
        nav = {
            "earlier": link(end=f"{shown_end - step:%Y-%m-%dT%H:%M}"),
            "later": link(end=f"{shown_end + step:%Y-%m-%dT%H:%M}") if end else None,
            "wider": link(window=_WIDER[window]),
            "now": f"/devices/{device.id}?window={window}",
        }
        return console.pages.render(
            request,
            "device.html",
            {
                "device": device,
                "site": site,
                "customer": customer,
                "charts": found,
                "latest": latest,
                "tickets": tickets,
                "quarantined": quarantined,
                "silences": silences,
                "window": window,
                "windows": list(WINDOWS),
                "start": start,
                "end": shown_end,
                "nav": nav,
            },
            now=now,
            principal=principal,
        )

    @router.get("/search", response_class=HTMLResponse)
    def search(
        request: Request,
        console: ConsoleDep,
        principal: PageViewer,
        db: Db,
        q: Annotated[str, Query(max_length=100)] = "",
    ) -> HTMLResponse:
        """Devices by id, site (name or id) or customer (name or id)."""
        hits: list[Hit] = []
        term = q.strip()
        if term:
            like = f"%{term.lower()}%"
            rows = db.execute(
                select(Device.id, Site.name, Customer.name, Device.model)
                .join(Site, Site.id == Device.site_id)
                .join(Customer, Customer.id == Site.customer_id)
                .where(
                    or_(
                        func.lower(Device.id).like(like),
                        func.lower(Site.id).like(like),
                        func.lower(Site.name).like(like),
                        func.lower(Customer.id).like(like),
                        func.lower(Customer.name).like(like),
                    )
                )
                .order_by(Device.id)
                .limit(200)
            ).all()
            hits = [Hit(*row) for row in rows]
        return console.pages.render(
            request,
            "search.html",
            {"q": term, "hits": hits},
            now=console.clock.now(),
            principal=principal,
        )

    return router
