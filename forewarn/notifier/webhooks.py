"""The providers' webhooks: Twilio status callbacks and inbound SMS, SendGrid events.

Mounted without console authentication; each request proves itself instead:

* Twilio signs every callback with the account's auth token over the exact public URL
  it called plus the form fields (``X-Twilio-Signature``, checked with the SDK's
  ``RequestValidator``). forewarn sits behind a proxy, so the URL is rebuilt from the
  configured ``web.public_url``, not from what the proxy forwarded.
* SendGrid signs ``timestamp + raw body`` with ECDSA (``EventWebhook.verify_signature``);
  the SDK does not look at the timestamp's age, so a captured request could be replayed
  for ever: a timestamp outside ``notifications.webhook_max_age`` is refused here.

Forged, unsigned or stale requests get 403 and touch nothing. The handlers parse, then run
the domain code (:mod:`receipts`, :mod:`inbound`) in one transaction per request.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, Response
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from forewarn.clock import Clock
from forewarn.config.loading import Config
from forewarn.config.schema import NotificationSettings
from forewarn.notifier.inbound import InboundSms, TechnicianCommands, handle_sms
from forewarn.notifier.privacy import mask_address, scrub
from forewarn.notifier.receipts import (
    SENDGRID_OPT_OUTS,
    SENDGRID_STATUS,
    TWILIO_STATUS,
    DuplicateEvent,
    ProviderReport,
    apply_receipt,
)
from forewarn.notifier.render import Renderer
from forewarn.web.bodies import read_body

log = logging.getLogger(__name__)

TWILIO_STATUS_PATH = "/webhooks/twilio/status"
TWILIO_INBOUND_PATH = "/webhooks/twilio/inbound"
SENDGRID_EVENTS_PATH = "/webhooks/sendgrid/events"
MAX_BODY = 1_000_000
"""SendGrid batches events (up to about 1 000 per request); anything larger is not them."""


@dataclass(frozen=True)
class WebhookKeys:
    """What the webhooks verify with; a provider without its key has no webhook."""

    public_url: str | None
    """``web.public_url``: the base URL Twilio was told to call."""
    twilio_auth_token: str | None
    sendgrid_public_key: str | None
    """The event webhook's verification key, base64 DER as SendGrid shows it."""


def webhook_router(
    sessions: sessionmaker[Session],
    clock: Clock,
    settings: NotificationSettings,
    keys: WebhookKeys,
    renderer: Renderer,
    commands: TechnicianCommands | None = None,
) -> APIRouter:
    """The three webhook routes over the store behind ``sessions``."""
    router = APIRouter(include_in_schema=False)
    twilio = (
        RequestValidator(keys.twilio_auth_token)
        if keys.twilio_auth_token and keys.public_url
        else None
    )
    sendgrid = EventWebhook(keys.sendgrid_public_key) if keys.sendgrid_public_key else None
    base = (keys.public_url or "").rstrip("/")

    async def twilio_form(request: Request) -> dict[str, str]:
        if twilio is None:
            raise HTTPException(404, "Twilio webhooks are not configured")
        body = await read_body(request, MAX_BODY)
        try:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise HTTPException(403, "invalid signature") from None
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not twilio.validate(url, params, signature):
            log.warning("refused a Twilio webhook with a bad signature for %s", request.url.path)
            raise HTTPException(403, "invalid signature")
        return params

    def transaction(work: Callable[[Session, datetime], Any]) -> Any:
        now = clock.now()
        try:
            with sessions.begin() as session:
                return work(session, now)
        except DuplicateEvent:
            return None

    @router.post(TWILIO_STATUS_PATH)
    async def twilio_status(request: Request) -> Response:
        params = await twilio_form(request)
        report = _twilio_report(params, request.query_params.get("notification"))
        outcome = await run_in_threadpool(
            transaction, lambda session, now: apply_receipt(session, report, now)
        )
        log.debug("twilio status %s for %s: %s", report.status, report.event_id, outcome)
        return Response(status_code=204)

    @router.post(TWILIO_INBOUND_PATH)
    async def twilio_inbound(request: Request) -> Response:
        params = await twilio_form(request)
        message = InboundSms(
            message_sid=params.get("MessageSid") or params.get("SmsSid") or "",
            from_=params.get("From", ""),
            to=params.get("To", ""),
            body=params.get("Body", ""),
        )
        if not message.message_sid or not message.from_:
            raise HTTPException(400, "MessageSid and From are required")
        reply = await run_in_threadpool(
            transaction,
            lambda session, now: handle_sms(
                session, message, now, renderer=renderer, settings=settings, commands=commands
            ),
        )
        twiml = MessagingResponse()
        if reply:
            twiml.message(reply)
        return Response(str(twiml), media_type="application/xml")

    @router.post(SENDGRID_EVENTS_PATH)
    async def sendgrid_events(request: Request) -> Response:
        if sendgrid is None:
            raise HTTPException(404, "SendGrid event webhook is not configured")
        body = await read_body(request, MAX_BODY)
        signature = request.headers.get(EventWebhookHeader.SIGNATURE, "")
        timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP, "")
        if not _fresh(timestamp, clock.now(), settings.webhook_max_age.total_seconds()):
            log.warning("refused a SendGrid event webhook with a stale timestamp")
            raise HTTPException(403, "stale or missing timestamp")
        try:
            valid = bool(sendgrid.verify_signature(body.decode("utf-8"), signature, timestamp))
        except (UnicodeDecodeError, binascii.Error, ValueError):
            valid = False
        if not valid:
            log.warning("refused a SendGrid event webhook with a bad signature")
            raise HTTPException(403, "invalid signature")
        try:
            events = json.loads(body)
        except ValueError:
            raise HTTPException(400, "body is not JSON") from None
        if not isinstance(events, list):
            raise HTTPException(400, "expected a JSON array of events")
        reports = [r for r in (_sendgrid_report(e) for e in events) if r is not None]

        def apply_all(session: Session, now: datetime) -> None:
            for report in reports:
                # One savepoint per event: a duplicate among them spoils nothing else.
                try:
                    with session.begin_nested():
                        apply_receipt(session, report, now)
                except DuplicateEvent:
                    continue

        await run_in_threadpool(transaction, apply_all)
        return Response(status_code=204)

    return router


def _fresh(timestamp: str, now: datetime, max_age: float) -> bool:
    try:
        sent = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        return False
    return abs((now - sent).total_seconds()) <= max_age


def _twilio_report(params: dict[str, str], notification: str | None) -> ProviderReport:
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    code = params.get("ErrorCode") or None
    new = TWILIO_STATUS.get(status)
    payload = {k: (mask_address(v) if k in ("From", "To") else v) for k, v in params.items()}
    return ProviderReport(
        provider="twilio",
        event_id=f"{sid}:{status}",
        status=status,
        new_status=new,
        notification_id=int(notification) if notification and notification.isdigit() else None,
        provider_message_id=sid or None,
        error_code=code,
        payload=payload,
    )


def _sendgrid_report(event: Any) -> ProviderReport | None:
    if not isinstance(event, dict):
        return None
    kind = str(event.get("event", ""))
    event_id = event.get("sg_event_id")
    if not event_id:
        return None
    raw_id = event.get("notification_id")
    notification = int(raw_id) if isinstance(raw_id, str | int) and str(raw_id).isdigit() else None
    message_id = str(event.get("sg_message_id", "")).split(".", 1)[0] or None
    payload = {
        k: (mask_address(str(v)) if k == "email" else scrub(str(v)) if k == "reason" else v)
        for k, v in event.items()
    }
    return ProviderReport(
        provider="sendgrid",
        event_id=str(event_id),
        status=kind,
        new_status=SENDGRID_STATUS.get(kind),
        notification_id=notification,
        provider_message_id=message_id,
        error_code=str(event["status"]) if event.get("status") else None,
        opt_out=kind in SENDGRID_OPT_OUTS,
        payload=payload,
    )


def configured_router(
    config: Config,
    sessions: sessionmaker[Session],
    clock: Clock,
    commands: TechnicianCommands | None = None,
) -> APIRouter:
    """The webhooks as ``forewarn run`` mounts them, keys from the config's environment;
    ``commands`` handles technicians' SMS replies (ticketing)."""
    settings = config.settings
    return webhook_router(
        sessions,
        clock,
        settings.notifications,
        WebhookKeys(
            public_url=settings.web.public_url,
            twilio_auth_token=config.secrets.twilio_auth_token,
            sendgrid_public_key=config.secrets.sendgrid_webhook_public_key,
        ),
        Renderer(default_locale=settings.notifications.default_locale),
        commands,
    )
