"""The providers' webhooks, routed generically to the channel modules that own them.

Mounted without console authentication; each request proves itself instead. Each channel
module (``channels/twilio_sms.py``, ``channels/sendgrid_email.py``) verifies its provider's
signature and parses its receipts and inbound messages; this module only builds the
:class:`~forewarn.notifier.channels.SignedRequest` (with the public URL the provider
called, rebuilt from ``web.public_url`` because forewarn sits behind a proxy), answers
:class:`~forewarn.notifier.channels.Refused` with its status (403 forged, unsigned or
stale; 400 a field forewarn cannot store), and runs the domain code (:mod:`receipts`,
:mod:`inbound`) in one transaction per request, one savepoint per receipt: an event of a
batch that cannot be placed or stored is kept with its reason and the others are stored.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from forewarn.clock import Clock
from forewarn.config.loading import Config
from forewarn.config.schema import CareSettings, NotificationSettings
from forewarn.notifier.channels import (
    InboundWebhook,
    ProviderReport,
    ReceiptWebhook,
    Refused,
    SignedRequest,
    Unplaced,
)
from forewarn.notifier.channels.sendgrid_email import EVENTS_PATH, SendGridEventWebhook
from forewarn.notifier.channels.twilio_sms import (
    INBOUND_PATH,
    STATUS_PATH,
    TwilioInboundWebhook,
    TwilioStatusWebhook,
)
from forewarn.notifier.inbound import TechnicianCommands, handle_sms
from forewarn.notifier.receipts import DuplicateEvent, apply_receipt, record_unplaced
from forewarn.notifier.render import Renderer
from forewarn.web.bodies import read_body

log = logging.getLogger(__name__)

TWILIO_STATUS_PATH = STATUS_PATH
TWILIO_INBOUND_PATH = INBOUND_PATH
SENDGRID_EVENTS_PATH = EVENTS_PATH
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


def provider_webhooks(
    keys: WebhookKeys, settings: NotificationSettings
) -> tuple[list[ReceiptWebhook], list[InboundWebhook]]:
    """The receipt and inbound webhooks of every provider whose key is configured."""
    receipts: list[ReceiptWebhook] = []
    inbound: list[InboundWebhook] = []
    if keys.twilio_auth_token and keys.public_url:
        receipts.append(TwilioStatusWebhook(keys.twilio_auth_token))
        inbound.append(TwilioInboundWebhook(keys.twilio_auth_token))
    if keys.sendgrid_public_key:
        receipts.append(SendGridEventWebhook(keys.sendgrid_public_key, settings.webhook_max_age))
    return receipts, inbound


def webhook_router(
    sessions: sessionmaker[Session],
    clock: Clock,
    settings: NotificationSettings,
    keys: WebhookKeys,
    renderer: Renderer,
    commands: TechnicianCommands | None = None,
    rng: random.Random | None = None,
    care: CareSettings | None = None,
) -> APIRouter:
    """A route per configured provider webhook over the store behind ``sessions``;
    ``care`` routes customers' free text to conversation queues (default: built-in)."""
    router = APIRouter(include_in_schema=False)
    base = (keys.public_url or "").rstrip("/")
    jitter = rng or random.Random()  # noqa: S311 - retry jitter, not security
    receipt_hooks, inbound_hooks = provider_webhooks(keys, settings)

    async def signed(request: Request, hook: ReceiptWebhook | InboundWebhook) -> SignedRequest:
        body = await read_body(request, MAX_BODY)
        query = request.url.query
        incoming = SignedRequest(
            url=base + request.url.path + (f"?{query}" if query else ""),
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        try:
            hook.verify(incoming, clock.now())
        except Refused as refused:
            log.warning("refused a %s webhook for %s: %s", hook.provider, request.url.path, refused)
            raise HTTPException(refused.status, refused.reason) from None
        return incoming

    def transaction(work: Callable[[Session, datetime], Any]) -> Any:
        now = clock.now()
        try:
            with sessions.begin() as session:
                return work(session, now)
        except DuplicateEvent:
            return None

    def store_receipts(items: Sequence[ProviderReport | Unplaced]) -> Callable[..., None]:
        def work(session: Session, now: datetime) -> None:
            for item in items:
                if isinstance(item, Unplaced):
                    record_unplaced(session, item, now)
                    continue
                # One savepoint per event: a duplicate or an unstorable event among them
                # spoils nothing else.
                try:
                    with session.begin_nested():
                        apply_receipt(session, item, now, settings=settings, rng=jitter)
                except DuplicateEvent:
                    continue
                except SQLAlchemyError as exc:
                    reason = f"could not be stored ({type(exc).__name__})"
                    excerpt = f"{item.provider} {item.status} event {item.event_id[:80]}"
                    with session.begin_nested():
                        record_unplaced(
                            session,
                            Unplaced(
                                item.provider, f"unstored:{item.event_id}"[:200], reason, excerpt
                            ),
                            now,
                        )

        return work

    def receipt_route(hook: ReceiptWebhook) -> Callable[[Request], Awaitable[Response]]:
        async def receive(request: Request) -> Response:
            incoming = await signed(request, hook)
            try:
                items = hook.parse(incoming)
            except Refused as refused:
                raise HTTPException(refused.status, refused.reason) from None
            await run_in_threadpool(transaction, store_receipts(items))
            return Response(status_code=204)

        return receive

    def inbound_route(hook: InboundWebhook) -> Callable[[Request], Awaitable[Response]]:
        async def receive(request: Request) -> Response:
            incoming = await signed(request, hook)
            try:
                message = hook.parse(incoming)
            except Refused as refused:
                raise HTTPException(refused.status, refused.reason) from None
            reply = await run_in_threadpool(
                transaction,
                lambda session, now: handle_sms(
                    session,
                    message,
                    now,
                    renderer=renderer,
                    settings=settings,
                    care=care,
                    commands=commands,
                ),
            )
            return Response(hook.reply(reply), media_type=hook.media_type)

        return receive

    for receipt_hook in receipt_hooks:
        router.add_api_route(receipt_hook.path, receipt_route(receipt_hook), methods=["POST"])
    for inbound_hook in inbound_hooks:
        router.add_api_route(inbound_hook.path, inbound_route(inbound_hook), methods=["POST"])
    return router


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
        care=settings.care,
    )
