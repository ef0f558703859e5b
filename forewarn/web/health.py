"""``/healthz``: is the process up and can it reach its database? No token needed."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from forewarn.web.console import Console

log = logging.getLogger(__name__)


def health_router(console: Console) -> APIRouter:
    """``GET /healthz``: 200 ``{"status": "ok", "database": "ok"}``, or 503 with the reason."""
    router = APIRouter(tags=["health"])
    # Log when the database goes away and when it is back, not on every probe.
    last_ok: list[bool] = [True]

    @router.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            with console.sessions() as session:
                session.execute(text("SELECT 1")).scalar_one()
        except SQLAlchemyError as exc:
            if last_ok[0]:
                log.error("health check: database unreachable: %s", type(exc).__name__)
            last_ok[0] = False
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, status_code=503
            )
        if not last_ok[0]:
            log.info("health check: database reachable again")
        last_ok[0] = True
        return JSONResponse({"status": "ok", "database": "ok"})

    return router
