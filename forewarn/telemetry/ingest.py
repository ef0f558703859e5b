"""The MQTT ingester: messages in, readings and quarantine rows committed, monitors told.

How a message travels, and why no message the broker accepted can be lost:

1. paho's ``on_message`` runs the data-quality gate (:func:`parse_message`) and appends
   the result to the current batch. Nothing else happens in the callback.
2. The ingester's own thread runs the paho network loop and, between loop calls, commits
   the batch when it holds ``batch_size`` messages or is ``batch_interval`` old: readings
   (``ON CONFLICT DO NOTHING``), device last-seen times and quarantine rows go into one
   transaction together with whatever the ``on_batch`` hook writes (alerts, tickets,
   outbox rows).
3. Only after the commit are the messages acknowledged (MQTT 5 manual PUBACK). A crash
   before that leaves them unacknowledged in the broker's persistent session
   (``clean_start=False``, session expiry), and the broker redelivers them to the next
   ingester with the same client id. Readings are unique per device, metric and device
   time, so a redelivered message stores nothing twice and the hook only ever receives
   readings that were new in this transaction.

Batches are committed in the thread that reads the socket: a separate writer thread was
measured to be slower on this workload (the GIL; see DESIGN.md). The in-process queue
is the pending batch; while it holds ``max_queue`` messages the socket is not read, so
the broker (and TCP) hold the rest. Nothing is ever dropped.
"""

from __future__ import annotations

import contextlib
import logging
import select as io_select
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from forewarn.clock import Clock
from forewarn.config.schema import BrokerSettings, IngestSettings
from forewarn.store.models import (
    Base,
    Device,
    Quarantine,
)
from forewarn.store.readings_bulk import insert_samples
from forewarn.telemetry.payload import MetricNames, parse_message
from forewarn.telemetry.sample import Sample

log = logging.getLogger(__name__)

BatchHook = Callable[[Session, Sequence[Sample], datetime], None]
"""Called inside a batch's transaction with the samples that were new in it and ``now``.

Whatever it writes commits atomically with the readings. It is not called for a batch
that brought no new samples (e.g. a pure redelivery).
"""

_DEVICES = Base.metadata.tables[Device.__tablename__]
_QUARANTINE = Base.metadata.tables[Quarantine.__tablename__]
_MAX_BACKOFF = 30.0
_IDLE_POLL = 0.25  # how long one network-loop call may block: bounds stop() latency


class IngestError(Exception):
    """A batch could not be stored (raised by :meth:`Ingester.ingest_payloads`)."""


@dataclass(frozen=True)
class IngestCounts:
    """A consistent snapshot of the ingester's counters (for ``/metrics`` and tests)."""

    received: int = 0
    """Messages taken from the broker (or given to ``ingest_payloads``)."""
    accepted: int = 0
    """Messages that passed the gate, committed (redeliveries count again)."""
    rejected: int = 0
    """Messages quarantined, committed."""
    stored: int = 0
    """Readings rows that were new."""
    duplicates: int = 0
    """Samples that were already stored (redelivery or replay)."""
    batches: int = 0
    failed_batches: int = 0
    """Batches rolled back and left unacknowledged for the broker to redeliver."""
    hook_failures: int = 0
    """Batches whose ``on_batch`` hook raised; their readings were still stored."""

    @property
    def committed(self) -> int:
        """Messages whose outcome (readings or quarantine) is committed."""
        return self.accepted + self.rejected


class IngestStats:
    """Counters added to by the ingest thread once per batch, readable from any thread."""

    def __init__(self) -> None:
        self._totals = IngestCounts()
        self._changed = threading.Condition()
        self.received = 0
        """Bumped per message without the lock: an int store is atomic under the GIL."""

    def snapshot(self) -> IngestCounts:
        with self._changed:
            return replace(self._totals, received=self.received)

    def wait_for_committed(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` messages are committed; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._totals.committed >= count, timeout)

    def add(self, delta: IngestCounts) -> None:
        """Add one batch's counts (called by the ingester)."""
        with self._changed:
            totals = self._totals
            self._totals = IngestCounts(
                *(getattr(totals, f.name) + getattr(delta, f.name) for f in fields(IngestCounts))
            )
            self._changed.notify_all()


class _Batch:
    """Messages received since the last commit."""

    __slots__ = ("accepted", "acks", "opened", "quarantine", "rejected", "samples")

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.quarantine: list[dict[str, object]] = []
        self.acks: list[int] = []
        """Message ids to PUBACK after the commit; cleared when the connection is lost,
        because an id is only meaningful on the connection it arrived on."""
        self.accepted = 0
        self.rejected = 0
        self.opened = 0.0

    @property
    def messages(self) -> int:
        return self.accepted + self.rejected


@dataclass(frozen=True)
class MqttLink:
    """Whether the ingester is connected, since when, and when the last message came."""

    connected: bool
    since: float
    """Epoch seconds of the last change (or of the ingester's creation)."""
    last_message_at: float | None


class Ingester:
    """Subscribes to device telemetry and stores it; see the module docstring.

    ``password`` is the broker password (from the environment, never the file);
    ``sessions`` opens database sessions; ``on_batch`` lets monitors evaluate the new
    samples inside the batch's transaction. ``known_devices_refresh`` is how often the
    set of known device ids is re-read, so a device added to the config is accepted
    without a restart.
    """

    def __init__(
        self,
        broker: BrokerSettings,
        ingest: IngestSettings,
        *,
        password: str | None,
        sessions: sessionmaker[Session],
        clock: Clock,
        on_batch: BatchHook | None = None,
        known_devices_refresh: timedelta = timedelta(seconds=30),
    ) -> None:
        self._broker = broker
        self._limits = ingest
        self._mapping = broker.payload
        self._sessions = sessions
        self._clock = clock
        self._on_batch = on_batch
        self._refresh_every = known_devices_refresh.total_seconds()
        self._batch_interval = ingest.batch_interval.total_seconds()
        self._flush_at = min(ingest.batch_size, ingest.max_queue)
        self.stats = IngestStats()

        self._batch = _Batch()
        self._known: frozenset[str] | None = None
        self._metric_names = MetricNames(ingest.max_metrics_per_device)
        self._known_loaded_at = -float("inf")
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._link = "never"  # never | up | down: for logging state changes once
        self._link_lost_at = 0.0
        # Wall-clock times for /readyz: since when the link is as it is, the last message.
        self._link_since = time.time()
        self._last_message_at: float | None = None
        self._socket_open = False
        self._store_down = False
        self._backoff = 0.0
        """Seconds to wait before the next connection attempt; grows while the broker or
        the store fails, back to 0 after a commit or a connection with the store up."""
        self._disconnect_reason = ""
        self._parse_error_logged = False
        self._arrivals = 0
        self._draining = False

        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=broker.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if broker.username is not None:
            self._client.username_pw_set(broker.username, password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._connect_properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        self._connect_properties.SessionExpiryInterval = min(
            int(broker.session_expiry.total_seconds()), 0xFFFFFFFF
        )
        self._insert_quarantine = insert(_QUARANTINE)

    # -- public API -----------------------------------------------------------------

    def start(self) -> None:
        """Run the ingester in a background thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the ingester is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="forewarn-ingest", daemon=True)
        self._thread.start()

    def run_forever(self) -> None:
        """Run the ingester in the calling thread until :meth:`stop` is called (from
        another thread or a signal handler)."""
        self._stop.clear()
        self._serve()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and acknowledge the current batch, disconnect cleanly and return.

        Safe to call from a signal handler in the thread running :meth:`run_forever`.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the ingest thread did not stop within %.0fs", timeout)

    def link(self) -> MqttLink:
        """The broker connection as ``/readyz`` reports it (wall-clock times)."""
        return MqttLink(self._link == "up", self._link_since, self._last_message_at)

    def wait_until_subscribed(self, timeout: float) -> bool:
        """Block until the broker confirmed the subscriptions; False on timeout."""
        return self._subscribed.wait(timeout)

    def wait_for_committed(self, count: int, timeout: float) -> bool:
        """Block until ``count`` messages are committed since start; False on timeout."""
        return self.stats.wait_for_committed(count, timeout)

    def ingest_payloads(self, messages: Iterable[tuple[str, bytes, bool]]) -> None:
        """Feed ``(topic, payload, retained)`` messages through the same gate, store and
        hook as MQTT, without a broker (the demo uses it when Mosquitto is missing).

        Raises :class:`IngestError` if a batch cannot be stored; the batches before it
        stay committed.
        """
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("ingest_payloads() cannot run while the MQTT thread runs")
        try:
            self._refresh_known_devices(force=True)
            for topic, payload, retained in messages:
                self._take(topic, payload, retained, 0)
                if self._batch.messages >= self._flush_at:
                    self._commit()
            if self._batch.messages:
                self._commit()
        except SQLAlchemyError as exc:
            self._batch = _Batch()
            raise IngestError(f"could not store a batch: {_describe(exc)}") from exc

    # -- the loop -------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception:  # a bug must not end ingest: start over on a new connection
                    log.exception("unexpected error in the ingest loop; reconnecting")
                    self._abandon_batch()
        finally:
            self._shut_down()

    def _step(self) -> None:
        if not self._socket_open:
            if self._backoff:
                self._stop.wait(self._backoff)
                if self._stop.is_set():
                    return
            if not (self._prepare() and self._open()):
                self._backoff = _grow(self._backoff)
            return
        if self._batch.messages < self._flush_at:
            rc = self._pump(self._poll_timeout())
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lost(rc)
                return
        if self._batch.messages and (
            self._batch.messages >= self._flush_at
            or time.monotonic() - self._batch.opened >= self._batch_interval
        ):
            self._flush()
        if time.monotonic() - self._known_loaded_at >= self._refresh_every:
            # On failure keep the old set; the next commit reports the store's state.
            with contextlib.suppress(SQLAlchemyError):
                self._refresh_known_devices()

    def _pump(self, timeout: float) -> MQTTErrorCode:
        """One round of network I/O, through paho's external-event-loop API.

        ``Client.loop()`` selects once per packet and wakes itself through a socket
        pair, one more system call per PUBACK; here every packet already waiting is
        read after one ``select`` (until the batch is full). Network and gate now cost
        a few µs per message more than a bare subscriber's whole work.
        """
        client = self._client
        sock = client.socket()
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        try:
            readable, _, _ = io_select.select(
                [sock], [sock] if client.want_write() else [], [], timeout
            )
        except (OSError, ValueError):  # closed under us
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if readable:
            while True:
                before = self._arrivals
                rc = client.loop_read()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return rc
                # No new message: the socket is drained (or held a non-PUBLISH packet).
                if self._arrivals == before or self._batch.messages >= self._flush_at:
                    break
        if client.want_write():
            rc = client.loop_write()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
        return client.loop_misc()

    def _poll_timeout(self) -> float:
        if not self._batch.messages:
            return _IDLE_POLL
        left = self._batch.opened + self._batch_interval - time.monotonic()
        return min(max(left, 0.0), _IDLE_POLL)

    def _prepare(self) -> bool:
        """Check the store before taking messages we could not commit.

        Only a successful commit counts as the store being back (a table can be missing
        while ``SELECT 1`` works), so this logs nothing when the store is known down.
        """
        try:
            self._refresh_known_devices(force=self._store_down or self._known is None)
            if self._store_down:
                with self._sessions() as session:
                    session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            if not self._store_down:
                log.error("the store is unavailable; not reading telemetry: %s", _describe(exc))
                self._store_down = True
            return False
        return True

    def _open(self) -> bool:
        self._subscribed.clear()
        try:
            self._client.connect(
                self._broker.host,
                self._broker.port,
                keepalive=self._broker.keepalive,
                clean_start=False,
                properties=self._connect_properties,
            )
        except OSError as exc:
            if self._link != "down":
                self._note_down(f"cannot connect: {exc}")
            return False
        self._socket_open = True
        return True

    def _lost(self, rc: MQTTErrorCode) -> None:
        self._socket_open = False
        self._subscribed.clear()
        # The unacknowledged messages will be redelivered on the next connection; their
        # ids mean nothing there. Commit what we have (the redelivery is then a no-op).
        self._batch.acks.clear()
        if self._link == "up":
            self._note_down(self._disconnect_reason or mqtt.error_string(rc))
        self._disconnect_reason = ""
        if self._batch.messages:
            self._flush()

    def _note_down(self, why: str) -> None:
        where = f"{self._broker.host}:{self._broker.port}"
        if self._link == "up":
            log.warning("lost the MQTT broker at %s (%s); reconnecting", where, why)
            self._link_lost_at = time.monotonic()
        else:
            log.warning("cannot reach the MQTT broker at %s (%s); retrying", where, why)
        if self._link == "up":
            self._link_since = time.time()
        self._link = "down"

    def _flush(self) -> None:
        try:
            self._commit()
        except Exception as exc:  # whatever it is, the thread must live on
            self.stats.add(IngestCounts(failed_batches=1))
            if not self._store_down:
                log.error(
                    "could not store a batch of %d messages; leaving them unacknowledged "
                    "for the broker to redeliver: %s",
                    self._batch.messages,
                    _describe(exc),
                    exc_info=not isinstance(exc, SQLAlchemyError),
                )
                self._store_down = True
            self._abandon_batch()

    def _abandon_batch(self) -> None:
        """Drop the uncommitted batch and the connection its messages came on.

        Unacknowledged messages are only resent on a new connection, so disconnect now;
        the loop reconnects after a backoff, once the store answers (see _prepare).
        """
        self._batch = _Batch()
        self._backoff = _grow(self._backoff)
        if self._socket_open:
            self._client.disconnect()
            self._socket_open = False
            self._subscribed.clear()

    def _shut_down(self) -> None:
        if self._batch.messages:
            self._flush()
        if self._socket_open:
            if self._link == "up":
                self._settle_acks()
            # DISCONNECT with reason 0 keeps the session: whatever is published while we
            # are away is queued for us.
            self._client.disconnect()
            deadline = time.monotonic() + 2.0
            while self._client.want_write() and time.monotonic() < deadline:
                if self._client.loop_write() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                time.sleep(0.01)
            self._socket_open = False
        self._subscribed.clear()
        if self._link == "up":
            log.info("disconnected from the MQTT broker")
        self._link = "never"

    def _settle_acks(self) -> None:
        """Make sure the broker has read our last PUBACKs before the socket closes.

        While a backlog streams in, our receive buffer holds unread messages, and closing
        a socket with unread data sends a TCP reset, which can make the broker discard
        the PUBACKs it has not read yet (measured: a few hundred redeliveries after a
        clean stop). The broker handles one connection's packets in order, so a SUBACK
        for a repeated SUBSCRIBE (retainHandling=1: no retained replay) proves it has
        processed every PUBACK before it. Messages arriving meanwhile are not taken and
        not acknowledged; the broker delivers them again next time.
        """
        self._draining = True
        self._subscribed.clear()
        self._subscribe()
        deadline = time.monotonic() + 2.0
        while not self._subscribed.is_set() and time.monotonic() < deadline:
            if self._pump(0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        self._draining = False

    # -- paho callbacks (thin: parse and append) -------------------------------------

    def _on_message(
        self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        self._arrivals += 1
        self._last_message_at = time.time()
        if self._draining:
            return
        self._take(
            message.topic, bytes(message.payload), message.retain, message.mid if message.qos else 0
        )

    def _take(self, topic: str, payload: bytes, retained: bool, mid: int) -> None:
        batch = self._batch
        if not batch.messages:
            batch.opened = time.monotonic()
        self.stats.received += 1
        received_at = self._clock.now()
        try:
            parsed = parse_message(
                topic,
                payload,
                retained=retained,
                received_at=received_at,
                mapping=self._mapping,
                limits=self._limits,
                known_devices=self._known,
                metric_names=self._metric_names,
            )
            rejection = parsed.rejection
        except Exception as exc:  # a bug in the gate must not stop ingest
            if not self._parse_error_logged:
                log.exception("the payload gate failed; quarantining such messages")
                self._parse_error_logged = True
            rejection = f"internal error in the payload gate: {type(exc).__name__}"
        if rejection is None:
            batch.samples.extend(parsed.samples)
            batch.accepted += 1
        else:
            batch.quarantine.append(
                {
                    "received_at": received_at,
                    "source": "mqtt",
                    "origin": topic,
                    "payload": payload[: self._limits.max_payload_bytes],
                    "reason": rejection,
                }
            )
            batch.rejected += 1
        if mid:
            batch.acks.append(mid)

    def _on_connect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        where = f"{self._broker.host}:{self._broker.port}"
        if reason.is_failure:
            if self._link != "down":
                self._note_down(f"refused: {reason}")
            return
        if self._link == "down" and self._link_lost_at:
            log.info(
                "the MQTT broker at %s is back after %.0fs (session resumed: %s)",
                where,
                time.monotonic() - self._link_lost_at,
                "yes" if flags.session_present else "no",
            )
        else:
            log.info(
                "connected to the MQTT broker at %s as %r (session resumed: %s)",
                where,
                self._broker.client_id,
                "yes" if flags.session_present else "no",
            )
        if self._link != "never" and not flags.session_present:
            log.warning(
                "the broker had no session for %r: telemetry published while forewarn was "
                "away is lost (check session_expiry and the broker's persistence)",
                self._broker.client_id,
            )
        self._link = "up"
        self._link_since = time.time()
        self._link_lost_at = 0.0
        if not self._store_down:
            self._backoff = 0.0
        self._subscribe()

    def _subscribe(self) -> None:
        # retainHandling=1: retained values are replayed only for a new subscription, not
        # each time the persistent session is resumed.
        options = SubscribeOptions(qos=1, retainHandling=1)
        self._client.subscribe([(topic, options) for topic in self._broker.topics])

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        for topic, reason in zip(self._broker.topics, reasons, strict=False):
            if reason.is_failure:
                log.error("the broker refused the subscription to %r: %s", topic, reason)
        self._subscribed.set()

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if flags.is_disconnect_packet_from_server:
            self._disconnect_reason = f"broker said: {reason}"

    # -- the store ------------------------------------------------------------------

    def _refresh_known_devices(self, *, force: bool = False) -> None:
        if self._limits.unknown_devices != "quarantine":
            self._known = None
            return
        if not force and time.monotonic() - self._known_loaded_at < self._refresh_every:
            return
        self._known_loaded_at = time.monotonic()  # a failed refresh waits its turn too
        with self._sessions() as session:
            ids = session.execute(select(_DEVICES.c.id)).scalars()
            self._known = frozenset(ids)

    def _commit(self) -> None:
        """Store the current batch in one transaction, then acknowledge its messages."""
        batch = self._batch
        new: list[Sample] = []
        duplicates = 0
        hook_failed = False
        with self._sessions() as session, session.begin():
            connection = session.connection()
            if batch.samples:
                new, duplicates = self._store_samples(connection, batch.samples)
            if batch.quarantine:
                connection.execute(self._insert_quarantine, batch.quarantine)
            if new and self._on_batch is not None:
                hook_failed = self._run_hook(session, new)
        # Committed: from here on a crash only causes a redelivery that stores nothing.
        self._batch = _Batch()
        for mid in batch.acks:
            self._client.ack(mid, 1)
        self.stats.add(
            IngestCounts(
                accepted=batch.accepted,
                rejected=batch.rejected,
                stored=len(new),
                duplicates=duplicates,
                batches=1,
                hook_failures=int(hook_failed),
            )
        )
        self._backoff = 0.0
        if self._store_down:
            log.info("the store is back; telemetry is being stored again")
            self._store_down = False

    def _run_hook(self, session: Session, new: Sequence[Sample]) -> bool:
        """Run the hook in a savepoint; True if it failed.

        A hook that raises (a monitor bug, a unique violation) must not stop telemetry
        from being stored for the whole fleet: its writes are rolled back, the readings
        are kept, and the failure is logged and counted.
        """
        assert self._on_batch is not None
        try:
            with session.begin_nested():
                self._on_batch(session, new, self._clock.now())
        except Exception:
            log.exception("the on_batch hook failed for %d new samples", len(new))
            return True
        return False

    def _store_samples(
        self, connection: Connection, samples: list[Sample]
    ) -> tuple[list[Sample], int]:
        """Insert ``samples``; return those that were new and the number of duplicates."""
        new = insert_samples(connection, samples)
        return new, len(samples) - len(new)


def _grow(backoff: float) -> float:
    return min(max(backoff * 2, 0.5), _MAX_BACKOFF)


def _describe(exc: Exception) -> str:
    """The driver's message without SQLAlchemy's statement and parameter dump."""
    original = getattr(exc, "orig", None)
    message = str(original if original is not None else exc)
    return message.strip().splitlines()[0] if message.strip() else type(exc).__name__
