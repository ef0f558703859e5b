"""Local stand-ins for Twilio and SendGrid that the real SDKs can talk to.

There is no internet here, so tests and benchmarks point ``twilio.rest.Client`` (through
:class:`LocalTwilioHttpClient`) and ``SendGridAPIClient(host=...)`` at these servers. They
speak the providers' wire formats: the same paths, authentication, status codes, error
bodies and headers, and they sign webhooks the way the providers do, so the SDKs' own
validators accept them. Scripted failures (``fail_next``, ``reject_number``,
``reject_address``, ``time_out_next``) and outages (``go_down`` / ``come_back``) make
rejections, 503/429 storms and timeouts reproducible; ``call_back`` makes the fake send
its signed delivery callbacks itself, before its own HTTP answer (the receipt overtakes
the sender's commit) or later, when the test says (``flush_callbacks``).

Stdlib only (plus the SDKs' own signing helpers and ``cryptography``, a SendGrid
dependency). Every fake is a context manager that joins its threads and closes its
sockets, because the test suite turns ResourceWarnings into errors.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import json
import math
import re
import secrets
import select
import socket
import socketserver
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import SIGNATURE_HEADER as TWILIO_SIGNATURE_HEADER
from twilio.request_validator import RequestValidator

__all__ = [
    "SENDGRID_SIGNATURE_HEADER",
    "SENDGRID_TIMESTAMP_HEADER",
    "TWILIO_SIGNATURE_HEADER",
    "FakeSendGrid",
    "FakeSmtp",
    "FakeTwilio",
    "FakeWebhookReceiver",
    "LocalTwilioHttpClient",
    "SentEmail",
    "SentSms",
    "UnresponsiveServer",
]

SENDGRID_SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE
SENDGRID_TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: object, headers: Mapping[str, str] | None = None) -> Self:
        return cls(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no keep-alive socket outlives a test.
    protocol_version = "HTTP/1.0"
    server: _Server

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = _Request(
            method=self.command,
            path=self.path,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
        )
        reply = self.server.respond(request)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left (a scripted stall): nobody to answer

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test output is not the place for an access log


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads, joined by server_close(): nothing outlives close().
    daemon_threads = False
    block_on_close = True

    def __init__(self, respond: Callable[[_Request], _Reply]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond = respond


class _FakeProvider:
    """Runs ``_respond`` behind a local HTTP server in a background thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._down: _Failure | None = None
        self._plan: _CallbackPlan | None = None
        self._pending: list[Callable[[], object]] = []

    # -- outages and callbacks, for every provider

    def go_down(self, status: int = 503, *, retry_after: float | None = None) -> None:
        """Answer every request with ``status`` (and ``Retry-After``) until :meth:`come_back`."""
        with self._lock:
            self._down = _Failure(
                status=status,
                retry_after=None if retry_after is None else _header_number(retry_after),
            )

    def come_back(self) -> None:
        with self._lock:
            self._down = None

    def call_back(
        self,
        post: Callable[..., object],
        statuses: Sequence[str | tuple[str, Mapping[str, str]]] = ("delivered",),
        *,
        before_reply: bool = False,
    ) -> None:
        """Send signed delivery callbacks for every message accepted from now on.

        ``post`` delivers one callback (the test's HTTP client); each status may carry
        extra fields (``("undelivered", {"ErrorCode": "30003"})``). With ``before_reply``
        they are posted before the fake answers the send request, as when the provider's
        callback overtakes the sender's commit; otherwise they wait for
        :meth:`flush_callbacks`.
        """
        plan = tuple((s, {}) if isinstance(s, str) else (s[0], s[1]) for s in statuses)
        with self._lock:
            self._plan = _CallbackPlan(post, plan, before_reply)

    def flush_callbacks(self) -> int:
        """Post the callbacks held back so far; returns how many."""
        with self._lock:
            pending, self._pending = self._pending, []
        for callback in pending:
            callback()
        return len(pending)

    def _outage(self) -> _Failure | None:
        with self._lock:
            return self._down

    def _stall(self, seconds: float) -> None:
        self._closing.wait(seconds)  # close() cuts it short: no thread outlives a test

    def _schedule(self, callbacks: list[Callable[[], object]], before_reply: bool) -> None:
        if before_reply:
            for callback in callbacks:
                callback()
        else:
            with self._lock:
                self._pending.extend(callbacks)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._closing.clear()
        self._server = _Server(self._respond)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-server",
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._closing.set()
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _respond(self, request: _Request) -> _Reply:
        raise NotImplementedError


@dataclass(frozen=True)
class _Failure:
    status: int
    code: int | None = None
    message: str | None = None
    retry_after: str | None = None
    rate_limit_reset: int | None = None
    stall: float | None = None
    """Seconds to hold the answer back: longer than the client's timeout, it times out."""
    accept: bool = False
    """With ``stall``: take the message first (the client times out after acceptance)."""


@dataclass(frozen=True)
class _CallbackPlan:
    post: Callable[..., object]
    statuses: tuple[tuple[str, Mapping[str, str]], ...]
    before_reply: bool


class _Bucket:
    """A provider's own meter on one sender: ``per_second`` on average, one second's
    worth at once, on the fake's clock (the test's)."""

    def __init__(self, per_second: float, clock: Callable[[], datetime]) -> None:
        self._lock = threading.Lock()
        self._per_second = per_second
        self._burst = max(1.0, per_second)
        self._clock = clock
        self._tokens = self._burst
        self._at = clock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, (now - self._at).total_seconds())
            self._tokens = min(self._burst, self._tokens + elapsed * self._per_second)
            self._at = max(now, self._at)
            if self._tokens < 1 - 1e-9:
                return False
            self._tokens -= 1
            return True


class _Script:
    """The next N scripted failures, shared by the server threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[_Failure] = deque()

    def add(self, n: int, failure: _Failure) -> None:
        with self._lock:
            self._queue.extend([failure] * n)

    def pop(self) -> _Failure | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None


# --------------------------------------------------------------------------------- Twilio

_TWILIO_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_TWILIO_DEFAULT_ERRORS = {
    400: (21211, "Invalid 'To' Phone Number"),
    401: (20003, "Authenticate"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}
# What Twilio says when it refuses a recipient, quoting the number as it does.
_TWILIO_REJECTIONS = {
    21211: "The 'To' number {to} is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by "
    "the 'To' number: {to}.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' "
    "phone number: {from_} via SMS.",
    21614: "'To' number {to} is not a valid mobile number",
}
# GSM 03.38: the basic set costs one septet, the extension set two. Anything else turns
# the whole message into UCS-2, 70 characters per segment instead of 160.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = set("^{}\\[~]|€\f")


def sms_segments(body: str) -> int:
    """How many SMS segments Twilio bills for ``body`` (GSM-7 or UCS-2)."""
    if all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in body):
        units = sum(2 if char in _GSM_EXTENSION else 1 for char in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


@dataclass(frozen=True)
class SentSms:
    """A message the fake accepted, as Twilio would have stored it."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    num_segments: int
    params: Mapping[str, str]
    """Every form field the SDK posted."""


class FakeTwilio(_FakeProvider):
    """Twilio's ``POST /2010-04-01/Accounts/{sid}/Messages.json``, with HTTP Basic auth.

    ``senders``, when given, are the account's numbers: any other ``From`` gets 21606.
    ``rate_limits`` meters ``From`` numbers (messages per second, one second's worth at
    once, on ``clock``): a faster request gets 429 with error 20429, as Twilio answers.
    """

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        senders: set[str] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        rate_limits: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self._limits = {
            number: _Bucket(per_second, clock) for number, per_second in (rate_limits or {}).items()
        }
        self.throttled = 0
        """Requests answered 429 (20429) because their ``From`` number went too fast."""
        self.account_sid = account_sid or f"AC{secrets.token_hex(16)}"
        self.auth_token = auth_token or secrets.token_hex(16)
        self.senders = senders
        self._clock = clock
        self._script = _Script()
        self._rejected: dict[str, tuple[int, int]] = {}
        self._messages: list[SentSms] = []
        self.requests = 0
        """Every request that reached the server, accepted or not."""

    # -- scripting

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 503,
        code: int | None = None,
        retry_after: float | str | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (and Twilio's error body)."""
        self._script.add(
            n,
            _Failure(
                status=status,
                code=code,
                retry_after=None if retry_after is None else _header_number(retry_after),
            ),
        )

    def time_out_next(self, n: int = 1, *, seconds: float = 2.0, accept: bool = False) -> None:
        """Hold the answer to the next ``n`` requests back for ``seconds`` (make it longer
        than the client's timeout). With ``accept`` the message is taken first, as when a
        provider accepts a message and the answer is lost on the way back."""
        self._script.add(n, _Failure(status=201, stall=seconds, accept=accept))

    def reject_number(self, number: str, *, code: int = 21211, status: int = 400) -> None:
        """Refuse every message to ``number`` with Twilio error ``code``."""
        with self._lock:
            self._rejected[number] = (status, code)

    # -- what happened

    @property
    def messages(self) -> list[SentSms]:
        with self._lock:
            return list(self._messages)

    def message(self, sid: str) -> SentSms:
        with self._lock:
            return next(message for message in self._messages if message.sid == sid)

    def http_client(self, *, timeout: float = 10.0) -> LocalTwilioHttpClient:
        """A real ``TwilioHttpClient`` whose Twilio URLs land on this fake."""
        return LocalTwilioHttpClient(self.base_url, timeout=timeout)

    # -- signed webhooks, as Twilio would send them

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """The ``X-Twilio-Signature`` for a form POST of ``params`` to ``url``."""
        signature: str = RequestValidator(self.auth_token).compute_signature(url, dict(params))
        return signature

    def status_callback(
        self,
        url: str,
        message_sid: str,
        status: str,
        extra: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, str], str]:
        """The form fields and signature of a message status callback to ``url``.

        ``From``/``To`` come from the accepted message when the fake knows ``message_sid``;
        ``extra`` adds or overrides fields (``{"ErrorCode": "30005"}`` for a failure).
        """
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "MessageSid": message_sid,
            "SmsSid": message_sid,
            "MessageStatus": status,
            "SmsStatus": status,
        }
        with self._lock:
            sent = next((m for m in self._messages if m.sid == message_sid), None)
        if sent is not None:
            params |= {"From": sent.from_, "To": sent.to}
        params |= dict(extra or {})
        return params, self.sign(url, params)

    def inbound_sms(self, url: str, from_: str, to: str, body: str) -> tuple[dict[str, str], str]:
        """The form fields and signature of an incoming SMS webhook to ``url``."""
        sid = f"SM{secrets.token_hex(16)}"
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": str(sms_segments(body)),
        }
        return params, self.sign(url, params)

    # -- the API

    def _respond(self, request: _Request) -> _Reply:
        with self._lock:
            self.requests += 1
        path = urlsplit(request.path).path
        match = _TWILIO_MESSAGES.match(path)
        if match is None or request.method != "POST":
            return _twilio_error(404, 20404, f"The requested resource {path} was not found")
        down = self._outage()
        if down is not None:
            code, message = _TWILIO_DEFAULT_ERRORS.get(down.status, (down.status, "Error"))
            headers = {"Retry-After": down.retry_after} if down.retry_after else {}
            return _twilio_error(down.status, code, message, headers)
        failure = self._script.pop()
        stall_after: float | None = None
        if failure is not None and failure.stall is not None:
            if not failure.accept:
                self._stall(failure.stall)
                return _twilio_error(503, 20503, "Service Unavailable")
            stall_after, failure = failure.stall, None
        if failure is not None:
            default_code, default_message = _TWILIO_DEFAULT_ERRORS.get(
                failure.status, (failure.status, "Error")
            )
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            return _twilio_error(
                failure.status, failure.code or default_code, default_message, headers
            )
        if _basic_auth(request.headers) != (self.account_sid, self.auth_token):
            return _twilio_error(401, 20003, "Authenticate")
        if match["sid"] != self.account_sid:
            return _twilio_error(404, 20404, f"The requested resource {path} was not found")
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        to, from_, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        refusal = self._refusal(to, from_, body)
        if refusal is not None:
            return refusal
        bucket = self._limits.get(from_)
        if bucket is not None and not bucket.take():
            with self._lock:
                self.throttled += 1
            return _twilio_error(429, 20429, "Too Many Requests")
        sent = SentSms(
            sid=f"SM{secrets.token_hex(16)}",
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            body=body,
            status_callback=form.get("StatusCallback"),
            num_segments=sms_segments(body),
            params=form,
        )
        with self._lock:
            self._messages.append(sent)
            plan = self._plan
        if plan is not None and sent.status_callback:
            url = sent.status_callback
            callbacks: list[Callable[[], object]] = [
                functools.partial(self._post_status, plan, url, sent.sid, status, extra)
                for status, extra in plan.statuses
            ]
            self._schedule(callbacks, plan.before_reply)
        if stall_after is not None:
            self._stall(stall_after)
        return _Reply.json(201, self._message_json(sent))

    def _post_status(
        self, plan: _CallbackPlan, url: str, sid: str, status: str, extra: Mapping[str, str]
    ) -> object:
        return plan.post(url, *self.status_callback(url, sid, status, extra))

    def _refusal(self, to: str, from_: str, body: str) -> _Reply | None:
        with self._lock:
            scripted = self._rejected.get(to)
        if not to:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if scripted is not None:
            status, code = scripted
            # Real Twilio quotes the number back; the channel must not pass it on in clear.
            template = _TWILIO_REJECTIONS.get(code, "The 'To' number {to} was refused.")
            return _twilio_error(status, code, template.format(to=to, from_=from_))
        if not _E164.match(to):
            return _twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not from_:
            return _twilio_error(400, 21603, "A 'From' phone number is required.")
        if self.senders is not None and from_ not in self.senders:
            return _twilio_error(
                400,
                21606,
                f"The From phone number {from_} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
        if not body:
            return _twilio_error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return _twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        return None

    def _message_json(self, sent: SentSms) -> dict[str, Any]:
        now = email.utils.format_datetime(self._clock())
        uri = f"/2010-04-01/Accounts/{sent.account_sid}/Messages/{sent.sid}"
        return {
            "account_sid": sent.account_sid,
            "api_version": "2010-04-01",
            "body": sent.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sent.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(sent.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": sent.sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": sent.to,
            "uri": f"{uri}.json",
        }


def _twilio_error(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> _Reply:
    return _Reply.json(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        headers,
    )


def _basic_auth(headers: Mapping[str, str]) -> tuple[str, str] | None:
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


def _header_number(value: float | str) -> str:
    """A header value: seconds as given (``30``, ``0.5``) or a string such as an HTTP-date."""
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


class LocalTwilioHttpClient(TwilioHttpClient):  # type: ignore[misc]  # untyped SDK
    """``TwilioHttpClient`` that sends ``https://*.twilio.com`` requests to ``base_url``.

    The SDK builds absolute URLs per product domain; ``edge=``/``region=`` can only pick
    another Twilio host, so the rewrite has to happen here, at the HTTP client. The
    timeout and everything else of the real client stay as they are.
    """

    def __init__(self, base_url: str, *, timeout: float | None = 10.0) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme == "https" and (host == "twilio.com" or host.endswith(".twilio.com")):
            url = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        response: TwilioResponse = super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        return response

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


# ------------------------------------------------------------------------------- SendGrid

_SENDGRID_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"


@dataclass(frozen=True)
class SentEmail:
    """A mail send the fake accepted (one ``X-Message-Id``)."""

    message_id: str
    to: tuple[str, ...]
    from_email: str
    from_name: str | None
    subject: str | None
    text: str | None
    html: str | None
    custom_args: Mapping[str, str]
    """Top-level custom args merged with the first personalization's, as events carry them."""
    payload: Mapping[str, Any]


class FakeSendGrid(_FakeProvider):
    """SendGrid's ``POST /v3/mail/send`` with Bearer auth, plus a signed event webhook."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        max_body_bytes: int = 30 * 1024 * 1024,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__()
        self.api_key = api_key or f"SG.{secrets.token_urlsafe(16)}.{secrets.token_urlsafe(32)}"
        self.max_body_bytes = max_body_bytes
        self._clock = clock
        self._script = _Script()
        self._rejected: dict[str, tuple[int, str]] = {}
        self._messages: list[SentEmail] = []
        self.requests = 0
        """Every request that reached the server, accepted or not."""
        self._signing_key = ec.generate_private_key(ec.SECP256R1())
        der = self._signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()
        """The verification key as SendGrid's settings page shows it (base64 DER)."""

    # -- scripting

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 503,
        message: str | None = None,
        retry_after: float | str | None = None,
        rate_limit_reset: int | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status``.

        ``rate_limit_reset`` (epoch seconds) is sent as ``X-RateLimit-Reset``, which is how
        SendGrid tells a client when a 429 ends.
        """
        self._script.add(
            n,
            _Failure(
                status=status,
                message=message,
                retry_after=None if retry_after is None else _header_number(retry_after),
                rate_limit_reset=rate_limit_reset,
            ),
        )

    def time_out_next(self, n: int = 1, *, seconds: float = 2.0, accept: bool = False) -> None:
        """Hold the next ``n`` answers back for ``seconds``; ``accept`` takes the mail first."""
        self._script.add(n, _Failure(status=202, stall=seconds, accept=accept))

    def reject_address(
        self, address: str, *, status: int = 400, message: str = "Does not contain a valid address."
    ) -> None:
        """Refuse every mail send that has ``address`` among its recipients."""
        with self._lock:
            self._rejected[address.lower()] = (status, message)

    # -- what happened

    @property
    def messages(self) -> list[SentEmail]:
        with self._lock:
            return list(self._messages)

    # -- signed event webhook, as SendGrid would post it

    def event(
        self,
        sent: SentEmail,
        kind: str,
        timestamp: int,
        extra: Mapping[str, object] | None = None,
    ) -> dict[str, object]:
        """One event of the event webhook about ``sent`` (``delivered``, ``bounce``, ...).

        SendGrid copies the message's custom args to the top level of each event and
        suffixes the ``X-Message-Id`` to make ``sg_message_id``.
        """
        return {
            "email": sent.to[0],
            "timestamp": timestamp,
            "event": kind,
            "sg_event_id": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
            "sg_message_id": f"{sent.message_id}.filterdrecv-{secrets.token_hex(5)}-1-"
            f"{secrets.token_hex(4).upper()}-{secrets.randbelow(100)}.0",
            "smtp-id": f"<{sent.message_id}@geopod-ismtpd-1>",
            **sent.custom_args,
            **(extra or {}),
        }

    def signed_events(self, events: list[dict[str, Any]], timestamp: str) -> tuple[bytes, str, str]:
        """The body, ``X-Twilio-Email-Event-Webhook-Signature`` and timestamp of a POST.

        SendGrid signs ``timestamp + body`` with ECDSA P-256 / SHA-256 and sends the DER
        signature base64-encoded; ``EventWebhook.verify_signature`` checks exactly that,
        so a receiver must verify the raw body, before any JSON re-encoding.
        """
        body = json.dumps(events).encode()
        return body, self.sign_raw(body, timestamp), timestamp

    def sign_raw(self, body: bytes, timestamp: str) -> str:
        """The signature header for any raw ``body`` (hostile bodies, signed all the same)."""
        signature = self._signing_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()

    # -- the API

    def _respond(self, request: _Request) -> _Reply:
        with self._lock:
            self.requests += 1
        if urlsplit(request.path).path != "/v3/mail/send" or request.method != "POST":
            return _sendgrid_error(404, "Not found")
        down = self._outage()
        if down is not None:
            return self._scripted(down)
        failure = self._script.pop()
        stall_after: float | None = None
        if failure is not None and failure.stall is not None:
            if not failure.accept:
                self._stall(failure.stall)
                return self._scripted(_Failure(status=503))
            stall_after, failure = failure.stall, None
        if failure is not None:
            return self._scripted(failure)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _sendgrid_error(
                401, "The provided authorization grant is invalid, expired, or revoked"
            )
        if len(request.body) > self.max_body_bytes:
            return _sendgrid_error(413, "Payload Too Large")
        try:
            payload = json.loads(request.body)
        except ValueError:
            return _sendgrid_error(400, "Bad Request", field=None)
        problem = _mail_problem(payload)
        if problem is not None:
            return problem
        recipients = tuple(
            str(to["email"]) for p in payload["personalizations"] for to in p.get("to", [])
        )
        with self._lock:
            rejected = [
                self._rejected[r] for r in map(str.lower, recipients) if r in self._rejected
            ]
        if rejected:
            status, message = rejected[0]
            return _sendgrid_error(status, message, field="personalizations.0.to.0.email")
        contents = {c["type"]: c["value"] for c in payload["content"]}
        first = payload["personalizations"][0]
        sent = SentEmail(
            message_id=base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
            to=recipients,
            from_email=payload["from"]["email"],
            from_name=payload["from"].get("name"),
            subject=first.get("subject", payload.get("subject")),
            text=contents.get("text/plain"),
            html=contents.get("text/html"),
            custom_args={**payload.get("custom_args", {}), **first.get("custom_args", {})},
            payload=payload,
        )
        with self._lock:
            self._messages.append(sent)
            plan = self._plan
        if plan is not None:
            timestamp = int(self._clock().timestamp())

            def post(kind: str, extra: Mapping[str, str]) -> object:
                event = self.event(sent, kind, timestamp, extra)
                return plan.post(*self.signed_events([event], str(timestamp)))

            callbacks: list[Callable[[], object]] = [
                functools.partial(post, kind, extra) for kind, extra in plan.statuses
            ]
            self._schedule(callbacks, plan.before_reply)
        if stall_after is not None:
            self._stall(stall_after)
        return _Reply(202, b"", {"X-Message-Id": sent.message_id})

    def _scripted(self, failure: _Failure) -> _Reply:
        headers: dict[str, str] = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = failure.retry_after
        if failure.status == 429:
            headers |= {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"}
        if failure.rate_limit_reset is not None:
            headers["X-RateLimit-Reset"] = str(failure.rate_limit_reset)
        default = {
            400: "Bad Request",
            401: "The provided authorization grant is invalid, expired, or revoked",
            403: "The from address does not match a verified Sender Identity.",
            413: "Payload Too Large",
            429: "too many requests",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }.get(failure.status, "error")
        return _sendgrid_error(failure.status, failure.message or default, headers=headers)


def _sendgrid_error(
    status: int,
    message: str,
    *,
    field: str | None = None,
    help: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> _Reply:
    return _Reply.json(
        status, {"errors": [{"message": message, "field": field, "help": help}]}, headers
    )


def _mail_problem(payload: Any) -> _Reply | None:
    """SendGrid's 400s for a body that is not a sendable mail, in the order it checks."""
    if not isinstance(payload, dict):
        return _sendgrid_error(400, "Bad Request")
    personalizations = payload.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return _sendgrid_error(
            400,
            "The personalizations field is required and must have at least one personalization.",
            field="personalizations",
            help=f"{_SENDGRID_HELP}#-Personalizations-Errors",
        )
    for p, personalization in enumerate(personalizations):
        to = personalization.get("to") if isinstance(personalization, dict) else None
        if not isinstance(to, list) or not to:
            return _sendgrid_error(
                400,
                "The to array is required for all personalization objects, and must have at "
                "least one email object with a valid email address.",
                field=f"personalizations.{p}.to",
                help=f"{_SENDGRID_HELP}#message.personalizations.to",
            )
        for t, recipient in enumerate(to):
            if "@" not in str(recipient.get("email", "")):
                return _sendgrid_error(
                    400,
                    "Does not contain a valid address.",
                    field=f"personalizations.{p}.to.{t}.email",
                    help=f"{_SENDGRID_HELP}#message.personalizations.to",
                )
    sender = payload.get("from")
    if not isinstance(sender, dict) or "@" not in str(sender.get("email", "")):
        return _sendgrid_error(
            400,
            "The from object must be provided for every email send. It is an object that "
            "requires the email parameter, but may also contain a name parameter.",
            field="from.email",
            help=f"{_SENDGRID_HELP}#message.from",
        )
    templated = "template_id" in payload
    if (
        not templated
        and not payload.get("subject")
        and not all(p.get("subject") for p in personalizations)
    ):
        return _sendgrid_error(
            400,
            "The subject is required. You can get around this requirement if you use a "
            "template with a subject defined or if every personalization has a subject "
            "defined.",
            field="subject",
            help=f"{_SENDGRID_HELP}#message.subject",
        )
    content = payload.get("content")
    if not templated and (not isinstance(content, list) or not content):
        return _sendgrid_error(
            400,
            "Unless a valid template_id is provided, the content parameter is required. "
            "There must be at least one defined content block. We typically suggest both "
            "text/plain and text/html blocks are included, but only one block is required.",
            field="content",
            help=f"{_SENDGRID_HELP}#message.content",
        )
    types = [block.get("type") for block in content or []]
    if "text/plain" in types and types[0] != "text/plain":
        return _sendgrid_error(
            400,
            "If present, text/plain content must be first, followed by text/html, followed "
            "by any other content.",
            field="content",
            help=f"{_SENDGRID_HELP}#message.content",
        )
    return None


# ----------------------------------------------------------------------- a silent server


class UnresponsiveServer:
    """Accepts TCP connections and never answers: a provider that hangs.

    For checking that a channel gives up within its timeout instead of holding a sender
    thread forever.
    """

    def __init__(self) -> None:
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []

    @property
    def base_url(self) -> str:
        if self._listener is None:
            raise RuntimeError("UnresponsiveServer is not running; use it as a context manager")
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._accept, name="unresponsive-server")
        self._thread.start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            readable, _, _ = select.select([self._listener], [], [], 0.05)
            if readable:
                connection, _ = self._listener.accept()
                self._connections.append(connection)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for connection in self._connections:
            connection.close()
        if self._listener is not None:
            self._listener.close()
        self._connections.clear()
        self._listener = self._thread = None

    @property
    def connections(self) -> int:
        """How many clients connected (and were left waiting)."""
        return len(self._connections)


# ----------------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class SentMail:
    """A message the SMTP fake accepted."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: _SmtpServer

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        fake = self.server.fake
        self.reply("220 fake-smtp ESMTP ready")
        mail_from, rcpt = "", []
        while line := self.rfile.readline():
            verb, _, arg = line.decode("utf-8", "replace").strip().partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-fake-smtp\r\n250 8BITMIME" if verb == "EHLO" else "250 fake-smtp")
            elif verb == "MAIL":
                failure = fake._script.pop()
                if failure is not None:
                    self.reply(f"{failure.status} {failure.message or 'try again later'}")
                    continue
                mail_from, rcpt = arg.partition(":")[2].strip("<> "), []
                self.reply("250 OK")
            elif verb == "RCPT":
                address = arg.partition(":")[2].strip("<> ")
                refusal = fake._rejected.get(address.lower())
                if refusal is not None:
                    self.reply(f"{refusal[0]} {refusal[1]}")
                    continue
                rcpt.append(address)
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                data = bytearray()
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                with fake._lock:
                    fake._messages.append(SentMail(mail_from, tuple(rcpt), bytes(data)))
                self.reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 command not implemented")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, fake: FakeSmtp) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.fake = fake


class FakeSmtp:
    """A plain SMTP relay (no TLS, no auth) that keeps what it accepts.

    ``fail_next`` answers the next transactions' MAIL FROM with a code (421 by default,
    a relay busy); ``reject_address`` refuses one recipient at RCPT TO (550 by default).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script = _Script()
        self._rejected: dict[str, tuple[int, str]] = {}
        self._messages: list[SentMail] = []
        self._server: _SmtpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def fail_next(self, n: int = 1, *, code: int = 421, message: str = "busy, try later") -> None:
        self._script.add(n, _Failure(status=code, message=message))

    def reject_address(
        self, address: str, *, code: int = 550, message: str = "no such user"
    ) -> None:
        with self._lock:
            self._rejected[address.lower()] = (code, message)

    @property
    def messages(self) -> list[SentMail]:
        with self._lock:
            return list(self._messages)

    def __enter__(self) -> Self:
        self._server = _SmtpServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeSmtp"
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._server.server_close()
        self._server = self._thread = None


# -------------------------------------------------------------------------- webhook receiver


class FakeWebhookReceiver(_FakeProvider):
    """Accepts POSTs (200 with ``{"id": ...}``) and keeps them; ``fail_next`` scripts errors."""

    def __init__(self) -> None:
        super().__init__()
        self._script = _Script()
        self.received: list[tuple[Mapping[str, str], bytes]] = []

    def fail_next(self, n: int = 1, *, status: int = 503, retry_after: str | None = None) -> None:
        self._script.add(n, _Failure(status=status, retry_after=retry_after))

    def _respond(self, request: _Request) -> _Reply:
        failure = self._script.pop()
        if failure is not None:
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            return _Reply.json(failure.status, {"error": "scripted"}, headers)
        with self._lock:
            self.received.append((request.headers, request.body))
            count = len(self.received)
        return _Reply.json(200, {"id": f"wh-{count}"})
