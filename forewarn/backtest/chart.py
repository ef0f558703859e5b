"""The backtest's chart: one device's metric with both rule sets' levels and alerts.

:func:`chart_data` picks what to draw (pure): the device in scope where the draft changes
the most (else where it fires the most) and the metric of the first rule the draft
changes, with each rule set's effective levels for that device (inheritance resolved)
and the would-be alerts of both as time spans. :func:`chart_svg` draws it with the
console's own SVG charts (:mod:`forewarn.web.charts`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from markupsafe import Markup

from forewarn.backtest.report import AlertDiff
from forewarn.config.schema import DeviceSettings, MonitorSettings, ThresholdMonitor
from forewarn.monitors.rules import levels_for, selects
from forewarn.ports import AlertRecord
from forewarn.telemetry.sample import STATUS_METRIC, Sample
from forewarn.web import charts

MAX_POINTS = 1800
"""Points kept in the chart data (min/max per column: spikes survive)."""


def changed_rules(
    current: Sequence[MonitorSettings], draft: Sequence[MonitorSettings]
) -> list[str]:
    """Ids of the rules the draft adds, removes or changes, in the draft's order."""
    before = {r.id: r for r in current}
    after = {r.id: r for r in draft}
    changed = [r.id for r in draft if before.get(r.id) != r]
    return changed + [i for i in before if i not in after]


def chart_data(
    current: Sequence[MonitorSettings],
    draft: Sequence[MonitorSettings],
    devices: Sequence[DeviceSettings],
    readings: Sequence[Sample],
    current_alerts: Sequence[AlertRecord],
    draft_alerts: Sequence[AlertRecord],
    diff: AlertDiff,
    start: datetime,
    end: datetime,
    scope: Collection[str],
) -> dict[str, Any] | None:
    """What to draw, as JSON-ready data; None when no rule watches a numeric metric."""
    rules = {r.id: r for r in (*current, *draft)}
    changed = changed_rules(current, draft)
    with_metric = [
        rules[i] for i in [*changed, *rules] if isinstance(getattr(rules[i], "metric", None), str)
    ]
    with_metric = [r for r in with_metric if getattr(r, "metric", "") != STATUS_METRIC]
    if not with_metric:
        return None
    rule = with_metric[0]
    metric = str(getattr(rule, "metric", ""))
    in_scope = [d for d in devices if d.id in scope and selects(rule.applies_to, d)]
    if not in_scope:
        return None
    moved = Counter(c.subject for c in (*diff.appear, *diff.disappear) if c.rule_id == rule.id)
    fired = Counter(a.subject for a in draft_alerts if a.rule_id == rule.id and a.firing_since)
    device = max(in_scope, key=lambda d: (moved[d.id], fired[d.id], -in_scope.index(d)))
    points = [(s.ts, s.value) for s in readings if s.device_id == device.id and s.metric == metric]
    shown = charts.decimate(
        [charts.Point(at, v) for at, v in points if v is not None], start, end, MAX_POINTS // 2
    )
    return {
        "device": device.id,
        "metric": metric,
        "rule": rule.id,
        "from": start.isoformat(),
        "until": end.isoformat(),
        "points": [[p.at.isoformat(), p.value] for p in shown],
        "current_levels": _levels(current, device, metric),
        "draft_levels": _levels(draft, device, metric),
        "current_alerts": _spans(current_alerts, device.id, metric, rules, end),
        "draft_alerts": _spans(draft_alerts, device.id, metric, rules, end),
    }


def _levels(
    monitors: Sequence[MonitorSettings], device: DeviceSettings, metric: str
) -> list[dict[str, Any]]:
    found = []
    for rule in monitors:
        if (
            isinstance(rule, ThresholdMonitor)
            and rule.metric == metric
            and selects(rule.applies_to, device)
        ):
            levels = levels_for(rule, device)
            level = levels.above if levels.above is not None else levels.below
            found.append(
                {
                    "rule": rule.id,
                    "level": level,
                    "direction": "above" if levels.above is not None else "below",
                    "clear": levels.clear,
                    "for": levels.hold.total_seconds(),
                }
            )
    return found


def _spans(
    alerts: Sequence[AlertRecord],
    device: str,
    metric: str,
    rules: dict[str, MonitorSettings],
    end: datetime,
) -> list[dict[str, Any]]:
    return [
        {
            "rule": a.rule_id,
            "from": a.firing_since.isoformat(),
            "until": (a.resolved_at or end).isoformat(),
        }
        for a in alerts
        if a.subject == device
        and a.firing_since is not None
        and getattr(rules.get(a.rule_id), "metric", None) == metric
    ]


def chart_svg(data: dict[str, Any]) -> Markup:
    """The chart as inline SVG: the draft's levels solid, the current dashed; the draft's
    would-be alerts shaded, the current rules' outlined."""
    start = datetime.fromisoformat(data["from"])
    end = datetime.fromisoformat(data["until"])
    points = [charts.Point(datetime.fromisoformat(at), value) for at, value in data["points"]]
    levels = [
        charts.Level(
            level["level"], f"{which} {level['rule']}: {_sign(level)} {level['level']:g}", tone
        )
        for which, tone, key in (
            ("draft", "draft", "draft_levels"),
            ("now", "current", "current_levels"),
        )
        for level in data[key]
    ]
    spans = [
        charts.Span(
            datetime.fromisoformat(span["from"]),
            datetime.fromisoformat(span["until"]),
            f"{which}: {span['rule']} {span['from'][:16]} to {span['until'][:16]}",
            tone,
        )
        for which, tone, key in (
            ("current rules", "current", "current_alerts"),
            ("draft", "draft", "draft_alerts"),
        )
        for span in data[key]
    ]
    return charts.time_series(
        points,
        start,
        end,
        title=f"{data['metric']} of {data['device']} with the draft's and the current levels",
        levels=levels,
        spans=spans,
    )


def _sign(level: dict[str, Any]) -> str:
    return ">" if level["direction"] == "above" else "<"
