"""The config reference (``docs/config.md``), generated from the schema so it cannot drift.

``forewarn config-reference > docs/config.md`` rewrites it; a test fails when the file in
the repository differs from what the schema says.
"""

from __future__ import annotations

import types
import typing
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from forewarn.config.durations import format_duration
from forewarn.config.schema import (
    DriftMonitor,
    FaultCodeMonitor,
    HoursWindow,
    OfflineMonitor,
    PeerMonitor,
    RateMonitor,
    Settings,
    ThresholdMonitor,
)

HEADER = """# Configuration reference

Generated from forewarn's settings schema by `forewarn config-reference`; do not edit by
hand. A complete, commented example is `config/forewarn.example.yaml`; validate any file
with `forewarn check -c FILE` (exit status 2 and one line per problem on error).

Durations are written `30s`, `10m`, `2h`, `1d` or combined (`1h30m`). Time zones are IANA
names (`Europe/Lisbon`, `Asia/Bangkok`). Secrets never go in the file: they come from the
environment (see the end of this page).
"""

SECRETS = """## Environment variables

| variable | what it is |
|---|---|
| `FOREWARN_DATABASE_URL` | database URL, overrides `database.url` (put the password here) |
| `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN` | Twilio credentials (else SMS: development channel) |
| `SENDGRID_API_KEY` | SendGrid API key (else email: development channel) |
| `FOREWARN_API_TOKEN` | a token with the `ops` role for the console and API |
| `FOREWARN_TOKENS` | more tokens: `role:token,role:token` (roles `ops`, `technician`, `viewer`) |
| | an entry `technician:<id>:<token>` is personal: it acts only as that technician |
| `FOREWARN_LINK_SECRET` | signs the visit links in customer emails (with `web.public_url`); |
| | without it customers book visits by SMS reply only |
| the variable named by `broker.password_env` | the MQTT broker password |
"""


def render_reference() -> str:
    sections = [HEADER]
    seen: set[type[BaseModel]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("(top level)", Settings)]
    monitors: list[tuple[str, type[BaseModel]]] = [
        ("monitors[] with kind: threshold", ThresholdMonitor),
        ("monitors[] with kind: offline", OfflineMonitor),
        ("monitors[] with kind: fault_code", FaultCodeMonitor),
        ("monitors[] with kind: rate", RateMonitor),
        ("monitors[] with kind: drift", DriftMonitor),
        ("monitors[] with kind: fleet_peer", PeerMonitor),
    ]
    while queue:
        title, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        sections.append(_table(title, model, queue))
        if model is Settings:
            queue = monitors + queue
    sections.append(SECRETS)
    return "\n".join(sections)


def _table(title: str, model: type[BaseModel], queue: list[tuple[str, type[BaseModel]]]) -> str:
    doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
    lines = [f"## {title}", "", doc, "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key == "kind" and title.startswith("monitors"):
            continue
        for nested in [m for m in _models(field.annotation) if m is not HoursWindow]:
            prefix = "" if title == "(top level)" else f"{title}."
            if title.startswith("monitors[] with kind"):
                prefix = "monitors[]."
            many = typing.get_origin(field.annotation) in (tuple, dict)
            queue.append((f"{prefix}{key}{'[]' if many else ''}", nested))
        meaning = " ".join((field.description or "").split())
        lines.append(
            f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {meaning} |"
        )
    return "\n".join(lines) + "\n"


def _models(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in typing.get_args(annotation):
        if arg in (
            ThresholdMonitor,
            OfflineMonitor,
            FaultCodeMonitor,
            RateMonitor,
            DriftMonitor,
            PeerMonitor,
        ):
            continue
        found.extend(_models(arg))
    return found


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base = args[0]
        if base is timedelta:
            return "duration"
        return _type_name(base)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        optional = type(None) in args
        return " or ".join(names) + (" (optional)" if optional else "")
    if origin is typing.Literal:
        return " / ".join(f"`{a}`" for a in args)
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if annotation is timedelta:
        return "duration"
    if annotation is HoursWindow:
        return "time window `HH:MM-HH:MM`"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping" if "Monitor" not in annotation.__name__ else "monitor"
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if isinstance(value, BaseModel) or value is None:
        return "" if value is not None else "none"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, dict):
        items = ", ".join(
            f"{k}: {format_duration(v) if isinstance(v, timedelta) else v}"
            for k, v in value.items()
        )
        return f"`{{{items}}}`" if items else "`{}`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(str(v) for v in value) + "]`"
    return f"`{value}`"
