"""Reading ``forewarn.yaml`` and the environment into one frozen :class:`Config`.

Every problem becomes a :class:`ConfigError` whose message names the file, the line, the
key path and what is wrong, e.g. ``forewarn.yaml:14: monitors[1].for: '10x' is not a
duration``. The CLI prints that one line and exits with status 2.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from forewarn.config.schema import MonitorSettings, ReferenceProblem, Settings
from forewarn.phones import REGIONS

# The discriminated unions add the kind as a path step; key paths leave it out.
_KINDS = {"threshold", "offline", "fault_code", "rate", "drift", "fleet_peer"} | {
    "milestone_overdue",
    "promise_at_risk",
    "carrier_exception",
    "promise_passed",
}
_SECRET_KEY = re.compile(r"(token|password|secret|api_key|apikey|auth)", re.IGNORECASE)


class ConfigError(Exception):
    """The configuration cannot be used; the message is meant for the person who wrote it."""


@dataclass(frozen=True)
class Secrets:
    """Credentials, taken only from the environment."""

    database_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    sendgrid_api_key: str | None = None
    broker_password: str | None = None
    api_token: str | None = None
    sendgrid_webhook_public_key: str | None = None
    smtp_password: str | None = None
    webhook_secret: str | None = None
    link_secret: str | None = None
    """FOREWARN_LINK_SECRET: signs the answer links in customer emails (FIXED...)."""

    def __repr__(self) -> str:  # never print a credential, even by accident
        present = [name for name, value in vars(self).items() if value]
        return f"Secrets(present={present})"


@dataclass(frozen=True)
class Config:
    """Settings from the file plus secrets from the environment."""

    settings: Settings
    secrets: Secrets
    source: str
    rules_digest: str = ""
    """SHA-256 of the file's ``monitors`` section as written (see :func:`rules_digest`):
    how a start-up tells whether the file's rules changed since they were provisioned."""

    @property
    def database_url(self) -> str:
        return self.secrets.database_url or self.settings.database.url


# libyaml when PyYAML was built with it (the wheels are): a 10 000-device fleet file took
# 11 s of CPU to read with the pure-Python loader and 1.8 s with libyaml. Both are "safe".
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_config(path: Path | str, environ: Mapping[str, str]) -> Config:
    """Read and validate the file at ``path``; secrets come from ``environ``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from exc
    return parse_config(text, environ, source=str(path))


def parse_config(text: str, environ: Mapping[str, str], source: str = "forewarn.yaml") -> Config:
    """Validate config ``text`` (YAML); ``source`` names it in error messages."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
        data = yaml.load(text, Loader=_LOADER) if node is not None else {}  # noqa: S506 (safe)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{where}: not valid YAML: {problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    lines = _line_index(node) if node is not None else {}
    try:
        region = str(data.get("phone_region") or "").upper()
        # Phone numbers in the file are read in this region (a bad one is its own error).
        settings = Settings.model_validate(
            data, context={"phone_region": region if region in REGIONS else None}
        )
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, lines)) from exc
    secrets = Secrets(
        database_url=environ.get("FOREWARN_DATABASE_URL") or None,
        twilio_account_sid=environ.get("TWILIO_ACCOUNT_SID") or None,
        twilio_auth_token=environ.get("TWILIO_AUTH_TOKEN") or None,
        sendgrid_api_key=environ.get("SENDGRID_API_KEY") or None,
        broker_password=(
            environ.get(settings.broker.password_env) if settings.broker.password_env else None
        ),
        api_token=environ.get("FOREWARN_API_TOKEN") or None,
        sendgrid_webhook_public_key=environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or None,
        smtp_password=environ.get("SMTP_PASSWORD") or None,
        webhook_secret=environ.get("FOREWARN_WEBHOOK_SECRET") or None,
        link_secret=environ.get("FOREWARN_LINK_SECRET") or None,
    )
    return Config(
        settings=settings,
        secrets=secrets,
        source=source,
        rules_digest=rules_digest(data.get("monitors")),
    )


def rules_digest(raw: object) -> str:
    """SHA-256 of a ``monitors`` section as read from YAML (key order, comments and
    spacing do not count; a changed level does)."""
    text = json.dumps(raw if raw is not None else [], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Problem:
    """One validation problem: the key path (``monitors[1].for``) and what is wrong."""

    path: str
    message: str


def problems(exc: ValidationError) -> list[Problem]:
    """Every problem of ``exc`` with the key path and the message ``forewarn check``
    prints; the console's rule editor shows the same ones next to its fields."""
    found = []
    for error in exc.errors():
        path = _path(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        ctx_error = (error.get("ctx") or {}).get("error")
        if isinstance(ctx_error, ReferenceProblem):
            path, message = ctx_error.path, ctx_error.message
        elif error["type"] == "extra_forbidden":
            key = str(error["loc"][-1])
            if _SECRET_KEY.search(key):
                message = "secrets do not belong in the file: set them in the environment"
            else:
                message = "unknown key (check the spelling against docs/config.md)"
        elif error["type"] == "missing":
            message = "is required"
        elif error["type"] == "union_tag_invalid":
            message = (
                f"unknown monitor kind {error['input'].get('kind')!r}"
                if isinstance(error["input"], dict)
                else message
            )
        elif error["type"] == "string_pattern_mismatch":
            message = f"{error['input']!r} is not valid here"
        found.append(Problem(path, message))
    return found


def _describe(exc: ValidationError, source: str, lines: dict[str, int]) -> str:
    messages = []
    for problem in problems(exc):
        path, message = problem.path, problem.message
        line = lines.get(path) or _nearest_line(path, lines)
        where = f":{line}" if line else ""
        messages.append(f"{source}{where}: {path or '(top level)'}: {message}")
    return "\n".join(messages[:5]) + (
        f"\n... and {len(messages) - 5} more problems" if len(messages) > 5 else ""
    )


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _KINDS and out.endswith("]"):
            continue  # the discriminated union adds the kind as a path step
        else:
            out += f".{part}" if out else str(part)
    return out.replace("for_", "for")


def _nearest_line(path: str, lines: dict[str, int]) -> int | None:
    while path:
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            break
        path = path[:cut]
        if path in lines:
            return lines[path]
    return None


def _line_index(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Map each key path (``monitors[1].for``) to its 1-based line in the file."""
    index: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            index[path] = key_node.start_mark.line + 1
            index.update(_line_index(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}[{i}]"
            index[path] = item.start_mark.line + 1
            index.update(_line_index(item, path))
    return index


class RulesInvalid(ConfigError):
    """A rule set (from the console, the API or the database) fails the file's validation;
    ``problems`` carry the key paths, e.g. ``monitors[2].above``."""

    def __init__(self, source: str, found: list[Problem]) -> None:
        lines = [f"{source}: {p.path or '(top level)'}: {p.message}" for p in found[:5]]
        more = f"\n... and {len(found) - 5} more problems" if len(found) > 5 else ""
        super().__init__("\n".join(lines) + more)
        self.problems = found


def validate_monitors(
    settings: Settings, monitors: object, source: str = "rules"
) -> tuple[MonitorSettings, ...]:
    """``monitors`` (the ``monitors`` section as data) validated exactly as ``forewarn
    check`` validates the file: by the same schema, together with the rest of
    ``settings`` (so a silence naming a removed rule is caught too)."""
    rest = settings.model_dump(by_alias=True, exclude={"monitors"})
    region = settings.phone_region
    try:
        checked = Settings.model_validate(
            {**rest, "monitors": monitors}, context={"phone_region": region}
        )
    except ValidationError as exc:
        raise RulesInvalid(source, problems(exc)) from exc
    return checked.monitors
