"""Shared pieces of the settings schema: the frozen base model and the value types (durations,
time zones, identifiers, phone numbers, daily hour windows)."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
)

from forewarn.config.durations import parse_duration
from forewarn.phones import REGIONS, InvalidPhone, to_e164


def _duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        return parse_duration(value)
    return value


def _timezone(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an IANA time zone name")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Lisbon)") from exc
    return value


def _phone(value: str, info: ValidationInfo) -> str:
    # The loader passes the file's top-level ``phone_region`` as validation context.
    region = (info.context or {}).get("phone_region")
    try:
        return to_e164(value, region if isinstance(region, str) else None)
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from exc


def _region(value: Any) -> Any:
    if isinstance(value, str) and value.upper() in REGIONS:
        return value.upper()
    raise ValueError(f"{value!r} is not a region code for phone numbers (e.g. PT, BR, US)")


Duration = Annotated[timedelta, BeforeValidator(_duration)]


Phone = Annotated[str, AfterValidator(_phone)]
"""A phone number in any common written form, stored as E.164 (``+351912345678``)."""


PhoneRegion = Annotated[str, BeforeValidator(_region)]


TimeZoneName = Annotated[str, BeforeValidator(_timezone)]


Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


Severity = Literal["info", "minor", "major", "critical"]


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class Model(BaseModel):
    """Base for every settings model: frozen, and unknown keys are errors (typos)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class HoursWindow(Model):
    """A daily window of local time such as ``22:00-07:00`` (may cross midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _HOURS.match(value.strip())
            if not match:
                raise ValueError(f"{value!r} is not a time window like '22:00-07:00'")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            return cls(start=time(h1, m1), end=time(h2, m2))
        return value

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


Hours = Annotated[HoursWindow, BeforeValidator(HoursWindow.parse)]
