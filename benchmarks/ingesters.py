"""forewarn's ingest as separate processes (1..N) on one MQTT 5 shared subscription.

Each child builds the same ingester ``forewarn run --role ingest`` builds (gate, store,
the monitors' hook inside each batch's transaction, PUBACK after commit), waits for the
parent's start signal, and reports how many messages it has committed. The parent
times from the signal until the children together committed every message, and adds up
their CPU (each child's ``process_time``: all its threads).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

from streams import database_cpu


@dataclass(frozen=True)
class IngestRun:
    seconds: float
    cpu_seconds: float
    """Sum over the ingest processes."""
    database_cpu_seconds: float
    """PostgreSQL backends serving them (0 on SQLite: it runs inside the processes)."""
    per_process: tuple[int, ...]
    """Messages committed by each process."""


def _child(
    config: dict[str, Any],
    url: str,
    client_id: str,
    ready: Event,
    go: Event,
    done: Event,
    committed: Synchronized[int],
    cpu: Synchronized[float],
    hook: bool,
) -> None:
    from forewarn.alerting import Monitors
    from forewarn.clock import SystemClock
    from forewarn.config.schema import Settings
    from forewarn.store.engine import make_engine, make_sessionmaker
    from forewarn.telemetry.ingest import Ingester

    settings = Settings.model_validate(config)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    monitors = Monitors(settings, sessions, _Quiet())
    monitors.load()
    ingester = Ingester(
        settings.broker,
        settings.ingest,
        password=None,
        sessions=sessions,
        clock=SystemClock(),
        on_batch=monitors.on_samples if hook else None,
        client_id=client_id,
    )
    ready.set()
    go.wait()
    started = time.process_time()
    ingester.start()
    while not done.wait(0.01):
        committed.value = ingester.stats.snapshot().committed
    ingester.stop()
    committed.value = ingester.stats.snapshot().committed
    cpu.value = time.process_time() - started
    engine.dispose()


class _Quiet:
    """A monitors sink that opens no tickets (the benchmark's values never breach)."""

    def alert_fired(self, *_: object) -> None:
        pass

    def alert_escalated(self, *_: object) -> None:
        pass

    def alert_resolved(self, *_: object) -> None:
        pass


def run(
    config: dict[str, Any],
    url: str,
    client_ids: Sequence[str],
    messages: int,
    *,
    hook: bool = True,
) -> IngestRun:
    """Run one ingest process per client id until ``messages`` are committed in all;
    ``hook``: evaluate the monitors in each batch (the product) or store only."""
    context = multiprocessing.get_context("spawn")
    go, done = context.Event(), context.Event()
    readies = [context.Event() for _ in client_ids]
    counts = [context.Value("q", 0) for _ in client_ids]
    cpus = [context.Value("d", 0.0) for _ in client_ids]
    children = [
        context.Process(
            target=_child,
            args=(config, url, client_id, ready, go, done, count, cpu, hook),
            daemon=True,
        )
        for client_id, ready, count, cpu in zip(client_ids, readies, counts, cpus, strict=True)
    ]
    for child in children:
        child.start()
    try:
        for ready, child in zip(readies, children, strict=True):
            while not ready.wait(0.2):
                if not child.is_alive():
                    raise RuntimeError("an ingest process died while starting")
        database_before = database_cpu(url)
        started = time.perf_counter()
        go.set()
        deadline = time.monotonic() + 900
        while sum(count.value for count in counts) < messages:
            if time.monotonic() > deadline or not all(c.is_alive() for c in children):
                raise RuntimeError(f"committed {[c.value for c in counts]} of {messages} messages")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        database_after = database_cpu(url)
        done.set()
        for child in children:
            child.join(60)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
    database_seconds = sum(
        cpu - database_before.get(pid, 0.0) for pid, cpu in database_after.items()
    )
    return IngestRun(
        elapsed,
        sum(cpu.value for cpu in cpus),
        database_seconds,
        tuple(count.value for count in counts),
    )
