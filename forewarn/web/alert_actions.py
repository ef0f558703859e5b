"""Silences and acknowledgements over the API, and the ``/silences`` console page.

* ``GET /api/silences`` (viewer): every silence (file and API) with what it matches and
  flags for a silence that **matches nothing** and one that **expires soon**;
* ``POST /api/silences`` (ops): create one, validated by the same schema as the file;
* ``POST /api/silences/{id}/expire`` (ops): end an API silence now;
* ``POST /api/alerts/{id}/acknowledge`` (technician or ops): someone is on it, recorded once;
* ``GET /silences`` (viewer): the same list as a page.

Built per application by :func:`make_router` around the running :class:`Monitors` and
mounted through ``create_app(extra_routers=[...])``; the routes check their own roles.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forewarn.alerting import Monitors
from forewarn.config.loading import Config
from forewarn.config.schema import SilenceSettings
from forewarn.monitors.silences import WEEKDAYS, SilenceStatus
from forewarn.store import audit
from forewarn.store.models import Alert, Device, Site
from forewarn.web.auth import Principal, Role, actor
from forewarn.web.console import MAX_ID
from forewarn.web.dependencies import ConsoleDep, Db, api_access, page_access
from forewarn.web.forms import confirmed
from forewarn.web.pages import CONSOLE_TAG
from forewarn.web.signin import form_fields

Ops = Annotated[Principal, Depends(api_access(Role.ops))]
Technician = Annotated[Principal, Depends(api_access(Role.technician))]
Viewer = Annotated[Principal, Depends(api_access(Role.viewer))]
PageViewer = Annotated[Principal, Depends(page_access(Role.viewer))]
PageTechnician = Annotated[Principal, Depends(page_access(Role.technician))]
PageOps = Annotated[Principal, Depends(page_access(Role.ops))]
Form = Annotated[dict[str, str], Depends(form_fields)]


@dataclass(frozen=True)
class Target:
    """Something a console silence can cover: a site or a device, and its zone."""

    value: str
    """``site:<id>`` or ``device:<id>``."""
    label: str
    zone: str


def silence_targets(session: Session) -> list[Target]:
    """Every site, then every device, with the zone their local times are in."""
    sites = session.execute(select(Site.id, Site.name, Site.timezone).order_by(Site.name)).all()
    devices = session.execute(
        select(Device.id, Site.name, Site.timezone)
        .join(Site, Site.id == Device.site_id)
        .order_by(Device.id)
    ).all()
    regions = session.execute(
        select(Site.region, func.min(Site.timezone)).group_by(Site.region).order_by(Site.region)
    ).all()
    models = session.execute(
        select(Device.model, func.min(Site.timezone))
        .join(Site, Site.id == Device.site_id)
        .group_by(Device.model)
        .order_by(Device.model)
    ).all()
    return (
        [Target(f"site:{i}", f"site {name} ({i})", tz) for i, name, tz in sites]
        + [Target(f"region:{r}", f"area {r} (every site in it)", tz) for r, tz in regions]
        + [Target(f"model:{m}", f"model {m} (everywhere)", tz) for m, tz in models]
        + [Target(f"device:{i}", f"device {i} at {name}", tz) for i, name, tz in devices]
    )


def target_zone(session: Session, kind: str, target: str) -> str | None:
    """The zone of the site (or the device's site) ``target``; None if it does not exist."""
    if kind == "site":
        return session.scalar(select(Site.timezone).where(Site.id == target))
    if kind == "device":
        return session.scalar(
            select(Site.timezone).join(Device, Device.site_id == Site.id).where(Device.id == target)
        )
    if kind == "region":
        return session.scalar(select(func.min(Site.timezone)).where(Site.region == target))
    if kind == "model":
        return session.scalar(
            select(func.min(Site.timezone))
            .join(Device, Device.site_id == Site.id)
            .where(Device.model == target)
        )
    return None


@dataclass(frozen=True)
class Window:
    starts: str
    ends: str


def tonight(now: datetime) -> Window:
    """Tonight 22:00 to tomorrow 06:00 (wall-clock values for ``datetime-local`` inputs)."""
    day = now.date()
    return Window(f"{day.isoformat()}T22:00", f"{(day + timedelta(days=1)).isoformat()}T06:00")


class SilenceOut(BaseModel):
    id: str
    source: str
    """``config`` (the file, changed only there) or ``api``."""
    comment: str
    created_by: str
    devices: list[str]
    sites: list[str]
    models: list[str]
    tags: list[str]
    regions: list[str]
    rules: list[str]
    notify_customers: bool
    """A planned-maintenance window: its customers are told before, on extension and after."""
    notice_before: timedelta | None
    starts: datetime | None
    ends: datetime | None
    days: list[str]
    hours: str | None
    timezone: str | None
    zone: str
    """The zone its local times are in: ``timezone``, else the first matched site's."""
    matched_devices: int
    matches_nothing: bool
    active: bool
    expires_soon: bool
    expired: bool


class ExtendRequest(BaseModel):
    ends: datetime
    """The new end, with its UTC offset; later than the current one."""


class AcknowledgeRequest(BaseModel):
    by: str | None = Field(None, max_length=128)
    """Who is on it; default: the caller's technician, or the role."""
    note: str = Field("", max_length=1000)


class AcknowledgeResult(BaseModel):
    alert: int
    acknowledged_by: str
    acknowledged_at: datetime


def silence_out(status: SilenceStatus, config: Config) -> SilenceOut:
    s = status.silence
    site_zones = {site.id: site.timezone for site in config.settings.sites}
    regions = {site.id: site.region for site in config.settings.sites}
    matched = [d for d in config.settings.devices if s.covers(d, regions)]
    zone = s.timezone or (site_zones.get(matched[0].site, "UTC") if matched else "UTC")
    starts, ends = s.bounds(ZoneInfo(zone))
    return SilenceOut(
        id=s.id,
        source=s.source,
        comment=s.comment,
        created_by=s.created_by,
        devices=sorted(s.devices),
        sites=sorted(s.sites),
        models=sorted(s.models),
        tags=sorted(s.tags),
        regions=sorted(s.regions),
        rules=sorted(s.rules),
        notify_customers=s.notify_customers,
        notice_before=s.notice_before,
        starts=starts,
        ends=status.ends or ends,
        days=[WEEKDAYS[d] for d in sorted(s.days)],
        hours=f"{s.hours.start:%H:%M}-{s.hours.end:%H:%M}" if s.hours else None,
        timezone=s.timezone,
        zone=zone,
        matched_devices=status.matched_devices,
        matches_nothing=status.matches_nothing,
        active=status.active,
        expires_soon=status.expiring,
        expired=status.expired,
    )


def _caller(principal: Principal) -> str:
    technician = getattr(principal, "technician", None)
    return f"technician:{technician}" if technician else principal.role.name


def make_router(monitors: Monitors) -> APIRouter:
    """The routes above, acting through ``monitors``."""
    router = APIRouter()

    def silenced(settings: SilenceSettings, who: str, now: datetime) -> Callable[[Session], None]:
        covers = ", ".join(
            f"{what} {', '.join(values)}"
            for what, values in (
                ("sites", settings.sites),
                ("devices", settings.devices),
                ("models", settings.models),
                ("tags", settings.tags),
                ("rules", settings.rules),
            )
            if values
        )
        window = f"{settings.starts or '…'} to {settings.ends or '…'}"
        if settings.hours is not None:
            window += f", {settings.hours.start:%H:%M}-{settings.hours.end:%H:%M}"
        return lambda session: audit.record(
            session,
            at=now,
            actor=who,
            kind="silence.create",
            subject=f"silence:{settings.id}",
            summary=f"silenced {covers or 'everything'} from {window}",
            reason=settings.comment,
            detail={"silence": settings.model_dump(mode="json")},
        )

    def expired(silence_id: str, who: str, now: datetime) -> Callable[[Session], None]:
        return lambda session: audit.record(
            session,
            at=now,
            actor=who,
            kind="silence.expire",
            subject=f"silence:{silence_id}",
            summary=f"ended silence {silence_id}",
        )

    def acknowledged(
        alert_id: int, who: str, note: str, now: datetime
    ) -> Callable[[Session], None]:
        return lambda session: audit.record(
            session,
            at=now,
            actor=who,
            kind="alert.acknowledge",
            subject=f"alert:{alert_id}",
            summary=f"acknowledged alert {alert_id}",
            reason=note,
        )

    def listing(now: datetime, config: Config) -> list[SilenceOut]:
        report = monitors.silence_report(now)
        return [
            silence_out(status, config) for status in sorted(report, key=lambda r: r.silence.id)
        ]

    @router.get("/api/silences", tags=["alerts"])
    def silences(_: Viewer, console: ConsoleDep) -> list[SilenceOut]:
        """Every silence, with 'matches nothing' and 'expires soon' flags."""
        return listing(console.clock.now(), console.config)

    @router.post("/api/silences", status_code=201, tags=["alerts"])
    def create_silence(body: dict[str, Any], principal: Ops, console: ConsoleDep) -> SilenceOut:
        """Create a silence or maintenance window (the keys of ``alerting.silences[]``)."""
        now = console.clock.now()
        try:
            settings = SilenceSettings.model_validate(
                {**body, "created_by": body.get("created_by") or _caller(principal)}
            )
        except ValidationError as problem:
            raise HTTPException(422, _first_problem(problem)) from problem
        if monitors.is_configured_silence(settings.id):
            raise HTTPException(409, f"silence {settings.id} exists in the config file")
        try:
            monitors.add_silence(settings, now, silenced(settings, actor(principal, "api"), now))
        except ValueError as problem:
            raise HTTPException(422, str(problem)) from problem
        except IntegrityError as problem:
            raise HTTPException(409, f"silence {settings.id} already exists") from problem
        return next(s for s in listing(now, console.config) if s.id == settings.id)

    @router.post("/api/silences/{silence_id}/extend", tags=["alerts"])
    def extend_silence(
        silence_id: str, body: ExtendRequest, principal: Ops, console: ConsoleDep
    ) -> SilenceOut:
        """Move a running API window's end later (maintenance overruns); the customers of
        a planned-maintenance window are told the new end by the next
        ``maintenance-notices`` run."""
        now = console.clock.now()
        if body.ends.tzinfo is None:
            raise HTTPException(422, "ends: give the time with its UTC offset")
        if monitors.is_configured_silence(silence_id):
            raise HTTPException(409, f"silence {silence_id} is in the config file: change it there")
        if not monitors.extend_silence(silence_id, body.ends, _caller(principal), now):
            known = [s for s in listing(now, console.config) if s.id == silence_id]
            if not known:
                raise HTTPException(404, f"silence {silence_id} not found")
            raise HTTPException(
                409, f"silence {silence_id} has ended or already ends at or after {body.ends}"
            )
        return next(s for s in listing(now, console.config) if s.id == silence_id)

    @router.post("/api/silences/{silence_id}/expire", tags=["alerts"])
    def expire_silence(silence_id: str, principal: Ops, console: ConsoleDep) -> SilenceOut:
        """End an API silence now; alerts it held are announced by the next sweep."""
        now = console.clock.now()
        if monitors.is_configured_silence(silence_id):
            raise HTTPException(409, f"silence {silence_id} is in the config file: change it there")
        who = actor(principal, "api")
        if not monitors.expire_silence(
            silence_id, _caller(principal), now, expired(silence_id, who, now)
        ):
            known = [s for s in listing(now, console.config) if s.id == silence_id]
            if not known:
                raise HTTPException(404, f"silence {silence_id} not found")
            raise HTTPException(409, f"silence {silence_id} has already ended")
        return next(s for s in listing(now, console.config) if s.id == silence_id)

    @router.post("/api/alerts/{alert_id}/acknowledge", tags=["alerts"])
    def acknowledge(
        alert_id: int, body: AcknowledgeRequest, principal: Technician, console: ConsoleDep
    ) -> AcknowledgeResult:
        """Someone is on it: recorded once on an open alert, as an alert event."""
        now = console.clock.now()
        caller = _caller(principal)
        by = caller if caller.startswith("technician:") else (body.by or caller)
        then = acknowledged(alert_id, actor(principal, "api"), body.note, now)
        if not 0 < alert_id <= MAX_ID or not monitors.acknowledge(
            alert_id, by, now, body.note, then
        ):
            with console.sessions() as session:
                alert = session.get(Alert, alert_id) if 0 < alert_id <= MAX_ID else None
                if alert is None:
                    raise HTTPException(404, f"alert {alert_id} not found")
                if alert.open_fingerprint is None:
                    raise HTTPException(409, f"alert {alert_id} is {alert.state}")
                raise HTTPException(
                    409, f"alert {alert_id} was already acknowledged by {alert.acknowledged_by}"
                )
        return AcknowledgeResult(alert=alert_id, acknowledged_by=by, acknowledged_at=now)

    @router.get(
        "/silences", response_class=HTMLResponse, tags=[CONSOLE_TAG], include_in_schema=False
    )
    def silences_page(
        request: Request, console: ConsoleDep, principal: PageViewer, db: Db
    ) -> HTMLResponse:
        """Silences and maintenance windows, typos and those about to end first; ops get a
        form to add one (times in the site's zone) and a button to end one."""
        now = console.clock.now()
        rows = sorted(
            listing(now, console.config),
            key=lambda s: (not s.matches_nothing, not s.expires_soon, s.id),
        )
        return console.pages.render(
            request,
            "silences.html",
            {
                "silences": rows,
                "targets": silence_targets(db),
                "tonight": tonight(now),
                "preset": request.query_params.get("target", ""),
            },
            now=now,
            principal=principal,
        )

    @router.post("/silences", tags=[CONSOLE_TAG], include_in_schema=False)
    def create_from_page(console: ConsoleDep, principal: PageOps, form: Form) -> RedirectResponse:
        now = console.clock.now()
        kind, _, target = form.get("target", "").partition(":")
        with console.sessions() as db:  # closed before the write: SQLite has one writer
            zone = target_zone(db, kind, target)
        if zone is None:
            raise HTTPException(422, "choose a site, area, model or device to silence")
        stamp = now.strftime("%Y%m%d%H%M%S")
        key = {"site": "sites", "region": "regions", "model": "models"}.get(kind, "devices")
        notice = form.get("notice_hours", "").strip()
        if notice and not notice.replace(".", "", 1).isdigit():
            raise HTTPException(422, "notice before: a number of hours, e.g. 24")
        body = {
            "id": re.sub(r"[^A-Za-z0-9_.:-]", "-", f"console-{target}-{stamp}")[:128],
            key: [target],
            "notify_customers": form.get("notify") == "yes",
            "notice_before": f"{float(notice) * 60:g}m" if notice else None,
            "starts": form.get("starts") or None,
            "ends": form.get("ends") or None,
            "timezone": zone,
            "comment": form.get("comment", "").strip()[:500],
            "created_by": _caller(principal),
        }
        try:
            settings = SilenceSettings.model_validate(body)
            monitors.add_silence(
                settings, now, silenced(settings, actor(principal, "console"), now)
            )
        except ValidationError as problem:
            raise HTTPException(422, _first_problem(problem)) from problem
        except ValueError as problem:
            raise HTTPException(422, str(problem)) from problem
        return RedirectResponse("/silences", status_code=303)

    @router.post("/silences/{silence_id}/expire", tags=[CONSOLE_TAG], include_in_schema=False)
    def expire_from_page(
        silence_id: str, console: ConsoleDep, principal: PageOps, form: Form
    ) -> RedirectResponse:
        confirmed(form)
        now = console.clock.now()
        if monitors.is_configured_silence(silence_id):
            raise HTTPException(409, f"silence {silence_id} is in the config file: change it there")
        then = expired(silence_id, actor(principal, "console"), now)
        if not monitors.expire_silence(silence_id, _caller(principal), now, then):
            raise HTTPException(409, f"silence {silence_id} has already ended (or does not exist)")
        return RedirectResponse("/silences", status_code=303)

    @router.post("/alerts/{alert_id}/acknowledge", tags=[CONSOLE_TAG], include_in_schema=False)
    def acknowledge_from_page(
        alert_id: int, console: ConsoleDep, principal: PageTechnician, form: Form
    ) -> RedirectResponse:
        now = console.clock.now()
        note = form.get("note", "").strip()[:1000]
        then = acknowledged(alert_id, actor(principal, "console"), note, now)
        if not 0 < alert_id <= MAX_ID or not monitors.acknowledge(
            alert_id, _caller(principal), now, note, then
        ):
            raise HTTPException(409, f"alert {alert_id} is not open or was acknowledged already")
        return RedirectResponse(f"/alerts/{alert_id}", status_code=303)

    return router


def _first_problem(problem: ValidationError) -> str:
    error = problem.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
