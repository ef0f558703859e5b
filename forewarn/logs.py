"""Logging for every forewarn command: one handler on the root logger, text or JSON lines.

What an operator reads at INFO is state changes (a broker lost and back, a leader elected,
a job failing, a follow-up opened), not one line per scheduler run or per HTTP request.

Secrets and personal data are kept out twice:

1. At the source. The provider SDKs log whole requests: ``python_http_client`` (SendGrid)
   writes the ``Authorization: Bearer SG.…`` header and the message payload at DEBUG,
   ``twilio.http_client`` the form body (recipient, text) at INFO. Those loggers, and the
   other per-request ones, are held at WARNING whatever ``--log-level`` says. Engines are
   built with ``hide_parameters=True`` (:mod:`forewarn.store.engine`), so a database
   error never quotes a statement's values (an SMS text, a phone number).
2. On the way out. A filter on the one handler rewrites every record before it is
   formatted: the values of secret environment variables (tokens, keys, passwords) become
   ``****``, URL passwords and ``Bearer``/``Basic`` credentials are hidden, email
   addresses and E.164-looking numbers are masked as :mod:`forewarn.notifier.privacy`
   masks them. Loggers that keep their own handlers would bypass it, so none may
   (uvicorn is started with ``log_config=None`` for this reason).

The JSON format is written with the standard library, not python-json-logger: it is a
dozen lines, and the redaction has to see every field before serialisation anyway.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TextIO

from forewarn.notifier.privacy import mask_email, mask_phone

if TYPE_CHECKING:
    from forewarn.config.schema import Settings

LogFormat = Literal["text", "json"]
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS: tuple[LogFormat, ...] = ("text", "json")

REQUEST_LOGGERS = (
    # Each logs one line per HTTP request; the first two with credentials and bodies.
    "twilio.http_client",
    "python_http_client",
    "urllib3",
    "requests",
    "httpx",
    "httpcore",
    "uvicorn.access",
    "python_multipart",
    "multipart",
)
"""Held at WARNING at every level: their lines carry credentials, bodies and addresses."""

PER_RUN_LOGGERS = ("apscheduler",)
"""At WARNING, or INFO when the level is DEBUG: one "Running job ...", "executed successfully"
pair per run (their DEBUG lines add one per wake-up)."""

SECRET_ENVIRONMENT = re.compile(
    r"(?:^|_)(?:TOKENS?|SECRET|PASSWORD|PASSWD|API_KEY|AUTH|PRIVATE_KEY|CREDENTIALS?)(?:$|_)"
)
"""Environment variables whose value is a credential, by name (whole ``_``-separated words:
``TWILIO_AUTH_TOKEN`` is one, ``GIT_AUTHOR_NAME`` is not)."""

_HIDDEN = "****"
_MIN_SECRET = 6  # shorter values would mask ordinary words; no real credential is that short
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^/:@\s]*):(?P<password>[^/@\s]+)@")
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")
# Bounded repetitions keep these linear in the length of the line (an unbounded
# ``[\w.+-]+@`` is quadratic on a long run of word characters).
_EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_PHONE = re.compile(r"(?<!\w)(?:\+|%2[Bb])?\d{8,15}(?!\w)")


class Redactor:
    """Rewrites text so that no known secret, email address or phone number is left."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Also hide each of ``secrets`` (values shorter than 6 characters are ignored)."""
        known = set(self._secrets)
        known.update(s for s in secrets if s and len(s) >= _MIN_SECRET)
        # Longest first, so a token that contains another is hidden whole.
        self._secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _HIDDEN)
        text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}:{_HIDDEN}@", text)
        text = _CREDENTIAL.sub(lambda m: f"{m[1]} {_HIDDEN}", text)
        text = _EMAIL.sub(lambda m: mask_email(m.group()), text)
        return _PHONE.sub(lambda m: mask_phone(m.group()), text)


def secrets_in(environ: Mapping[str, str], names: Iterable[str] = ()) -> list[str]:
    """The credential values in ``environ``: variables named like one, plus ``names``.

    ``FOREWARN_TOKENS`` (``role:token,...``) contributes each token, and a database URL
    its password, so that they are hidden even when quoted alone.
    """
    wanted = set(names)
    found = [v for k, v in environ.items() if k in wanted or SECRET_ENVIRONMENT.search(k)]
    for entry in environ.get("FOREWARN_TOKENS", "").split(","):
        found.append(entry.rpartition(":")[2].strip())
    for key, value in environ.items():
        if key.endswith("DATABASE_URL") and (match := _URL_PASSWORD.search(value)):
            found.append(match["password"])
    return found


def secret_environment_names(settings: Settings) -> list[str]:
    """The environment variables a config file names as holding credentials."""
    names = [feed.auth_env for feed in settings.feeds if feed.auth_env]
    if settings.broker.password_env:
        names.append(settings.broker.password_env)
    return names


# Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, traceback and extra fields through a :class:`Redactor`.

    It renders the message itself (``msg % args``) and stores the result, so the formatter
    never sees the raw arguments.
    """

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_handler: logging.Handler | None = None


def configure_logging(
    level: str = "INFO",
    log_format: LogFormat = "text",
    *,
    environ: Mapping[str, str],
    secret_names: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Install (or replace) forewarn's one root handler; returns its :class:`Redactor`.

    ``level`` is one of :data:`LEVELS` (case-insensitive); ``secret_names`` are further
    environment variables holding credentials (those a config file names, such as a
    broker's ``password_env``). Raises ``ValueError`` for an unknown level or format.
    """
    global _handler
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; choose from {', '.join(LEVELS)}")
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; choose from text, json")
    redact = Redactor(secrets_in(environ, secret_names))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter(redact))
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(name)
    _handler = handler
    for logger in REQUEST_LOGGERS:
        logging.getLogger(logger).setLevel(logging.WARNING)
    for logger in PER_RUN_LOGGERS:
        logging.getLogger(logger).setLevel(logging.INFO if name == "DEBUG" else logging.WARNING)
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    for old in [f for f in scheduler_log.filters if isinstance(f, SkippedRunFilter)]:
        scheduler_log.removeFilter(old)
    scheduler_log.addFilter(SkippedRunFilter(keep=name == "DEBUG"))
    return redact


class SkippedRunFilter(logging.Filter):
    """Drops APScheduler's "skipped: maximum number of running instances" WARNING below
    DEBUG: a tick that finds the previous run (a long sender batch) still working is
    normal, and with a 100 ms outbox interval it would be ten lines a second. A job that
    really stops is seen through its last success (/readyz, /metrics), not this line."""

    def __init__(self, *, keep: bool) -> None:
        super().__init__()
        self.keep = keep

    def filter(self, record: logging.LogRecord) -> bool:
        return self.keep or "maximum number of running instances" not in str(record.msg)


def announce(message: str) -> None:
    """Tell the operator something whatever the log level (where the console is): a plain
    line on stderr, or one JSON object (level INFO) when the logs are JSON, so that a log
    shipper reading stderr sees nothing but JSON lines."""
    handler = _handler
    if handler is not None and isinstance(handler.formatter, JsonFormatter):
        # handle() runs the handler's filters (redaction) and emits, whatever the level.
        record = logging.LogRecord("forewarn", logging.INFO, __file__, 0, message, None, None)
        handler.handle(record)
        return
    print(message, file=sys.stderr, flush=True)
