"""The data-quality gate, one rule at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from forewarn.config.schema import IngestSettings, PayloadMapping
from forewarn.telemetry.payload import MetricNames, Parsed, parse_message
from forewarn.telemetry.sample import STATUS_METRIC, Sample

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
TOPIC = "devices/inv-1/telemetry"
KNOWN = frozenset({"inv-1", "inv-2"})


def gate(
    payload: bytes | dict[str, object],
    *,
    topic: str = TOPIC,
    retained: bool = False,
    mapping: PayloadMapping | None = None,
    limits: IngestSettings | None = None,
    known: frozenset[str] | None = KNOWN,
) -> Parsed:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return parse_message(
        topic,
        body,
        retained=retained,
        received_at=NOW,
        mapping=mapping or PayloadMapping(),
        limits=limits or IngestSettings(),
        known_devices=known,
    )


def rejection(payload: bytes | dict[str, object], **options: object) -> str:
    parsed = gate(payload, **options)  # type: ignore[arg-type]
    assert parsed.rejection is not None, f"accepted: {parsed.samples}"
    assert parsed.samples == ()
    return parsed.rejection


def test_it_turns_every_numeric_field_into_a_sample() -> None:
    parsed = gate({"ts": "2026-11-25T02:59:00Z", "power": 4200, "temp": 41.5, "fw": "1.2"})

    assert parsed.accepted
    ts = datetime(2026, 11, 25, 2, 59, tzinfo=UTC)
    assert parsed.samples == (
        Sample("inv-1", "power", ts, NOW, value=4200.0),
        Sample("inv-1", "temp", ts, NOW, value=41.5),
    )
    assert parsed.device_id == "inv-1"


def test_it_maps_fields_to_metrics_when_a_mapping_is_configured() -> None:
    mapping = PayloadMapping(metrics={"power": "P", "temperature": "T"})

    parsed = gate({"ts": 1795575540, "P": 10, "T": 20.5, "other": 3}, mapping=mapping)

    assert [(s.metric, s.value) for s in parsed.samples] == [("power", 10.0), ("temperature", 20.5)]


def test_it_skips_a_mapped_metric_the_message_does_not_report() -> None:
    mapping = PayloadMapping(metrics={"power": "P", "temperature": "T"})

    parsed = gate({"ts": 1795575540, "P": 10, "T": None}, mapping=mapping)

    assert [s.metric for s in parsed.samples] == ["power"]


def test_it_takes_the_device_id_from_a_field_when_the_topic_does_not_carry_it() -> None:
    mapping = PayloadMapping(device_id_topic_level=None, device_id_field="serial")

    parsed = gate({"serial": "inv-2", "ts": 1795575540, "power": 1}, topic="fleet", mapping=mapping)

    assert parsed.device_id == "inv-2"
    assert parsed.samples[0].device_id == "inv-2"


def test_it_turns_the_status_field_into_a_status_sample() -> None:
    parsed = gate({"ts": 1795575540, "power": 0, "fault": "E42"})

    status = parsed.samples[-1]
    assert (status.metric, status.code, status.value) == (STATUS_METRIC, "E42", None)


def test_it_keeps_an_integer_status_code_as_text() -> None:
    parsed = gate({"ts": 1795575540, "fault": 17})

    assert [(s.metric, s.code) for s in parsed.samples] == [(STATUS_METRIC, "17")]


def test_it_makes_no_status_sample_for_a_null_status() -> None:
    parsed = gate({"ts": 1795575540, "power": 5, "fault": None})

    assert [s.metric for s in parsed.samples] == ["power"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1795575540, datetime(2026, 11, 25, 2, 59, tzinfo=UTC)),
        (1795575540.25, datetime(2026, 11, 25, 2, 59, 0, 250000, tzinfo=UTC)),
        (1795575540250, datetime(2026, 11, 25, 2, 59, 0, 250000, tzinfo=UTC)),
        ("2026-11-25T02:59:00Z", datetime(2026, 11, 25, 2, 59, tzinfo=UTC)),
        ("2026-11-25T03:59:00+01:00", datetime(2026, 11, 25, 2, 59, tzinfo=UTC)),
        ("2026-11-25T02:59:00.5+00:00", datetime(2026, 11, 25, 2, 59, 0, 500000, tzinfo=UTC)),
    ],
    ids=["unix-seconds", "unix-fraction", "unix-milliseconds", "iso-z", "iso-offset", "iso-frac"],
)
def test_it_reads_unix_seconds_milliseconds_and_iso_8601_with_an_offset(
    raw: object, expected: datetime
) -> None:
    parsed = gate({"ts": raw, "power": 1})

    assert parsed.samples[0].ts == expected
    assert parsed.samples[0].ts.tzinfo is UTC


def test_it_rejects_an_oversized_payload() -> None:
    limits = IngestSettings(max_payload_bytes=64)

    payload = orjson.dumps({"ts": 1795575540, "power": 1, "padding": "x" * 80})

    assert rejection(payload, limits=limits) == (
        f"payload is {len(payload)} bytes, over the limit of 64"
    )


def test_it_rejects_a_payload_that_is_not_utf8() -> None:
    assert rejection(b'{"ts": 1, "name": "\xff"}') == "payload is not UTF-8 (byte 19)"


def test_it_rejects_a_payload_that_is_not_json() -> None:
    assert rejection(b'{"ts": 1, "power": ').startswith("payload is not JSON")


def test_it_rejects_an_empty_payload() -> None:
    assert rejection(b"") == "payload is empty"


def test_it_rejects_json_that_is_not_an_object() -> None:
    assert rejection(b"[1, 2]") == "payload is a JSON array, not an object"


def test_it_rejects_a_topic_without_the_device_level() -> None:
    assert rejection({"ts": 1795575540, "power": 1}, topic="devices") == (
        "topic 'devices' has no device id at level 1"
    )


def test_it_rejects_a_message_without_the_device_id_field() -> None:
    mapping = PayloadMapping(device_id_topic_level=None, device_id_field="serial")

    assert rejection({"ts": 1795575540, "power": 1}, mapping=mapping) == (
        "device id field 'serial' is missing"
    )


def test_it_rejects_a_device_id_that_could_not_be_configured() -> None:
    reason = rejection(
        {"ts": 1795575540, "power": 1}, topic="devices/bad id!/telemetry", known=None
    )

    assert reason == "device id 'bad id!' is not a valid id"


def test_it_rejects_an_unknown_device_when_configured_to_quarantine() -> None:
    reason = rejection({"ts": 1795575540, "power": 1}, topic="devices/ghost/telemetry")

    assert reason == "unknown device 'ghost'"


def test_it_accepts_an_unknown_device_when_configured_to_accept() -> None:
    parsed = gate(
        {"ts": 1795575540, "power": 1},
        topic="devices/ghost/telemetry",
        limits=IngestSettings(unknown_devices="accept"),
    )

    assert parsed.device_id == "ghost"
    assert parsed.accepted


def test_it_rejects_a_message_without_a_timestamp() -> None:
    assert rejection({"power": 1}) == "timestamp field 'ts' is missing"


def test_it_rejects_a_timestamp_without_a_utc_offset() -> None:
    reason = rejection({"ts": "2026-11-25T02:59:00", "power": 1})

    assert reason == (
        "timestamp field 'ts': '2026-11-25T02:59:00' has no UTC offset (add 'Z' or '+hh:mm')"
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("yesterday", "'yesterday' is not ISO 8601 or Unix time"),
        (True, "is a boolean, not ISO 8601 text or Unix time"),
        ({"s": 1}, "is a object, not ISO 8601 text or Unix time"),
        (1e20, "1e+20 is out of range for Unix time"),
    ],
)
def test_it_rejects_a_timestamp_it_cannot_read(raw: object, problem: str) -> None:
    assert rejection({"ts": raw, "power": 1}) == f"timestamp field 'ts': {problem}"


def test_it_rejects_a_timestamp_beyond_the_allowed_future_skew() -> None:
    ahead = (NOW + timedelta(minutes=10)).isoformat()

    reason = rejection({"ts": ahead, "power": 1})

    assert reason == (
        "timestamp 2026-11-25T03:10:00+00:00 is 10m ahead of the receive time (limit 5m)"
    )


def test_it_accepts_a_timestamp_slightly_ahead_of_the_receive_time() -> None:
    parsed = gate({"ts": (NOW + timedelta(minutes=4)).isoformat(), "power": 1})

    assert parsed.accepted
    assert not parsed.samples[0].stale


@pytest.mark.parametrize("value", [True, False])
def test_it_rejects_a_boolean_for_a_mapped_metric(value: bool) -> None:
    mapping = PayloadMapping(metrics={"power": "P"})

    assert rejection({"ts": 1795575540, "P": value}, mapping=mapping) == (
        "metric 'power' is a boolean, not a number"
    )


def test_it_does_not_count_a_boolean_field_as_a_metric() -> None:
    parsed = gate({"ts": 1795575540, "power": 3, "on": True})

    assert [s.metric for s in parsed.samples] == ["power"]


def test_it_rejects_a_string_for_a_mapped_metric() -> None:
    mapping = PayloadMapping(metrics={"power": "P"})

    assert rejection({"ts": 1795575540, "P": "42"}, mapping=mapping) == (
        "metric 'power' is a string ('42'), not a number"
    )


@pytest.mark.parametrize("word", ["NaN", "nan", "Infinity", "-inf", "+INF"])
def test_it_rejects_a_non_finite_word_naming_the_metric(word: str) -> None:
    reason = rejection({"ts": 1795575540, "power": 5, "temp": word})

    assert reason == f"metric 'temp' is not a finite number ({word!r})"


def test_it_rejects_a_non_finite_word_for_a_mapped_metric() -> None:
    mapping = PayloadMapping(metrics={"temperature": "T"})

    assert rejection({"ts": 1795575540, "T": "NaN"}, mapping=mapping) == (
        "metric 'temperature' is not a finite number ('NaN')"
    )


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_it_rejects_non_finite_number_literals(literal: bytes) -> None:
    reason = rejection(b'{"ts": 1795575540, "power": ' + literal + b"}")

    assert reason.startswith("payload is not JSON")


def test_it_rejects_a_field_name_that_cannot_be_a_metric() -> None:
    reason = rejection({"ts": 1795575540, "temp °C": 40})

    assert reason == "field 'temp °C' cannot be a metric name"


def test_it_rejects_a_status_that_is_not_a_string_or_integer() -> None:
    assert rejection({"ts": 1795575540, "power": 1, "fault": True}) == (
        "status field 'fault' is a boolean, not a string or integer code"
    )


def test_it_rejects_a_message_with_no_metrics_and_no_status() -> None:
    assert rejection({"ts": 1795575540, "fw": "1.2"}) == "no metrics and no status code"


def test_it_marks_a_retained_message_stale() -> None:
    parsed = gate({"ts": 1795575540, "power": 1, "fault": "E1"}, retained=True)

    assert [s.stale for s in parsed.samples] == [True, True]


def test_it_marks_a_reading_older_than_the_maximum_age_stale() -> None:
    old = (NOW - timedelta(hours=1, seconds=1)).isoformat()
    recent = (NOW - timedelta(minutes=59)).isoformat()

    assert gate({"ts": old, "power": 1}).samples[0].stale
    assert not gate({"ts": recent, "power": 1}).samples[0].stale


# ---------------------------------------------------------------- hostile input, named


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"ts": "9999-12-31T23:59:59-14:00", "p": 1}', "out of range once converted to UTC"),
        (b'{"ts": "0001-01-01T00:00:00+14:00", "p": 1}', "out of range once converted to UTC"),
        (b'{"ts": 1e308, "p": 1}', "out of range for Unix time"),
        (b'{"ts": -1e308, "p": 1}', "out of range for Unix time"),
        (b'{"ts": 99999999999999999999999999999, "p": 1}', "out of range for Unix time"),
        (b'{"ts": "NaN", "p": 1}', "is not ISO 8601 or Unix time"),
        (b'{"ts": 1764039600, "p": "-Infinity"}', "is not a finite number"),
        (b'{"ts": 1764039600, "p": NaN}', "payload is not JSON"),
        (b'{"ts": 1764039600, "p": 1e999}', "payload is not JSON"),
        (b'{"ts": 1764039600, "fault": 1e300}', "not a string or integer code"),
        (b'{"ts": 1764039600, "fault": {"code": [1]}}', "not a string or integer code"),
        (b'{"ts": 1764039600, "p": ' + b"[" * 5000 + b"]" * 5000 + b"}", "payload is not JSON"),
        (b'{"ts": [1764039600], "p": 1}', "is a array, not ISO 8601"),
    ],
)
def test_it_names_every_rejection_of_hostile_values(payload: bytes, reason: str) -> None:
    limits = IngestSettings(max_payload_bytes=64 * 1024)

    assert reason in rejection(payload, limits=limits)


def test_it_caps_the_metrics_one_message_can_create_without_a_mapping() -> None:
    payload = {"ts": "2026-11-25T03:00:00Z", **{f"m{i}": i for i in range(5000)}}

    reason = rejection(payload, limits=IngestSettings(max_metrics_per_message=100))

    assert "more than 100 numeric fields (max_metrics_per_message)" in reason


def test_it_caps_the_distinct_metric_names_of_one_device() -> None:
    names = MetricNames(limit=3)

    def send(*fields: str) -> Parsed:
        body = orjson.dumps({"ts": "2026-11-25T03:00:00Z", **dict.fromkeys(fields, 1.0)})
        return parse_message(
            TOPIC,
            body,
            retained=False,
            received_at=NOW,
            mapping=PayloadMapping(),
            limits=IngestSettings(),
            known_devices=KNOWN,
            metric_names=names,
        )

    assert send("power", "temperature").accepted
    assert send("power", "voltage").accepted
    refused = send("power", "junk_1", "junk_2")
    assert send("power", "temperature", "voltage").accepted  # known names still pass

    assert refused.rejection == (
        "device 'inv-1' would have more than 3 metric names (max_metrics_per_device); "
        "new: 'junk_1, junk_2'"
    )
