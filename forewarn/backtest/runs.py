"""Backtests started from the console or the API: run one at a time in the background.

A web process keeps the last ``backtest.keep_results`` runs in memory (a backtest is a
question asked now, not a record: its draft and result are not stored). Runs wait in a
queue and go one at a time on one worker thread, so two ops pressing "run" do not make
the web process fight itself for the CPU.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from forewarn.backtest.engine import Backtest

log = logging.getLogger(__name__)

Job = Callable[[Callable[[str, float], None]], Backtest]
"""Runs the backtest, telling its progress."""


@dataclass
class Run:
    """One backtest as the console and the API see it."""

    id: str
    started_by: str
    queued_at: datetime
    scope: str
    status: str = "queued"
    """queued, running, done or failed."""
    phase: str = "queued"
    share: float = 0.0
    result: dict[str, Any] | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "id": self.id,
                "status": self.status,
                "phase": self.phase,
                "progress": round(self.share, 3),
                "scope": self.scope,
                "started_by": self.started_by,
                "queued_at": self.queued_at.isoformat(),
                "error": self.error,
                "result": self.result,
            }


class Runs:
    """The process's backtests: :meth:`start` queues one, :meth:`get` reads it."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Run, Job]] = queue.SimpleQueue()
        # A daemon thread: stopping the service does not wait for a backtest to finish.
        self._worker = threading.Thread(target=self._work, name="backtest", daemon=True)
        self._worker.start()

    def start(self, job: Job, *, by: str, scope: str, now: datetime) -> Run:
        run = Run(secrets.token_hex(8), by, now, scope)
        with self._lock:
            self._runs[run.id] = run
            while len(self._runs) > self._keep:
                self._runs.popitem(last=False)
        self._queue.put((run, job))
        return run

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def _work(self) -> None:
        while True:
            run, job = self._queue.get()
            self._run(run, job)

    @staticmethod
    def _run(run: Run, job: Job) -> None:
        def tell(phase: str, share: float) -> None:
            with run.lock:
                run.phase, run.share = phase, max(run.share, share)

        with run.lock:
            run.status, run.phase = "running", "history"
        try:
            result = job(tell).as_dict()
        except Exception as exc:
            log.exception("backtest %s failed", run.id)
            with run.lock:
                run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        with run.lock:
            run.status, run.phase, run.share, run.result = "done", "done", 1.0, result
