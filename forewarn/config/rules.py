"""Rule sets as data: the ``monitors`` section written out, compared and put back in a file.

A rule-set version stores :func:`rules_data` of its monitors: the keys as a person writes
them in ``forewarn.yaml`` (durations as ``10m``, defaults left out), so a version reads
like the file and :func:`export_yaml` can write it back. :func:`diff_rules` says what
changed between two versions, rule by rule and key by key; override lists are compared
by what they target (``overrides[site=s-lisbon]``), not by position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml

from forewarn.config.schema import MonitorSettings

_FIRST = ("id", "kind", "description", "metric", "severity")


def duration_text(value: timedelta) -> str:
    """A duration as the file writes it (``1h30m``, ``500ms``, ``0s``)."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


def _plain(value: Any) -> Any:
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # written as the person wrote it: 75, not 75.0
    return value


def rule_data(rule: MonitorSettings) -> dict[str, Any]:
    """One rule as the file would write it: its kind and every key that differs from the
    default, ``id`` and ``kind`` first."""
    dumped = rule.model_dump(by_alias=True, exclude_defaults=True)
    dumped["kind"] = rule.kind
    dumped["severity"] = rule.severity  # said even when it is the default: ops look for it
    ordered = {k: dumped[k] for k in _FIRST if k in dumped}
    ordered.update((k, v) for k, v in dumped.items() if k not in ordered)
    plain = _plain(ordered)
    assert isinstance(plain, dict)
    return plain


def rules_data(monitors: Iterable[MonitorSettings]) -> list[dict[str, Any]]:
    """The ``monitors`` section as data (what a version stores)."""
    return [rule_data(m) for m in monitors]


@dataclass(frozen=True)
class KeyChange:
    path: str
    """Inside the rule: ``above``, ``overrides[device=inv-101].for``."""
    old: Any
    new: Any


def diff_rules(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """What changed from ``old`` to ``new`` (both :func:`rules_data`), as JSON-ready rows:
    ``{"rule", "change": added|removed|changed, "keys": [{"path", "old", "new"}]}``."""
    before = {str(r["id"]): r for r in old}
    after = {str(r["id"]): r for r in new}
    rows: list[dict[str, Any]] = []
    for rule_id in [*before, *(i for i in after if i not in before)]:
        if rule_id not in after:
            rows.append({"rule": rule_id, "change": "removed", "keys": []})
        elif rule_id not in before:
            rows.append({"rule": rule_id, "change": "added", "keys": []})
        else:
            changes = _compare(_flatten(before[rule_id]), _flatten(after[rule_id]))
            if changes:
                rows.append(
                    {
                        "rule": rule_id,
                        "change": "changed",
                        "keys": [{"path": c.path, "old": c.old, "new": c.new} for c in changes],
                    }
                )
    return rows


def describe_diff(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per change: ``inverter-overheating: above 75 -> 70``."""
    lines = []
    for row in rows:
        if row["change"] != "changed":
            lines.append(f"{row['rule']}: {row['change']}")
            continue
        for key in row["keys"]:
            old = "(unset)" if key["old"] is None else _show(key["old"])
            new = "(unset)" if key["new"] is None else _show(key["new"])
            lines.append(f"{row['rule']}: {key['path']} {old} -> {new}")
    return lines


def changed_rule_ids(rows: Sequence[Mapping[str, Any]]) -> set[str]:
    return {str(row["rule"]) for row in rows}


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


def _compare(old: dict[str, Any], new: dict[str, Any]) -> list[KeyChange]:
    keys = [*old, *(k for k in new if k not in old)]
    return [KeyChange(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif prefix.endswith("overrides") and isinstance(value, list):
        for item in value:
            out.update(_flatten(_without_target(item), f"{prefix}[{override_target(item)}]"))
    else:
        out[prefix] = value
    return out


def override_target(item: Mapping[str, Any]) -> str:
    """What an override targets: ``model=SunPeak 8K``, ``site=s-lisbon,device=inv-101``."""
    parts = [f"{k}={item[k]}" for k in ("model", "site", "device") if item.get(k) is not None]
    return ",".join(parts) or "all"


def _without_target(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("model", "site", "device")}


class _Flow(list[Any]):
    """A list written on one line (``[inverter, battery]``)."""


class _FlowMap(dict[str, Any]):
    """A mapping written on one line (an override: ``{site: s-lisbon, above: 70}``)."""


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key, short lists and overrides on one line
    (as the example config writes them)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _flow_list(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


def _flow_map(dumper: yaml.SafeDumper, data: _FlowMap) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)


_Dumper.add_representer(_Flow, _flow_list)
_Dumper.add_representer(_FlowMap, _flow_map)


def _styled(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        return {k: _styled(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        if key == "overrides":
            return [_FlowMap(v) if isinstance(v, Mapping) else v for v in value]
        if all(not isinstance(v, Mapping | list) for v in value):
            return _Flow(value)
        return [_styled(v) for v in value]
    return value


def export_yaml(original: str, monitors: Sequence[Mapping[str, Any]]) -> str:
    """``original`` (a whole forewarn.yaml) with its ``monitors`` section replaced by
    ``monitors``; every other line, comments included, stays as it was."""
    section = yaml.dump(
        {"monitors": [_styled(m) for m in monitors]},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    node = yaml.compose(original, Loader=yaml.SafeLoader) if original.strip() else None
    lines = original.splitlines(keepends=True)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value != "monitors":
                continue
            start = key_node.start_mark.line
            end = value_node.end_mark.line + (1 if value_node.end_mark.column else 0)
            # Blank lines and comments just before the next section belong to it.
            while end > start + 1 and (
                not lines[end - 1].strip() or lines[end - 1].startswith("#")
            ):
                end -= 1
            return "".join(lines[:start]) + section + "".join(lines[end:])
    joined = "".join(lines)
    if joined and not joined.endswith("\n"):
        joined += "\n"
    return joined + ("\n" if joined else "") + section
