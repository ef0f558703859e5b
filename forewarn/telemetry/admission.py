"""A message admitted into the batch: the gate with the state it needs in one process.

The gate (:mod:`forewarn.telemetry.payload`) is pure; this holds what it is given each
time: the ids of the known devices (re-read from the store every ``refresh`` seconds, so a
device added to the config is accepted without a restart) and the metric names each device
has used (the per-device cap counts from the process start). A message becomes samples in
the batch, or a quarantine row with the reason; either way its packet id is kept for the
PUBACK after the commit.

It also remembers each device's last status code. A code that differs from it (a fault
appearing, or clearing) marks the batch urgent: the ingester commits it as soon as the
socket holds nothing more, so event-driven fault rules and their notices do not wait for
``batch_interval``. A fleet that reports "OK" in every message changes nothing; a storm
of changes only shortens batches down to what one commit takes.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.clock import Clock
from forewarn.config.schema import IngestSettings, PayloadMapping
from forewarn.store.models import Base, Device
from forewarn.telemetry.batch import Batch
from forewarn.telemetry.payload import MetricNames, parse_message

log = logging.getLogger("forewarn.telemetry.ingest")

_DEVICES = Base.metadata.tables[Device.__tablename__]


class Admission:
    """The gate as one ingest process runs it; see the module docstring."""

    def __init__(
        self,
        mapping: PayloadMapping,
        limits: IngestSettings,
        sessions: sessionmaker[Session],
        clock: Clock,
        refresh: float,
    ) -> None:
        self._mapping = mapping
        self._limits = limits
        self._sessions = sessions
        self._clock = clock
        self._refresh_every = refresh
        self._known: frozenset[str] | None = None
        self._loaded_at = -float("inf")
        self._metric_names = MetricNames(limits.max_metrics_per_device)
        self._codes: dict[str, str] = {}
        self._error_logged = False

    @property
    def loaded(self) -> bool:
        """Whether the known devices were read at least once (or are not needed)."""
        return self._known is not None or self._limits.unknown_devices != "quarantine"

    def refresh_due(self) -> bool:
        return time.monotonic() - self._loaded_at >= self._refresh_every

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the known devices if due (or ``force``); raises SQLAlchemyError."""
        if self._limits.unknown_devices != "quarantine":
            self._known = None
            return
        if not force and not self.refresh_due():
            return
        self._loaded_at = time.monotonic()  # a failed refresh waits its turn too
        with self._sessions() as session:
            self._known = frozenset(session.execute(select(_DEVICES.c.id)).scalars())

    def take(self, batch: Batch, topic: str, payload: bytes, retained: bool, mid: int) -> None:
        """Gate one message into ``batch`` (``mid`` 0: nothing to acknowledge)."""
        if not batch.messages:
            batch.opened = time.monotonic()
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
            if not self._error_logged:
                log.exception("the payload gate failed; quarantining such messages")
                self._error_logged = True
            rejection = f"internal error in the payload gate: {type(exc).__name__}"
        if rejection is None:
            samples = parsed.samples
            batch.samples.extend(samples)
            batch.accepted += 1
            code = samples[-1].code  # the status sample, when there is one, comes last
            if code is not None and self._codes.get(samples[-1].device_id) != code:
                self._codes[samples[-1].device_id] = code
                batch.urgent = True
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
