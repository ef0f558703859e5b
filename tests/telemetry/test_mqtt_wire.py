"""The ingester's MQTT 5 frames, read back by paho (another implementation)."""

from __future__ import annotations

import struct

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from forewarn.telemetry import mqtt_wire as wire


def test_varints_round_trip_at_every_length_boundary() -> None:
    for value in (0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455):
        encoded = wire.varint(value)
        assert wire.read_varint(b"\x00" + encoded, 1) == (value, 1 + len(encoded))
    with pytest.raises(ValueError):
        wire.varint(268_435_456)


def test_a_malformed_varint_is_a_protocol_error() -> None:
    with pytest.raises(wire.ProtocolError):
        wire.read_varint(b"\xff\xff\xff\xff\x01", 0)


def test_connect_asks_to_resume_the_session_with_its_expiry() -> None:
    frame = wire.connect(
        "ingest-1", keepalive=30, session_expiry=86_400, username="u", password="p"
    )
    assert frame[0] == wire.CONNECT
    length, start = wire.read_varint(frame, 1)
    body = frame[start:]
    assert len(body) == length
    assert body[:7] == b"\x00\x04MQTT\x05"
    flags, keepalive = body[7], struct.unpack(">H", body[8:10])[0]
    assert flags == 0xC0  # username and password; clean start 0: resume the session
    assert keepalive == 30
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.unpack(body[10:])  # type: ignore[no-untyped-call]
    assert properties.SessionExpiryInterval == 86_400
    assert b"\x00\x08ingest-1\x00\x01u\x00\x01p" in body


def test_subscribe_asks_for_qos_1_without_retained_replay_on_resume() -> None:
    frame = wire.subscribe(7, ["$share/g/devices/+/telemetry"])
    assert frame[0] == 0x82
    body = frame[2:]
    assert body[:3] == b"\x00\x07\x00"
    assert body[3:] == b"\x00\x1c$share/g/devices/+/telemetry\x11"


def test_pubacks_are_one_short_frame_per_packet_id() -> None:
    assert wire.pubacks([1]) == b"\x40\x02\x00\x01"
    assert wire.pubacks([1, 65_535]) == b"\x40\x02\x00\x01\x40\x02\xff\xff"


def test_connack_carries_the_session_flag_reason_and_server_keepalive() -> None:
    properties = b"\x13\x00\x3c\x1f\x00\x02hi"
    ack = wire.read_connack(b"\x01\x00" + wire.varint(len(properties)) + properties)
    assert ack == wire.ConnAck(True, 0, 60, "hi")
    assert wire.read_connack(b"\x00\x87\x00").reason == 0x87


def test_suback_gives_one_reason_per_filter() -> None:
    assert wire.read_suback(b"\x00\x07\x00\x01\x87") == (7, [1, 0x87])
