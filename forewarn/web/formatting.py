"""How values read on a console page: UTC times with their age, durations, status colours."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Status words -> the colour family the stylesheet knows. Red means someone should look.
_TONES = {
    "bad": {
        "critical",
        "firing",
        "failed",
        "bounced",
        "undelivered",
        "silent",
        "overdue",
        "declined",
    },
    "warn": {
        "major",
        "pending",
        "open",
        "sending",
        "queued_for_dispatcher",
        "unassigned",
        "escalated",
    },
    "notice": {"minor", "queued"},
    "info": {"info", "sent", "assigned", "accepted", "en_route", "on_site", "reopened"},
    "ok": {"resolved", "delivered", "reporting", "closed", "no_fault_found", "nofault"},
}
_TONE_OF = {word: tone for tone, words in _TONES.items() for word in words}


def tone(value: object) -> str:
    """The colour family (``bad``, ``warn``, ``notice``, ``info``, ``ok``, ``muted``)."""
    return _TONE_OF.get(str(value).lower().replace(" ", "_"), "muted")


def utc(moment: datetime | None, *, seconds: bool = False) -> str:
    """``2026-11-25 03:01 UTC``; a dash for no time at all."""
    if moment is None:
        return "—"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def local(moment: datetime | None, zone: str) -> str:
    """``2026-11-25 04:01 Europe/Lisbon``: the same instant on a site's wall clock."""
    if moment is None:
        return "—"
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"(unknown zone {zone})"
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M ") + zone


def duration(span: timedelta | float) -> str:
    """A rough, readable length of time (or seconds): ``45 s``, ``12 min``, ``3 h 20 min``."""
    total = span.total_seconds() if isinstance(span, timedelta) else span
    seconds = int(abs(total))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 6:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} d"


def age(moment: datetime | None, now: datetime) -> str:
    """``5 min ago`` or ``in 3 h`` relative to ``now``; ``never`` for no time."""
    if moment is None:
        return "never"
    delta = now - moment
    if abs(delta) < timedelta(seconds=45):
        return "just now"
    return f"{duration(delta)} ago" if delta > timedelta(0) else f"in {duration(delta)}"


def scalar(value: Any) -> str:
    """One evidence or dispatch value as text: numbers without noise, the rest as JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def label(key: str) -> str:
    """``distance_km`` -> ``distance km``: column headings from record keys."""
    return key.replace("_", " ")
