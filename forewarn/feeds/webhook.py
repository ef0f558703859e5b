"""The webhook adapter: order records pushed to ``POST /webhooks/feeds/<name>``.

Mounted without console authentication; each request proves itself with the feed's
secret (the environment variable ``auth_env``), as the feed's ``webhook_auth`` says:

* ``bearer``: ``Authorization: Bearer <secret>``, compared in constant time;
* ``hmac``: ``X-Forewarn-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>``
  over the raw body, the scheme forewarn's own webhook channel signs with. The timestamp
  is inside the MAC, and one outside ``notifications.webhook_max_age`` is refused, so a
  captured request cannot be replayed later.

Missing credentials get 401, a wrong secret or signature and a stale timestamp 403, a body
that is not a JSON record or list of records 400; none of them writes anything. A good body
goes through the same intake as a file's rows (mapping, quarantine, idempotent upserts,
the delay rules) in one transaction, and the answer counts what happened: the same body
sent twice changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from forewarn.clock import Clock
from forewarn.config.schema import FeedSettings, Settings
from forewarn.feeds.intake import Intake, IntakeCount
from forewarn.feeds.readers import DocumentProblem, Numbered, Unreadable, read_records
from forewarn.feeds.watch import OrderWatch
from forewarn.store.feeds import Raced, transaction
from forewarn.ticketing.delays import DelayCases
from forewarn.web.bodies import read_body

log = logging.getLogger(__name__)

PATH = "/webhooks/feeds/{name}"
SIGNATURE_HEADER = "X-Forewarn-Signature"
MAX_BODY = 5_000_000


def feed_webhook_router(
    settings: Settings,
    sessions: sessionmaker[Session],
    clock: Clock,
    environ: Mapping[str, str],
) -> APIRouter:
    """The route for every ``kind: webhook`` feed of ``settings``; secrets from ``environ``."""
    feeds = {f.name: f for f in settings.feeds if f.kind == "webhook"}
    secrets: dict[str, str] = {}
    for feed in feeds.values():
        assert feed.auth_env is not None  # the schema requires it for webhooks
        secret = environ.get(feed.auth_env)
        if secret:
            secrets[feed.name] = secret
        else:
            log.warning(
                "feed %s: %s is not set; its webhook refuses every request",
                feed.name,
                feed.auth_env,
            )
    intake = Intake(settings, OrderWatch(settings.delays, DelayCases(settings.delays)))
    transit = _TransitRefresh(intake.watch, settings.delays.stats_interval)
    max_age = settings.notifications.webhook_max_age
    router = APIRouter(include_in_schema=False)

    @router.post(PATH)
    async def receive(name: str, request: Request) -> JSONResponse:
        feed = feeds.get(name)
        if feed is None:
            raise HTTPException(404, f"no webhook feed {name!r}")
        secret = secrets.get(name)
        if secret is None:
            raise HTTPException(503, f"feed {name!r} has no secret configured")
        body = await read_body(request, MAX_BODY)
        _authenticate(feed, secret, request, body, clock.now(), max_age)
        try:
            # The whole body must be readable before anything of it is stored.
            items = list(read_records(body, "json", feed.records_key))
        except DocumentProblem as exc:
            raise HTTPException(400, f"body: {exc}") from None
        count = await run_in_threadpool(_store, intake, transit, sessions, clock, feed, items)
        return JSONResponse(
            {
                "records": count.rows,
                "accepted": count.accepted,
                "unchanged": count.unchanged,
                "quarantined": count.quarantined,
                "problems": count.problems,
            }
        )

    return router


class _TransitRefresh:
    """The web process learns no transit times; it reads the leader's, now and then."""

    def __init__(self, watch: OrderWatch, every: timedelta) -> None:
        self._watch = watch
        self._every = min(every, timedelta(hours=1))
        self._loaded_at: datetime | None = None

    def refresh(self, session: Session, now: datetime) -> None:
        if self._loaded_at is None or now - self._loaded_at >= self._every:
            self._watch.load_transit(session)
            self._loaded_at = now


def _store(
    intake: Intake,
    transit: _TransitRefresh,
    sessions: sessionmaker[Session],
    clock: Clock,
    feed: FeedSettings,
    items: list[Numbered | Unreadable],
) -> IntakeCount:
    origin = f"webhook:{feed.name}"
    for attempt in (1, 2):
        now = clock.now()
        try:
            with transaction(sessions) as session:
                transit.refresh(session, now)
                return intake.take(session, feed, items, origin, now)
        except Raced:
            # A concurrent request (or the scheduler's sweep) stored the same order or
            # alert first; once more sees its rows and finds nothing, or little, to do.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _authenticate(
    feed: FeedSettings,
    secret: str,
    request: Request,
    body: bytes,
    now: datetime,
    max_age: timedelta,
) -> None:
    if feed.webhook_auth == "bearer":
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(token.strip().encode(), secret.encode()):
            log.warning("feed %s: refused a webhook with a wrong token", feed.name)
            raise HTTPException(403, "invalid token")
        return
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        raise HTTPException(401, f"missing {SIGNATURE_HEADER} header")
    parts = dict(p.strip().partition("=")[::2] for p in signature.split(","))
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    # Headers arrive as Latin-1 text: only ASCII digits and hex are ours. int() would take
    # other scripts' digits, and compare_digest raises on non-ASCII str: compare bytes.
    if not (timestamp.isascii() and timestamp.isdecimal()) or len(timestamp) > 12:
        raise HTTPException(403, "invalid signature timestamp")
    try:
        sent = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        raise HTTPException(403, "invalid signature timestamp") from None
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest().encode(), given.encode("utf-8")):
        log.warning("feed %s: refused a webhook with a bad signature", feed.name)
        raise HTTPException(403, "invalid signature")
    if abs(now - sent) > max_age:
        log.warning("feed %s: refused a webhook with a stale timestamp", feed.name)
        raise HTTPException(403, "stale timestamp")
