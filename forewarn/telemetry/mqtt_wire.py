"""The part of MQTT 5 the ingester speaks, as bytes: encoders and a frame reader.

Ingest is a subscriber only: CONNECT (persistent session: ``clean_start`` 0 and a
session expiry), SUBSCRIBE at QoS 1, PUBLISH in, PUBACK out, PINGREQ and DISCONNECT.
Pure functions over bytes; the socket lives in :mod:`forewarn.telemetry.connection`.

Why not paho here: profiled in the ingest benchmark, paho's receive path was about three
quarters of forewarn's CPU per message (three ``recv`` calls per packet, a
``Properties`` object built and cleared for every PUBLISH, a ``MQTTMessage``, callback
locks and topic matching) and one ``send`` per PUBACK. Reading 256 KiB at a time and
slicing PUBLISH frames out of it costs a few µs per message, and a batch's PUBACKs go
out in one ``send``. paho is still used to publish (``telemetry/republish.py``) and by
the tests' publishers, so every frame here is checked against another implementation.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
PUBREL = 0x60
SUBSCRIBE = 0x82  # fixed header flags 0b0010 are mandatory for SUBSCRIBE
SUBACK = 0x90
PINGREQ = b"\xc0\x00"
PINGRESP = 0xD0
DISCONNECT = 0xE0
NORMAL_DISCONNECT = b"\xe0\x00"
"""Reason 0 ("normal disconnection"): the broker keeps the session and queues for it."""

# Property identifiers (MQTT 5, section 2.2.2.2).
_SESSION_EXPIRY = 0x11
_RECEIVE_MAXIMUM = 0x21
_SERVER_KEEP_ALIVE = 0x13
_REASON_STRING = 0x1F

MAX_REMAINING_LENGTH = 268_435_455


class ProtocolError(Exception):
    """The broker sent something that is not MQTT 5 as this module reads it."""


def varint(value: int) -> bytes:
    """MQTT's variable byte integer."""
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 0xFFFF:
        raise ValueError("an MQTT string is at most 65 535 bytes")
    return struct.pack(">H", len(raw)) + raw


def _frame(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def connect(
    client_id: str,
    *,
    keepalive: int,
    session_expiry: int,
    username: str | None = None,
    password: str | None = None,
    receive_maximum: int = 0xFFFF,
) -> bytes:
    """CONNECT resuming (or creating) the persistent session ``client_id``."""
    flags = 0  # clean_start 0: resume the session and its queued messages
    if username is not None:
        flags |= 0x80
        if password is not None:
            flags |= 0x40
    properties = struct.pack(
        ">BIBH", _SESSION_EXPIRY, min(session_expiry, 0xFFFFFFFF), _RECEIVE_MAXIMUM, receive_maximum
    )
    body = (
        _string("MQTT")
        + bytes((5, flags))
        + struct.pack(">H", keepalive)
        + varint(len(properties))
        + properties
        + _string(client_id)
    )
    if username is not None:
        body += _string(username)
        if password is not None:
            body += _string(password)
    return _frame(CONNECT, body)


def subscribe(packet_id: int, filters: Sequence[str]) -> bytes:
    """SUBSCRIBE at QoS 1 with retain handling 1: retained values are sent for a new
    subscription only, not each time the persistent session resumes."""
    options = 0x01 | (1 << 4)
    body = struct.pack(">H", packet_id) + b"\x00"
    for topic_filter in filters:
        body += _string(topic_filter) + bytes((options,))
    return _frame(SUBSCRIBE, body)


_PUBACK = struct.Struct(">BBH")


def pubacks(packet_ids: Sequence[int]) -> bytes:
    """One PUBACK (success, no properties: the two-byte short form) per packet id."""
    count = len(packet_ids)
    if count == 1:
        return _PUBACK.pack(PUBACK, 2, packet_ids[0])
    layout = struct.Struct(">" + "BBH" * count)
    return layout.pack(*[v for mid in packet_ids for v in (PUBACK, 2, mid)])


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    reason: int
    server_keepalive: int | None
    reason_string: str | None


def read_connack(body: bytes) -> ConnAck:
    if len(body) < 2:
        raise ProtocolError("CONNACK shorter than 2 bytes")
    keepalive: int | None = None
    reason_string: str | None = None
    if len(body) > 2:
        for identifier, value in _properties(body, 2):
            if identifier == _SERVER_KEEP_ALIVE and isinstance(value, int):
                keepalive = value
            elif identifier == _REASON_STRING and isinstance(value, bytes):
                reason_string = value.decode("utf-8", "replace")
    return ConnAck(bool(body[0] & 1), body[1], keepalive, reason_string)


def read_suback(body: bytes) -> tuple[int, list[int]]:
    """The SUBACK's packet id and one reason code per filter."""
    if len(body) < 3:
        raise ProtocolError("SUBACK shorter than 3 bytes")
    length, start = read_varint(body, 2)
    return struct.unpack_from(">H", body)[0], list(body[start + length :])


def read_disconnect(body: bytes) -> int:
    """A server DISCONNECT's reason code (0 when the body is empty)."""
    return body[0] if body else 0


def read_varint(data: bytes | bytearray, position: int) -> tuple[int, int]:
    """(value, position after it), or raise ProtocolError."""
    value = shift = 0
    for index in range(position, min(position + 4, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise ProtocolError("malformed variable byte integer")


# Property id -> how its value is laid out (MQTT 5, table 2-4); only the ones a broker
# may put on CONNACK, SUBACK or DISCONNECT need reading, the others are skipped whole.
_BYTE, _TWO, _FOUR, _VAR, _STRING, _PAIR = range(6)
_LAYOUT = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STRING, 0x08: _STRING, 0x09: _STRING, 0x0B: _VAR,
    0x11: _FOUR, 0x12: _STRING, 0x13: _TWO, 0x15: _STRING, 0x16: _STRING, 0x17: _BYTE,
    0x18: _FOUR, 0x19: _BYTE, 0x1A: _STRING, 0x1C: _STRING, 0x1F: _STRING, 0x21: _TWO,
    0x22: _TWO, 0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}  # fmt: skip


def _properties(body: bytes, position: int) -> list[tuple[int, int | bytes]]:
    length, position = read_varint(body, position)
    end = position + length
    found: list[tuple[int, int | bytes]] = []
    while position < end:
        identifier = body[position]
        position += 1
        layout = _LAYOUT.get(identifier)
        value: int | bytes
        if layout == _BYTE:
            value, position = body[position], position + 1
        elif layout == _TWO:
            value, position = struct.unpack_from(">H", body, position)[0], position + 2
        elif layout == _FOUR:
            value, position = struct.unpack_from(">I", body, position)[0], position + 4
        elif layout == _VAR:
            value, position = read_varint(body, position)
        elif layout == _STRING:
            size = struct.unpack_from(">H", body, position)[0]
            value, position = bytes(body[position + 2 : position + 2 + size]), position + 2 + size
        elif layout == _PAIR:
            key = struct.unpack_from(">H", body, position)[0]
            position += 2 + key
            size = struct.unpack_from(">H", body, position)[0]
            value, position = bytes(body[position + 2 : position + 2 + size]), position + 2 + size
        else:
            raise ProtocolError(f"unknown property 0x{identifier:02x}")
        found.append((identifier, value))
    return found
