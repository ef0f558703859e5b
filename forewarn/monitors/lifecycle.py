"""The alert lifecycle as pure functions: (open alert, verdict, now) -> transition.

No store, no clock: whoever calls reads the alert, asks what happens, and writes the
result (:mod:`forewarn.monitors.core` does, over :mod:`forewarn.ports`). Device rules and
order rules both go through :func:`apply`.

* pending -> firing -> resolved; a pending alert whose condition goes away is cancelled
  (resolved without ever firing).
* ``flapping``: a subject that changed state ``alerting.flapping.changes`` times within
  the window stays open in state ``flapping`` (its ``condition`` follows the rule) until
  it has kept one condition for ``settle``; then it resolves once, or fires.
* an alert that fires while silenced, inhibited or flapping records ``suppressed_by`` and
  is not handed to ticketing (``notified_at`` stays None); the sweep announces it if it
  is still firing once the reason has gone. Only an announced alert's resolution reaches
  ticketing: every notice has one resolution.
* while the device's ticket is being worked, a new alert still goes to ticketing (which
  attaches it, notifying nobody) and records ``work_order:<ticket>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from forewarn.config.schema import DeviceSettings, FlappingSettings
from forewarn.monitors.evaluate import OpenAlert, Verdict
from forewarn.monitors.silences import Silence
from forewarn.ports import AlertRecord

Effect = Literal["announce", "retire", "escalate"]
"""What ticketing must hear: a firing alert, a resolved one, or a raised severity."""


@dataclass(frozen=True)
class Change:
    """One row of an alert's history (``alert_events``)."""

    at: datetime
    from_state: str | None
    to_state: str
    evidence: Mapping[str, Any]


@dataclass(frozen=True)
class Transition:
    """What a verdict does to an alert: its new state, the history rows to write, whether
    it counts as a change, and what ticketing must hear."""

    alert: AlertRecord
    changes: tuple[Change, ...] = ()
    changed: bool = False
    effect: Effect | None = None


def snapshot(alert: AlertRecord) -> OpenAlert | None:
    """What the evaluator sees of an open alert; None for a flapping alert whose rule
    currently says "clear"."""
    last = alert.last_ts or alert.firing_since or alert.pending_since
    if alert.state == "flapping":
        if alert.condition == "clear":
            return None
        if alert.condition == "pending":
            since = alert.condition_since or alert.pending_since
            return OpenAlert("pending", since, last, max(alert.breaches, 1))
        return OpenAlert(
            "firing",
            alert.pending_since,
            last,
            clearing_since=alert.clearing_since,
            severity=alert.severity,
        )
    state: Literal["pending", "firing"] = "firing" if alert.state == "firing" else "pending"
    return OpenAlert(
        state,
        alert.pending_since,
        last,
        max(alert.breaches, 1),
        alert.clearing_since,
        alert.severity,
    )


def new_alert(
    rule_id: str,
    version: str,
    subject: str,
    verdict: Verdict,
    *,
    fingerprint: str | None = None,
    ticket_id: int | None = None,
) -> AlertRecord:
    """The pending alert a ``pend`` or ``fire`` verdict opens (before :func:`apply`)."""
    assert verdict.at is not None
    return AlertRecord(
        fingerprint=fingerprint or f"{rule_id}:{subject}",
        ticket_id=ticket_id,
        rule_id=rule_id,
        rule_version=version,
        subject=subject,
        state="pending",
        severity=verdict.severity,
        summary=verdict.summary,
        suggested_fix=verdict.suggested_fix,
        pending_since=verdict.at,
        last_ts=verdict.at,
        breaches=verdict.breaches,
        last_value=verdict.value,
        evidence=dict(verdict.evidence),
    )


def counts_for_flapping(alert: AlertRecord, verdict: Verdict) -> bool:
    """Whether :func:`apply` needs the recent change count to decide (a fire, or a
    resolution of a firing alert)."""
    if alert.state == "flapping":
        return False
    return verdict.action == "fire" or (verdict.action == "resolve" and alert.state == "firing")


def flaps(recent_changes: int, settings: FlappingSettings) -> bool:
    """Whether one more change makes the subject flap: counting it, the changes within
    the window reach the limit."""
    return recent_changes + 1 >= settings.changes


def apply(
    alert: AlertRecord,
    verdict: Verdict,
    now: datetime,
    *,
    version: str,
    new: bool = False,
    flapping: bool = False,
) -> Transition:
    """Apply ``verdict`` to an open ``alert`` (``new``: just opened by :func:`new_alert`).
    ``flapping``: this change makes it flap (see :func:`counts_for_flapping`)."""
    assert verdict.at is not None
    at = verdict.at
    if alert.state == "flapping":
        return _apply_flapping(alert, verdict, now)
    previous = None if new else alert.state
    # One dict of changes and one ``replace``: a backtest applies millions of these.
    fields: dict[str, Any] = {
        "last_ts": max(alert.last_ts or at, at),
        "breaches": verdict.breaches,
        "clearing_since": verdict.clearing_since,
    }
    if verdict.action == "progress":
        return Transition(replace(alert, **fields))
    if verdict.evidence.get("fired_by") == "timer":
        # The timer knows only that the hold has passed: what the reading that opened the
        # alert said (a forecast's "in about 4 h", a band's levels) stays its evidence.
        fields.update(
            rule_version=version,
            evidence={**alert.evidence, **verdict.evidence},
        )
    else:
        fields.update(
            rule_version=version,
            summary=verdict.summary or alert.summary,
            last_value=verdict.value,
            evidence=dict(verdict.evidence),
        )
    if verdict.action in ("fire", "escalate"):
        fields.update(
            severity=verdict.severity,
            suggested_fix=verdict.suggested_fix or alert.suggested_fix,
        )
    if verdict.action == "fire":
        fields.update(state="firing", firing_since=at)
        if flapping:
            fields.update(_flapping_fields(alert, "firing", at))
    elif verdict.action == "resolve" and previous == "firing":
        fields.update(_flapping_fields(alert, "clear", at) if flapping else _closed(at))
    elif verdict.action in ("resolve", "cancel"):
        fields.update(_closed(at))
    moved = replace(alert, **fields)
    change = Change(
        at,
        previous,
        moved.state,
        {**verdict.evidence, "summary": verdict.summary, "decided_at": now.isoformat()},
    )
    effect: Effect | None = None
    if moved.state == "firing" and previous != "firing":
        effect = "announce"
    elif moved.state == "resolved" and previous == "firing":
        effect = "retire"
    elif verdict.action == "escalate":
        effect = "escalate"
    return Transition(moved, (change,), True, effect)


def _apply_flapping(alert: AlertRecord, verdict: Verdict, now: datetime) -> Transition:
    """A flapping alert follows its rule in ``condition`` and stays open."""
    assert verdict.at is not None
    at = verdict.at
    moved = replace(
        alert,
        last_ts=max(alert.last_ts or at, at),
        breaches=verdict.breaches,
        clearing_since=verdict.clearing_since,
    )
    if verdict.action == "pend":
        moved = replace(moved, condition="pending", condition_since=at)
    elif verdict.action == "fire":
        moved = replace(moved, condition="firing", condition_since=at, severity=verdict.severity)
    elif verdict.action in ("resolve", "cancel"):
        moved = replace(moved, condition="clear", condition_since=at)
    changes: tuple[Change, ...] = ()
    if verdict.action in ("fire", "resolve"):
        moved = replace(
            moved,
            summary=verdict.summary or alert.summary,
            last_value=verdict.value,
            evidence=dict(verdict.evidence),
        )
        evidence = {
            **verdict.evidence,
            "condition": moved.condition,
            "summary": verdict.summary,
            "decided_at": now.isoformat(),
        }
        changes = (Change(at, "flapping", "flapping", evidence),)
    return Transition(moved, changes, moved.condition != alert.condition)


def settled(alert: AlertRecord, now: datetime, settings: FlappingSettings) -> bool:
    """Whether a flapping alert has kept one condition (firing or clear) for ``settle``."""
    return (
        alert.state == "flapping"
        and alert.condition in ("firing", "clear")
        and alert.condition_since is not None
        and alert.condition_since <= now - settings.settle
    )


def settle(alert: AlertRecord, now: datetime) -> Transition:
    """A flapping alert kept one condition for ``settle``: it ends, exactly once."""
    assert alert.condition_since is not None
    at = alert.condition_since
    effect: Effect
    if alert.condition == "clear":
        moved = _close(alert, at)
        summary, effect = "settled: back to normal", "retire"
    else:
        moved = replace(
            alert,
            state="firing",
            condition=None,
            condition_since=None,
            suppressed_by=None if alert.notified_at is not None else alert.suppressed_by,
        )
        summary, effect = "settled: still firing", "announce"
    change = Change(
        at, "flapping", moved.state, {"summary": summary, "decided_at": now.isoformat()}
    )
    return Transition(moved, (change,), True, effect)


def acknowledgement(alert: AlertRecord, by: str, note: str, now: datetime) -> Change:
    """The history row of an acknowledgement (the state does not change)."""
    evidence = {"acknowledged_by": by, "note": note, "decided_at": now.isoformat()}
    return Change(now, alert.state, alert.state, evidence)


def suppression(
    device: DeviceSettings,
    rule_id: str,
    silences: Iterable[Silence],
    site_zone: str,
    now: datetime,
    *,
    inhibitor: str | None,
    work_order: int | None,
) -> str | None:
    """Why a firing alert of ``rule_id`` on ``device`` is held, if it is: an active silence,
    a firing inhibition source, or the device's ticket being worked (``work_order:``,
    which still reaches ticketing but notifies nobody)."""
    for silence in silences:
        if silence.matches(device, rule_id) and silence.active_at(now, silence.zone(site_zone)):
            return f"silence:{silence.id}"
    if inhibitor is not None:
        return f"inhibited:{inhibitor}"
    return f"work_order:{work_order}" if work_order is not None else None


AWAITING = "confirmation:"
"""Prefix of the reason an alert waits for its ``requires`` rule to agree."""


def held(reason: str | None) -> bool:
    """Whether a suppression reason keeps the alert from ticketing."""
    return reason is not None and not reason.startswith("work_order:")


def _flapping_fields(alert: AlertRecord, condition: str, at: datetime) -> dict[str, Any]:
    return {
        "state": "flapping",
        "condition": condition,
        "condition_since": at,
        "suppressed_by": "flapping" if alert.notified_at is None else alert.suppressed_by,
    }


def _closed(at: datetime) -> dict[str, Any]:
    return {"state": "resolved", "resolved_at": at, "condition": None, "condition_since": None}


def _close(alert: AlertRecord, at: datetime) -> AlertRecord:
    return replace(alert, **_closed(at))
