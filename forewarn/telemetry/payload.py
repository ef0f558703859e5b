"""The data-quality gate: one MQTT message in, samples or a rejection reason out.

Pure: no I/O and no clock; the receive time and the set of known devices are passed in,
so the same gate runs live, in tests and in replays.

The rules, in the order they are checked (the first failing one is the reason):

1. the payload is at most ``max_payload_bytes`` long;
2. it is UTF-8, it is JSON, and the JSON is an object;
3. the device id comes from the topic level ``device_id_topic_level`` or, when that is
   null, from the string field ``device_id_field``; it must look like a config id;
4. with ``unknown_devices: quarantine`` the device must be known;
5. the timestamp field is present and is either
   * a JSON number of Unix time: seconds, or milliseconds when its magnitude is at least
     10^11 (10^11 s is the year 5138 and 10^11 ms is 1973, so real clocks are never
     ambiguous), or
   * an ISO 8601 string WITH a UTC offset (``2026-11-25T03:00:00Z``,
     ``...+01:00``); a naive time is rejected because guessing its zone would shift
     every reading by hours;
6. the timestamp is not further ahead of the receive time than ``max_future_skew``;
7. every metric is a finite JSON number (``true``/``false`` are not numbers; strings
   are rejected, and the strings ``"NaN"``/``"inf"`` are named as non-finite); with an
   empty ``metrics`` mapping every top-level number except the timestamp, device id and
   status fields is a metric (strings, booleans and objects are ignored), and its field
   name must be a valid metric name (letters, digits, ``_.:-``, at most 64, not
   ``status``);
8. the status field, when present and not null, is a string or an integer of at most 64
   characters;
9. at least one metric or a status code is present;
10. with an empty ``metrics`` mapping, a message carries at most
    ``max_metrics_per_message`` metrics, and (when the caller passes a
    :class:`MetricNames`) a device never has more than ``max_metrics_per_device``
    distinct metric names: a payload cannot create thousands of series.

Every rejection is a sentence naming the field and the rule; no input makes the gate
raise (a test feeds it hostile values: huge numbers, extreme offsets, deep nesting).

A sample is *stale* when the message was retained (the broker replays the last value on
subscribe) or its timestamp is older than ``max_age`` at receipt: it is stored for
history but never fires or clears a rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from forewarn.config.durations import format_duration
from forewarn.config.schema import IngestSettings, PayloadMapping
from forewarn.telemetry.sample import STATUS_METRIC, Sample

# Same shape as the config's ids, so anything stored can be named in the config later.
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
# readings.metric is VARCHAR(64); PostgreSQL would refuse a longer name and fail the
# whole batch, so the gate refuses it for the one message instead.
_METRIC_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
_MAX_CODE_LENGTH = 64  # readings.code is VARCHAR(64)
_NON_FINITE_WORDS = frozenset(
    {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
)
_MILLISECONDS_FROM = 1e11


@dataclass(frozen=True, slots=True)
class Parsed:
    """What the gate made of one message: ``samples``, or the ``rejection`` reason."""

    samples: tuple[Sample, ...] = ()
    rejection: str | None = None
    device_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.rejection is None


class MetricNames:
    """The metric names each device has used, for the per-device cap (rule 10).

    Owned by the caller (one per ingest process) and updated by the gate only when it
    accepts a message; the gate itself stays free of I/O and clocks.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}

    def over_limit(self, device_id: str, names: set[str]) -> list[str]:
        """The names in ``names`` that would take ``device_id`` over the limit, sorted."""
        known = self._seen.get(device_id, set())
        new = names - known
        if len(known) + len(new) <= self.limit:
            return []
        return sorted(new)

    def add(self, device_id: str, names: set[str]) -> None:
        self._seen.setdefault(device_id, set()).update(names)


def parse_message(
    topic: str,
    payload: bytes,
    *,
    retained: bool,
    received_at: datetime,
    mapping: PayloadMapping,
    limits: IngestSettings,
    known_devices: Container[str] | None,
    metric_names: MetricNames | None = None,
) -> Parsed:
    """Apply the data-quality gate to one message received at ``received_at``.

    ``known_devices`` is consulted only when ``limits.unknown_devices`` is
    ``"quarantine"``; pass None to accept every well-formed device id. ``metric_names``
    enforces the per-device cap on distinct metric names (and learns the accepted ones).
    """
    if len(payload) > limits.max_payload_bytes:
        return Parsed(
            rejection=f"payload is {len(payload)} bytes, over the limit of "
            f"{limits.max_payload_bytes}"
        )
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return Parsed(rejection=_undecodable(payload, exc))
    if not isinstance(document, dict):
        return Parsed(rejection=f"payload is a JSON {_json_type(document)}, not an object")

    device_id, problem = _device_id(topic, document, mapping)
    if problem is not None:
        return Parsed(rejection=problem)
    checked = False
    if known_devices is not None and limits.unknown_devices == "quarantine":
        if device_id not in known_devices:
            return Parsed(rejection=f"unknown device {_show(device_id)}", device_id=device_id)
        checked = True  # ids in the devices table come from the validated config
    if not checked and not _DEVICE_ID.fullmatch(device_id):
        return Parsed(rejection=f"device id {_show(device_id)} is not a valid id")

    raw_ts = document.get(mapping.timestamp_field)
    if raw_ts is None:
        return Parsed(
            rejection=f"timestamp field {mapping.timestamp_field!r} is missing",
            device_id=device_id,
        )
    ts = _timestamp(raw_ts)
    if isinstance(ts, str):
        return Parsed(
            rejection=f"timestamp field {mapping.timestamp_field!r}: {ts}", device_id=device_id
        )
    ahead = ts - received_at
    if ahead > limits.max_future_skew:
        return Parsed(
            rejection=f"timestamp {ts.isoformat()} is {format_duration(ahead)} ahead of the "
            f"receive time (limit {format_duration(limits.max_future_skew)})",
            device_id=device_id,
        )
    stale = retained or -ahead > limits.max_age

    samples: list[Sample] = []
    if mapping.metrics:
        for metric, field in mapping.metrics.items():
            value = document.get(field)
            if value is None:  # not reported in this message
                continue
            if metric == STATUS_METRIC or not _METRIC_NAME.fullmatch(metric):
                return Parsed(
                    rejection=f"the configured metric name {_show(metric)} is not valid",
                    device_id=device_id,
                )
            number = _number(metric, value)
            if isinstance(number, str):
                return Parsed(rejection=number, device_id=device_id)
            samples.append(Sample(device_id, metric, ts, received_at, number, None, stale))
    else:
        skip = (mapping.timestamp_field, mapping.device_id_field, mapping.status_field)
        for field, value in document.items():
            # Only JSON numbers become metrics here; other fields (firmware versions,
            # flags, nested objects) are ignored, except non-finite words: a sensor
            # reporting "NaN" is a data-quality problem worth seeing in quarantine.
            cls = value.__class__
            if cls is float or cls is int:
                if field in skip:
                    continue
                if field == STATUS_METRIC or not _METRIC_NAME.fullmatch(field):
                    return Parsed(
                        rejection=f"field {_show(field)} cannot be a metric name",
                        device_id=device_id,
                    )
                number = _number(field, value)
                if isinstance(number, str):
                    return Parsed(rejection=number, device_id=device_id)
                samples.append(Sample(device_id, field, ts, received_at, number, None, stale))
                if len(samples) > limits.max_metrics_per_message:
                    return Parsed(
                        rejection=f"more than {limits.max_metrics_per_message} numeric fields "
                        "(max_metrics_per_message); with an empty metrics mapping each "
                        "would become a metric",
                        device_id=device_id,
                    )
            elif cls is str and field not in skip and value.strip().lower() in _NON_FINITE_WORDS:
                return Parsed(
                    rejection=f"metric {_show(field)} is not a finite number ({_show(value)})",
                    device_id=device_id,
                )

    if mapping.status_field is not None:
        code = document.get(mapping.status_field)
        if code is not None:
            if code.__class__ is not str and code.__class__ is not int:
                return Parsed(
                    rejection=f"status field {mapping.status_field!r} is a "
                    f"{_json_type(code)}, not a string or integer code",
                    device_id=device_id,
                )
            text = str(code)
            if len(text) > _MAX_CODE_LENGTH or "\x00" in text:
                return Parsed(
                    rejection=f"status code {_show(text)} is longer than {_MAX_CODE_LENGTH} "
                    "characters or contains NUL",
                    device_id=device_id,
                )
            samples.append(Sample(device_id, STATUS_METRIC, ts, received_at, None, text, stale))

    if not samples:
        return Parsed(rejection="no metrics and no status code", device_id=device_id)
    if metric_names is not None and not mapping.metrics:
        names = {s.metric for s in samples if s.metric != STATUS_METRIC}
        extra = metric_names.over_limit(device_id, names)
        if extra:
            return Parsed(
                rejection=f"device {_show(device_id)} would have more than "
                f"{metric_names.limit} metric names (max_metrics_per_device); new: "
                f"{_show(', '.join(extra), 80)}",
                device_id=device_id,
            )
        metric_names.add(device_id, names)
    return Parsed(samples=tuple(samples), device_id=device_id)


def _device_id(
    topic: str, document: dict[str, Any], mapping: PayloadMapping
) -> tuple[str, str | None]:
    """The device id and None, or "" and the rejection reason."""
    level = mapping.device_id_topic_level
    if level is not None:
        levels = topic.split("/")
        if level >= len(levels) or not levels[level]:
            return "", f"topic {_show(topic)} has no device id at level {level}"
        return levels[level], None
    field = mapping.device_id_field
    assert field is not None  # the schema demands one of the two
    value = document.get(field)
    if value is None:
        return "", f"device id field {field!r} is missing"
    if not isinstance(value, str):
        return "", f"device id field {field!r} is a {_json_type(value)}, not a string"
    return value, None


def _timestamp(value: Any) -> datetime | str:
    """The UTC time in ``value``, or why it is not one (see the module docstring)."""
    cls = value.__class__
    if cls is int or cls is float:
        seconds = float(value)
        if abs(seconds) >= _MILLISECONDS_FROM:
            seconds /= 1000.0
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return f"{_show(value)} is out of range for Unix time"
    if cls is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return f"{_show(value)} is not ISO 8601 or Unix time"
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            return f"{_show(value)} has no UTC offset (add 'Z' or '+hh:mm')"
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-14:00 is past the year 9999 in UTC
            return f"{_show(value)} is out of range once converted to UTC"
    return f"is a {_json_type(value)}, not ISO 8601 text or Unix time"


def _number(metric: str, value: Any) -> float | str:
    """``value`` as a finite float, or the rejection reason naming ``metric``."""
    cls = value.__class__
    if cls is float:
        # orjson refuses NaN/Infinity literals and overflowing numbers, but keep the
        # check: it is cheap and the gate must not depend on the parser's leniency.
        if math.isfinite(value):
            return float(value)
        return f"metric {_show(metric)} is not a finite number"
    if cls is int:
        try:
            return float(value)
        except OverflowError:
            return f"metric {_show(metric)} is too large ({_show(value)})"
    if cls is str:
        if value.strip().lower() in _NON_FINITE_WORDS:
            return f"metric {_show(metric)} is not a finite number ({_show(value)})"
        return f"metric {_show(metric)} is a string ({_show(value)}), not a number"
    return f"metric {_show(metric)} is a {_json_type(value)}, not a number"


def _undecodable(payload: bytes, exc: orjson.JSONDecodeError) -> str:
    # orjson reports bad UTF-8 and bad JSON alike; the reason should say which.
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"payload is not UTF-8 (byte {bad.start})"
    if not payload.strip():
        return "payload is empty"
    return f"payload is not JSON: {exc.msg} at character {exc.pos}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: object, limit: int = 40) -> str:
    """``repr`` of input for a reason: escapes control characters (PostgreSQL text
    refuses NUL) and keeps a hostile payload from making the reason huge."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
