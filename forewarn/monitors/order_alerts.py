"""Order rules' alerts through the one alert lifecycle (pure, over an AlertStore).

A rule that starts holding for an order fires its alert (fingerprint
``order:<rule>:<order>``) at the moment it began to hold; one that stops holding resolves
it. Order alerts are not announced to ticketing here: the delay cases act on the whole
verdict (:mod:`forewarn.ticketing.delays`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from forewarn.monitors import lifecycle
from forewarn.monitors.core import record
from forewarn.monitors.evaluate import Verdict
from forewarn.monitors.orders import Finding
from forewarn.ports import AlertStore

PREFIX = "order:"


def order_fingerprint(rule_id: str, order_id: str) -> str:
    return f"{PREFIX}{rule_id}:{order_id}"


def record_order_alerts(
    alerts: AlertStore,
    order_id: str,
    status: str,
    findings: Sequence[Finding],
    now: datetime,
    versions: Mapping[str, str],
    ticket_id: int | None = None,
) -> int:
    """Open an alert for every finding without one and resolve every open order alert
    whose rule no longer holds; returns how many alerts changed. New alerts are linked
    to ``ticket_id`` (the order's open case)."""
    open_alerts = {
        a.rule_id: a
        for a in alerts.open_alerts(subjects=[order_id])
        if a.fingerprint.startswith(PREFIX)
    }
    holding = {f.rule_id: f for f in findings}
    changed = 0
    for rule_id, alert in open_alerts.items():
        if rule_id in holding:
            continue
        verdict = Verdict("resolve", at=now, evidence={"status": status})
        record(alerts, lifecycle.apply(alert, verdict, now, version=alert.rule_version))
        changed += 1
    for rule_id, finding in holding.items():
        if rule_id in open_alerts:
            continue
        verdict = Verdict(
            "fire",
            at=finding.since,
            summary=finding.summary,
            severity=finding.severity,
            evidence=finding.evidence,
        )
        version = versions.get(rule_id, "")
        opened = lifecycle.new_alert(
            rule_id,
            version,
            order_id,
            verdict,
            fingerprint=order_fingerprint(rule_id, order_id),
            ticket_id=ticket_id,
        )
        alert = alerts.insert(opened)
        record(alerts, lifecycle.apply(alert, verdict, now, version=version, new=True))
        changed += 1
    return changed
