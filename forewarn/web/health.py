"""``/healthz``: is the process up and can it reach its database? No token needed."""

from __future__ import annotations

import logging
import threading

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from forewarn.web.dependencies import ConsoleDep

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


class DatabaseWatch:
    """Logs when the database becomes unreachable and when it is back, not every probe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ok = True

    def observe(self, ok: bool, problem: str = "") -> None:
        """Record one probe's outcome; logs only when it differs from the last."""
        with self._lock:
            changed, self._ok = ok != self._ok, ok
        if changed and ok:
            log.info("health check: database reachable again")
        elif changed:
            log.error("health check: database unreachable: %s", problem)


@router.get("/healthz")
def healthz(console: ConsoleDep) -> JSONResponse:
    """200 ``{"status": "ok", "database": "ok"}`` when ``SELECT 1`` works, else 503."""
    try:
        with console.sessions() as session:
            session.execute(text("SELECT 1")).scalar_one()
    except SQLAlchemyError as exc:
        # The type only: driver messages can name hosts and users.
        console.database_watch.observe(False, type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    console.database_watch.observe(True)
    return JSONResponse({"status": "ok", "database": "ok"})
