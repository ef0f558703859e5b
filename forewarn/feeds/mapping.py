"""The declarative field mapping: one source record (a CSV row, a JSON object) -> an
:class:`OrderRecord`, or a :class:`RowProblem` saying which field is wrong and why.

Pure: no database, no clock. Timestamps without an offset are read in the mapping's time
zone; everything leaves here timezone-aware.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo

from forewarn.config.schema import EventMeaning, FeedMapping, OrderStatus
from forewarn.phones import InvalidPhone, to_e164

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MEANINGS: frozenset[str] = frozenset(get_args(EventMeaning))


class RowProblem(ValueError):
    """A record that cannot become an order; the message names the field."""


@dataclass(frozen=True)
class Contact:
    """Who to tell, as the feed knows them."""

    customer_id: str
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    locale: str | None = None


@dataclass(frozen=True)
class EventRecord:
    """One shipment event: a milestone, a cancellation or a carrier exception (cleared)."""

    meaning: str
    code: str
    at: datetime


@dataclass(frozen=True)
class OrderRecord:
    """What one source record says about one order. ``None`` means "not said"."""

    order_id: str
    contact: Contact | None = None
    status: OrderStatus | None = None
    source_status: str | None = None
    promised: datetime | None = None
    carrier: str | None = None
    region: str | None = None
    milestones: Mapping[str, datetime] = field(default_factory=dict)
    exception_code: str | None = None
    """A standing exception code; ``""`` says explicitly that there is none."""
    events: tuple[EventRecord, ...] = ()
    problems: tuple[str, ...] = ()
    """What was wrong but dropped rather than the order (an invalid phone number)."""

    def content_hash(self) -> str:
        data = {
            "contact": None if self.contact is None else vars(self.contact),
            "status": self.status,
            "source_status": self.source_status,
            "promised": _iso(self.promised),
            "carrier": self.carrier,
            "region": self.region,
            "milestones": {k: _iso(v) for k, v in sorted(self.milestones.items())},
            "exception": self.exception_code,
            "events": [(e.meaning, e.code, _iso(e.at)) for e in self.events],
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def latest(self) -> datetime | None:
        """The latest moment the record speaks of (promises aside)."""
        times = [*self.milestones.values(), *(e.at for e in self.events)]
        return max(times) if times else None

    def as_known_at(self, moment: datetime, final: bool) -> OrderRecord:
        """The record as it would have looked at ``moment`` (for replay): later milestones
        blanked; the status and a standing exception only in the ``final`` snapshot."""
        return replace(
            self,
            milestones={k: v for k, v in self.milestones.items() if v <= moment},
            events=tuple(e for e in self.events if e.at <= moment),
            status=self.status if final else None,
            source_status=self.source_status if final else None,
            exception_code=self.exception_code if final else None,
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def map_record(
    mapping: FeedMapping, record: Mapping[str, Any], phone_region: str | None = None
) -> OrderRecord:
    """Apply ``mapping`` to one source record; raises :class:`RowProblem`.

    Phone numbers without ``+country`` are read in the mapping's ``phone_region``, else
    in ``phone_region`` (the config's top-level one)."""
    order_id = _text(record, mapping.order_id)
    if not order_id:
        raise RowProblem(f"{mapping.order_id}: the order id is missing")
    if len(order_id) > 128:
        raise RowProblem(f"{mapping.order_id}: the order id is longer than 128 characters")
    zone = ZoneInfo(mapping.timezone)
    milestones: dict[str, datetime] = {}
    for milestone, column in mapping.milestones.items():
        at = _timestamp(record, column, mapping.timestamp_formats, zone)
        if at is not None:
            milestones[milestone] = at
    promised = _timestamp(
        record,
        mapping.promised,
        mapping.timestamp_formats,
        zone,
        end_of_day=mapping.promised_date_only_end_of_day,
    )
    source_status = _text(record, mapping.status)
    status = mapping.status_values.get(source_status, "open") if source_status else None
    events: tuple[EventRecord, ...] = ()
    if mapping.event_code is not None and mapping.event_time is not None:
        events = _event(mapping, record, zone)
    exception = None
    if mapping.exception_code is not None and mapping.exception_code in record:
        exception = _text(record, mapping.exception_code) or ""
    contact, problems = _contact(mapping, record, mapping.phone_region or phone_region)
    return OrderRecord(
        order_id=order_id,
        contact=contact,
        problems=problems,
        status=status,
        source_status=source_status or None,
        promised=promised,
        carrier=_text(record, mapping.carrier) or None,
        region=_text(record, mapping.region) or None,
        milestones=milestones,
        exception_code=exception,
        events=events,
    )


def _event(
    mapping: FeedMapping, record: Mapping[str, Any], zone: ZoneInfo
) -> tuple[EventRecord, ...]:
    assert mapping.event_code is not None
    assert mapping.event_time is not None
    code = _text(record, mapping.event_code)
    if not code:
        return ()
    at = _timestamp(record, mapping.event_time, mapping.timestamp_formats, zone)
    if at is None:
        raise RowProblem(f"{mapping.event_time}: the event has no time")
    meaning = mapping.event_codes.get(code)
    if meaning is None:
        if mapping.unknown_events == "ignore":
            return ()
        if mapping.unknown_events == "quarantine":
            raise RowProblem(f"{mapping.event_code}: unknown event code {code!r}")
        meaning = "exception"
    return (EventRecord(meaning=meaning, code=code[:64], at=at),)


def _contact(
    mapping: FeedMapping, record: Mapping[str, Any], region: str | None
) -> tuple[Contact | None, tuple[str, ...]]:
    customer_id = _text(record, mapping.customer_id)
    if not customer_id:
        return None, ()
    written = _text(record, mapping.customer_phone)
    email = _text(record, mapping.customer_email)
    # A malformed number or address is dropped rather than the order: the order is still
    # watched, and the case records that the customer could not be told.
    phone: str | None = None
    problems: tuple[str, ...] = ()
    if written:
        try:
            phone = to_e164(written, region)
        except InvalidPhone as exc:
            problems = (
                f"{mapping.customer_phone}: {exc}; the order is kept, the number is not used",
            )
    contact = Contact(
        customer_id=customer_id[:128],
        name=_text(record, mapping.customer_name) or None,
        phone=phone,
        email=email if _EMAIL.match(email) else None,
        locale=_text(record, mapping.customer_locale) or None,
    )
    return contact, problems


def _text(record: Mapping[str, Any], column: str | None) -> str:
    if column is None:
        return ""
    value = record.get(column)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _timestamp(
    record: Mapping[str, Any],
    column: str | None,
    formats: tuple[str, ...],
    zone: ZoneInfo,
    *,
    end_of_day: bool = False,
) -> datetime | None:
    if column is None:
        return None
    raw = record.get(column)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return parse_timestamp(raw, formats, zone, end_of_day=end_of_day)
    except ValueError as exc:
        raise RowProblem(f"{column}: {exc}") from exc


def parse_timestamp(
    raw: Any, formats: tuple[str, ...], zone: ZoneInfo, *, end_of_day: bool = False
) -> datetime:
    """ISO 8601, Unix seconds (or milliseconds), or one of ``formats``; naive -> ``zone``.

    With ``end_of_day`` a bare date, or a time of exactly midnight, means the last second
    of that local day: "delivery by 18 October" is kept until 18 October is over.
    """
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a timestamp")
    if isinstance(raw, int | float):
        seconds = raw / 1000 if raw > 1e11 else raw
        return datetime.fromtimestamp(seconds, UTC)
    text = str(raw).strip()
    parsed: datetime | None = None
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)  # naive: the zone is applied below
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            if re.fullmatch(r"\d{9,13}(\.\d+)?", text):
                return parse_timestamp(float(text), formats, zone)
            raise ValueError(f"{text[:40]!r} is not a timestamp") from None
    date_only = bool(_DATE_ONLY.match(text)) or parsed.time() == time(0)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    if end_of_day and date_only:
        local = parsed.astimezone(zone)
        next_day = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
        parsed = next_day - timedelta(seconds=1)
    return parsed.astimezone(UTC)
