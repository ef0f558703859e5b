"""One MQTT 5 connection of the ingester: a non-blocking socket, buffers and keep-alive.

The ingester drives it from its own thread: :meth:`BrokerConnection.receive` reads what
the socket holds (256 KiB at a time), :meth:`BrokerConnection.dispatch` turns whole
frames into calls on a :class:`Listener`, and :meth:`BrokerConnection.write` sends what
is queued (CONNECT, SUBSCRIBE, a batch's PUBACKs in one ``send``, PINGREQ). Nothing here
decides when to acknowledge: the ingester acks only after its commit.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from forewarn.telemetry import mqtt_wire as wire
from forewarn.telemetry.mqtt_wire import ConnAck, ProtocolError

_READ_SIZE = 256 * 1024


class Listener(Protocol):
    """What the connection tells its owner, from :meth:`BrokerConnection.dispatch`."""

    def connected(self, ack: ConnAck) -> None:
        """CONNACK arrived (``ack.reason`` >= 0x80 is a refusal)."""

    def subscribed(self, reasons: list[int]) -> None:
        """SUBACK arrived with one reason code per filter (>= 0x80: refused)."""

    def message(self, topic: str, payload: bytes, retained: bool, packet_id: int) -> None:
        """A PUBLISH arrived; ``packet_id`` is 0 for QoS 0, else the id to acknowledge."""

    def server_disconnected(self, reason: int) -> None:
        """The broker sent DISCONNECT with ``reason``."""


def reason_name(packet: str, code: int) -> str:
    """A reason code as its MQTT 5 name ("Not authorized"), for logs."""
    kind = {"CONNACK": PacketTypes.CONNACK, "SUBACK": PacketTypes.SUBACK}.get(
        packet, PacketTypes.DISCONNECT
    )
    try:
        return str(ReasonCode(kind, identifier=code))
    except KeyError:
        return f"reason code {code}"


class BrokerConnection:
    """A subscriber's connection; see the module docstring. Not thread-safe: one thread
    (the ingester's) calls everything."""

    def __init__(
        self,
        listener: Listener,
        *,
        client_id: str,
        keepalive: int,
        session_expiry: int,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._listener = listener
        self._client_id = client_id
        self._keepalive = keepalive
        self._session_expiry = session_expiry
        self._username = username
        self._password = password
        self._sock: socket.socket | None = None
        self._in = bytearray()
        self._out = bytearray()
        self._packet_id = 0
        self._last_out = 0.0
        self._opened_at = 0.0
        self._ping_sent_at = 0.0
        self._connack = False

    # -- lifecycle --------------------------------------------------------------------

    def open(self, host: str, port: int, timeout: float) -> None:
        """Connect the socket and queue CONNECT; raises OSError if the socket fails."""
        self.close()
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self._sock = sock
        self._in.clear()
        self._out.clear()
        self._connack = False
        self._ping_sent_at = 0.0
        self._opened_at = self._last_out = time.monotonic()
        self._out += wire.connect(
            self._client_id,
            keepalive=self._keepalive,
            session_expiry=self._session_expiry,
            username=self._username,
            password=self._password,
        )

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def disconnect(self, timeout: float = 2.0) -> None:
        """Send DISCONNECT (reason 0: the broker keeps the session), then close."""
        if self._sock is None:
            return
        self._out += wire.NORMAL_DISCONNECT
        deadline = time.monotonic() + timeout
        while self._out and time.monotonic() < deadline:
            if not self.write():
                break
            if self._out:
                time.sleep(0.005)
        self.close()

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    # -- outgoing ---------------------------------------------------------------------

    def subscribe(self, filters: Sequence[str]) -> None:
        self._packet_id = self._packet_id % 0xFFFF + 1
        self._out += wire.subscribe(self._packet_id, filters)

    def ack(self, packet_ids: Sequence[int]) -> None:
        """Queue one PUBACK per id; :meth:`write` sends them together."""
        for start in range(0, len(packet_ids), 4096):
            self._out += wire.pubacks(packet_ids[start : start + 4096])

    def want_write(self) -> bool:
        return bool(self._out)

    def write(self) -> bool:
        """Send what the socket takes now; False if the connection is lost."""
        if self._sock is None:
            return False
        while self._out:
            try:
                sent = self._sock.send(self._out)
            except BlockingIOError:
                return True
            except OSError:
                return False
            del self._out[:sent]
            self._last_out = time.monotonic()
        return True

    def keep_alive(self) -> bool:
        """Ping when nothing was sent for ``keepalive`` seconds; False when the broker
        did not answer a ping (or CONNECT) within ``keepalive`` seconds: lost."""
        now = time.monotonic()
        if not self._connack:
            return now - self._opened_at < max(self._keepalive, 5)
        if not self._keepalive:
            return True
        if self._ping_sent_at:
            return now - self._ping_sent_at < self._keepalive
        if now - self._last_out >= self._keepalive * 0.75:
            self._out += wire.PINGREQ
            self._ping_sent_at = now
        return True

    # -- incoming ---------------------------------------------------------------------

    def receive(self) -> bool:
        """Append what the socket holds to the input buffer; False if the connection is
        closed or broken."""
        if self._sock is None:
            return False
        try:
            data = self._sock.recv(_READ_SIZE)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        self._in += data
        return True

    def has_frame(self) -> bool:
        """Whether the input buffer holds a whole frame (then do not wait on select)."""
        buf = self._in
        if len(buf) < 2:
            return False
        try:
            length, start = wire.read_varint(buf, 1)
        except ProtocolError:
            return len(buf) >= 5  # dispatch will raise it
        return start + length <= len(buf)

    def dispatch(self, enough: Callable[[], bool]) -> None:
        """Hand every whole frame in the input buffer to the listener, stopping early
        once ``enough()`` is true after a message. Raises ProtocolError."""
        buf = self._in
        end = len(buf)
        position = 0
        listener = self._listener
        try:
            while position + 2 <= end:
                first = buf[position]
                length = buf[position + 1]
                start = position + 2
                if length & 0x80:
                    length, start = wire.read_varint(buf, position + 1)
                stop = start + length
                if stop > end:
                    break
                if first & 0xF0 == wire.PUBLISH:
                    qos = (first >> 1) & 3
                    if qos == 2:
                        raise ProtocolError("QoS 2 PUBLISH on a QoS 1 subscription")
                    at = start + 2 + ((buf[start] << 8) | buf[start + 1])
                    topic = buf[start + 2 : at].decode("utf-8", "replace")
                    packet_id = 0
                    if qos:
                        packet_id = (buf[at] << 8) | buf[at + 1]
                        at += 2
                    properties = buf[at]
                    if properties & 0x80:
                        properties, at = wire.read_varint(buf, at)
                        at += properties
                    else:
                        at += 1 + properties
                    position = stop
                    listener.message(topic, bytes(buf[at:stop]), bool(first & 1), packet_id)
                    if enough():
                        break
                else:
                    position = stop
                    self._control(first & 0xF0, bytes(buf[start:stop]))
        except IndexError as exc:
            raise ProtocolError("a frame ended inside its header") from exc
        finally:
            del buf[:position]

    def _control(self, kind: int, body: bytes) -> None:
        if kind == wire.CONNACK:
            ack = wire.read_connack(body)
            self._connack = True
            if ack.server_keepalive is not None:  # the broker's value wins (0: no pings)
                self._keepalive = ack.server_keepalive
            self._listener.connected(ack)
        elif kind == wire.SUBACK:
            self._listener.subscribed(wire.read_suback(body)[1])
        elif kind == wire.PINGRESP:
            self._ping_sent_at = 0.0
        elif kind == wire.DISCONNECT:
            self._listener.server_disconnected(wire.read_disconnect(body))
        else:
            raise ProtocolError(f"unexpected packet type 0x{kind:02x}")
