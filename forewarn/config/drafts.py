"""Draft rule sets: the ``monitors`` section of ``forewarn.yaml`` on its own, for a backtest.

A draft is YAML (or JSON) shaped like the config's rules: ``monitors: [...]`` or the bare
list. It is validated together with the rest of the configuration by the same schema as
``forewarn check`` (an override naming an unknown device, a silence naming a rule the
draft removed), and its problems read the same: ``draft.yaml:12: monitors[1].above: ...``.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from forewarn.config.loading import ConfigError, _describe, _line_index
from forewarn.config.schema import MonitorSettings, Settings


def parse_draft(
    settings: Settings, text: str, source: str = "draft.yaml"
) -> tuple[MonitorSettings, ...]:
    """The rules of draft ``text`` checked against ``settings``; raises :class:`ConfigError`
    with one ``source:line: key.path: problem`` line per problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{where}: not valid YAML: {problem}") from exc
    lines: dict[str, int] = {}
    if isinstance(node, yaml.SequenceNode):
        lines = _line_index(node, "monitors")
    elif node is not None:
        lines = _line_index(node)
    return validate_draft(settings, data, source, lines)


def validate_draft(
    settings: Settings, data: Any, source: str = "draft", lines: dict[str, int] | None = None
) -> tuple[MonitorSettings, ...]:
    """:func:`parse_draft` for data already read (a JSON body): a mapping with a
    ``monitors`` list, or the list."""
    if data is None:
        raise ConfigError(f"{source}: the draft is empty: give the monitors section")
    if isinstance(data, dict):
        extra = sorted(str(k) for k in data if k != "monitors")
        if extra:
            line = (lines or {}).get(extra[0])
            where = f":{line}" if line else ""
            raise ConfigError(
                f"{source}{where}: {extra[0]}: only the monitors section belongs in a draft"
            )
        if "monitors" not in data:
            raise ConfigError(f"{source}: monitors: is required")
        data = data["monitors"]
    if not isinstance(data, list):
        raise ConfigError(f"{source}: monitors: must be a list of rules")
    rest = settings.model_dump(by_alias=True, exclude={"monitors"})
    try:
        checked = Settings.model_validate(
            {**rest, "monitors": data}, context={"phone_region": settings.phone_region}
        )
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, lines or {})) from exc
    return checked.monitors
