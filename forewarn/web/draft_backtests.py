"""Backtests of the rule editor's drafts, run in this process one at a time.

The editor's "Backtest" button starts one (:meth:`DraftBacktests.start`) and polls it; the
engine is :func:`forewarn.backtest.engine.run_backtest`, the same as ``forewarn backtest``.
A finished result is kept (the last :data:`KEPT`) with the digest of the draft it judged,
so the save that follows is held to the budget guard for exactly that draft.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from forewarn.config import Config
from forewarn.config.rules import rules_data
from forewarn.config.schema import MonitorSettings

log = logging.getLogger(__name__)

KEPT = 20
MAX_PERIOD = timedelta(days=31)


def draft_digest(monitors: tuple[MonitorSettings, ...]) -> str:
    """Which draft a backtest judged (the rules as data, hashed)."""
    text = json.dumps(rules_data(monitors), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Job:
    """One draft's backtest, as the editor polls it."""

    id: str
    digest: str
    status: Literal["queued", "running", "done", "failed"] = "queued"
    phase: str = ""
    progress: float = 0.0
    result: dict[str, Any] | None = None
    error: str = ""
    started_at: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class DraftBacktests:
    """A queue of one worker: a second backtest waits for the first (the machine's CPU is
    the limit, not the number of people pressing the button)."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def start(
        self,
        config: Config,
        draft: tuple[MonitorSettings, ...],
        current: tuple[MonitorSettings, ...],
        *,
        since: datetime,
        until: datetime,
        scope: str,
    ) -> Job:
        """Queue a backtest of ``draft`` against ``current`` over ``[since, until)``.
        Raises ``ValueError`` (from the engine) for a scope that names nothing."""
        from forewarn.backtest.engine import Request, Scope

        request = Request(
            draft=draft, since=since, until=until, scope=Scope.parse(scope), current=current
        )
        request.scope.devices(config.settings)  # a scope naming nothing fails now, not later
        job = Job(secrets.token_hex(8), draft_digest(draft))
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEPT:
                self._jobs.popitem(last=False)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="draft-backtest")
            self._pool.submit(self._run, job, config, request)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, config: Config, request: Any) -> None:
        from forewarn.backtest.engine import run_backtest

        def progress(phase: str, share: float) -> None:
            with job.lock:
                job.phase, job.progress = phase, max(job.progress, min(share, 1.0))

        with job.lock:
            job.status = "running"
        try:
            result = run_backtest(config, request, progress=progress).as_dict()
        except Exception as problem:  # stored on the job: the editor shows it
            log.exception("draft backtest %s failed", job.id)
            with job.lock:
                job.status, job.error = "failed", f"{type(problem).__name__}: {problem}"[:300]
            return
        with job.lock:
            job.status, job.result, job.progress = "done", result, 1.0
