"""The MQTT ingester: messages in, readings and quarantine rows committed, monitors told.

How a message travels, and why no message the broker accepted can be lost:

1. Each PUBLISH read from the socket goes through the data-quality gate and is appended
   to the current batch. Nothing else happens per message.
2. The ingester's own thread reads the socket and, between reads, commits
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
the broker (and TCP) hold the rest. Nothing is ever dropped. To use more cores, run more
ingest processes on one MQTT 5 shared subscription (``broker.share_group``): see
docs/scaling.md.

The pieces: :mod:`~forewarn.telemetry.connection` (the socket and MQTT frames),
:mod:`~forewarn.telemetry.admission` (the gate of :mod:`~forewarn.telemetry.payload` with
its per-process state), :mod:`~forewarn.telemetry.batch` (the transaction) and
:mod:`~forewarn.telemetry.stats` (counters); this module is the loop that ties them
together and decides when to commit and acknowledge.
"""

from __future__ import annotations

import contextlib
import logging
import select as io_select
import threading
import time
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from forewarn.clock import Clock
from forewarn.config.schema import BrokerSettings, IngestSettings
from forewarn.telemetry.admission import Admission
from forewarn.telemetry.batch import Batch, BatchHook, BatchStore
from forewarn.telemetry.connection import BrokerConnection, reason_name
from forewarn.telemetry.mqtt_wire import ConnAck, ProtocolError
from forewarn.telemetry.stats import IngestCounts, IngestStats, MqttLink

__all__ = ["BatchHook", "IngestCounts", "IngestError", "Ingester", "MqttLink"]

log = logging.getLogger(__name__)

_MAX_BACKOFF = 30.0
_IDLE_POLL = 0.25  # how long one network-loop call may block: bounds stop() latency
_CONNECT_TIMEOUT = 10.0


class IngestError(Exception):
    """A batch could not be stored (raised by :meth:`Ingester.ingest_payloads`)."""


class Ingester:
    """Subscribes to device telemetry and stores it; see the module docstring.

    ``password`` is the broker password (from the environment, never the file);
    ``sessions`` opens database sessions; ``on_batch`` lets monitors evaluate the new
    samples inside the batch's transaction. ``known_devices_refresh`` is how often the
    set of known device ids is re-read, so a device added to the config is accepted
    without a restart. ``client_id`` overrides ``broker.client_id`` (one per process
    on a shared subscription; see :meth:`BrokerSettings.client_id_for`).
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
        client_id: str | None = None,
    ) -> None:
        self._broker = broker
        self._client_id = client_id or broker.client_id
        self._filters = broker.subscription_filters()
        self._sessions = sessions
        self._clock = clock
        self._store = BatchStore(sessions, clock, on_batch)
        self._admission = Admission(
            broker.payload, ingest, sessions, clock, known_devices_refresh.total_seconds()
        )
        self._batch_interval = ingest.batch_interval.total_seconds()
        self._flush_at = min(ingest.batch_size, ingest.max_queue)
        self.stats = IngestStats()

        self._batch = Batch()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._link = "never"  # never | up | down: for logging state changes once
        self._link_lost_at = 0.0
        # Wall-clock times for /readyz: since when the link is as it is, the last message.
        self._link_since = time.time()
        self._last_message_at: float | None = None
        self._store_down = False
        self._backoff = 0.0
        """Seconds to wait before the next connection attempt; grows while the broker or
        the store fails, back to 0 after a commit or a connection with the store up."""
        self._disconnect_reason = ""
        self._draining = False
        self._connection = BrokerConnection(
            self,
            client_id=self._client_id,
            keepalive=broker.keepalive,
            session_expiry=int(broker.session_expiry.total_seconds()),
            username=broker.username,
            password=password if broker.username is not None else None,
        )

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
            self._admission.refresh(force=True)
            for topic, payload, retained in messages:
                self._take(topic, payload, retained, 0)
                if self._batch.messages >= self._flush_at:
                    self._commit()
            if self._batch.messages:
                self._commit()
        except SQLAlchemyError as exc:
            self._batch = Batch()
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
        if not self._connection.is_open:
            if self._backoff:
                self._stop.wait(self._backoff)
                if self._stop.is_set():
                    return
            if not (self._prepare() and self._open()):
                self._backoff = _grow(self._backoff)
            return
        if self._batch.messages < self._flush_at:
            why = self._pump(self._poll_timeout())
            if why:
                self._lost(why)
                return
        batch = self._batch
        if batch.messages and (
            batch.messages >= self._flush_at
            or (batch.urgent and not self._connection.has_frame())
            or time.monotonic() - batch.opened >= self._batch_interval
        ):
            self._flush()
        if self._admission.refresh_due():
            # On failure keep the old set; the next commit reports the store's state.
            with contextlib.suppress(SQLAlchemyError):
                self._admission.refresh()

    def _pump(self, timeout: float) -> str:
        """One round of network I/O: wait up to ``timeout`` for the socket, read what it
        holds, hand whole frames to the callbacks (until the batch is full) and send
        what is queued. Returns why the connection is lost, or "" when it is fine."""
        connection = self._connection
        if not connection.has_frame():
            writing = [connection] if connection.want_write() else []
            try:
                readable, _, _ = io_select.select([connection], writing, [], timeout)
            except (OSError, ValueError):  # closed under us
                return "the connection was closed"
            if readable and not connection.receive():
                return "the broker closed the connection"
        try:
            connection.dispatch(self._batch_full)
        except ProtocolError as exc:
            return f"protocol error: {exc}"
        if not connection.keep_alive():
            return "the broker did not answer within the keep-alive interval"
        if connection.want_write() and not connection.write():
            return "could not write to the broker"
        return ""

    def _batch_full(self) -> bool:
        return self._batch.messages >= self._flush_at

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
            self._admission.refresh(force=self._store_down or not self._admission.loaded)
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
            self._connection.open(self._broker.host, self._broker.port, _CONNECT_TIMEOUT)
        except OSError as exc:
            if self._link != "down":
                self._note_down(f"cannot connect: {exc}")
            return False
        return True

    def _lost(self, why: str) -> None:
        self._connection.close()
        self._subscribed.clear()
        # The unacknowledged messages will be redelivered on the next connection; their
        # ids mean nothing there. Commit what we have (the redelivery is then a no-op).
        self._batch.acks.clear()
        if self._link != "up":  # never got through: wait before trying again
            self._backoff = _grow(self._backoff)
        if self._link == "up":
            self._note_down(self._disconnect_reason or why)
        elif self._link == "never":
            self._note_down(why)
        self._disconnect_reason = ""
        if self._batch.messages:
            self._flush()

    def _note_down(self, why: str) -> None:
        where = f"{self._broker.host}:{self._broker.port}"
        if self._link == "up":
            log.warning("lost the MQTT broker at %s (%s); reconnecting", where, why)
            self._link_lost_at = time.monotonic()
        elif self._link != "down":
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
        self._batch = Batch()
        self._backoff = _grow(self._backoff)
        if self._connection.is_open:
            self._connection.disconnect()
            self._subscribed.clear()

    def _shut_down(self) -> None:
        if self._batch.messages:
            self._flush()
        if self._connection.is_open:
            if self._link == "up":
                self._settle_acks()
            # DISCONNECT with reason 0 keeps the session: whatever is published while we
            # are away is queued for us.
            self._connection.disconnect()
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
        for a repeated SUBSCRIBE (retain handling 1: no retained replay) proves it has
        processed every PUBACK before it. Messages arriving meanwhile are not taken and
        not acknowledged; the broker delivers them again next time.
        """
        self._draining = True
        self._subscribed.clear()
        self._connection.subscribe(self._filters)
        deadline = time.monotonic() + 2.0
        while not self._subscribed.is_set() and time.monotonic() < deadline:
            if self._pump(0.05):
                break
        self._draining = False

    # -- connection callbacks (thin: parse and append) ---------------------------------

    def message(self, topic: str, payload: bytes, retained: bool, packet_id: int) -> None:
        self._last_message_at = time.time()
        if not self._draining:
            self._take(topic, payload, retained, packet_id)

    def _take(self, topic: str, payload: bytes, retained: bool, mid: int) -> None:
        self.stats.received += 1
        self._admission.take(self._batch, topic, payload, retained, mid)

    def connected(self, ack: ConnAck) -> None:
        where = f"{self._broker.host}:{self._broker.port}"
        if ack.reason >= 0x80:
            why = reason_name("CONNACK", ack.reason)
            if ack.reason_string:
                why += f": {ack.reason_string}"
            if self._link != "down":
                self._note_down(f"refused: {why}")
            self._disconnect_reason = f"refused: {why}"
            return
        if self._link == "down" and self._link_lost_at:
            log.info(
                "the MQTT broker at %s is back after %.0fs (session resumed: %s)",
                where,
                time.monotonic() - self._link_lost_at,
                "yes" if ack.session_present else "no",
            )
        else:
            log.info(
                "connected to the MQTT broker at %s as %r (session resumed: %s)",
                where,
                self._client_id,
                "yes" if ack.session_present else "no",
            )
        if self._link != "never" and not ack.session_present:
            log.warning(
                "the broker had no session for %r: telemetry published while forewarn was "
                "away is lost (check session_expiry and the broker's persistence)",
                self._client_id,
            )
        self._link = "up"
        self._link_since = time.time()
        self._link_lost_at = 0.0
        if not self._store_down:
            self._backoff = 0.0
        self._connection.subscribe(self._filters)

    def subscribed(self, reasons: list[int]) -> None:
        for topic, reason in zip(self._filters, reasons, strict=False):
            if reason >= 0x80:
                log.error(
                    "the broker refused the subscription to %r: %s",
                    topic,
                    reason_name("SUBACK", reason),
                )
        self._subscribed.set()

    def server_disconnected(self, reason: int) -> None:
        self._disconnect_reason = f"broker said: {reason_name('DISCONNECT', reason)}"

    # -- the store ------------------------------------------------------------------

    def _commit(self) -> None:
        """Store the current batch in one transaction, then acknowledge its messages."""
        batch = self._batch
        counts = self._store.commit(batch)
        # Committed: from here on a crash only causes a redelivery that stores nothing.
        self._batch = Batch()
        if batch.acks and self._connection.is_open:
            self._connection.ack(batch.acks)
            self._connection.write()  # the rest goes with the next pump
        self.stats.add(counts)
        self._backoff = 0.0
        if self._store_down:
            log.info("the store is back; telemetry is being stored again")
            self._store_down = False


def _grow(backoff: float) -> float:
    return min(max(backoff * 2, 0.5), _MAX_BACKOFF)


def _describe(exc: Exception) -> str:
    """The driver's message without SQLAlchemy's statement and parameter dump."""
    original = getattr(exc, "orig", None)
    message = str(original if original is not None else exc)
    return message.strip().splitlines()[0] if message.strip() else type(exc).__name__
