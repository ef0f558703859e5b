"""Deciding many alerts of one rule at once: a sweep's storm in a constant number of writes.

A scheduled sweep can change thousands of alerts in one unit of work (a regional outage:
every device of a thousand sites silent in the same 30 s). Deciding them one by one costs
a dozen statements per alert before ticketing even starts. :func:`decide_many` judges
every subject against the view, then reads what it needs for all of them at once (the
alerts to move, locked; the end of each subject's last episode; the recent changes that
say whether one is flapping), applies the pure lifecycle to each, and writes the alerts,
their history and what ticketing must hear in one call per kind
(:meth:`~forewarn.ports.AlertStore.insert_many`,
:meth:`~forewarn.ports.AlertSink.alerts_fired`, ...).

The outcome is the one :meth:`AlertCore.decide <forewarn.monitors.core.AlertCore.decide>`
would reach alert by alert: the same lifecycle and suppression rules decide, only the
reads and writes are grouped. Whatever the batch cannot settle by itself goes through
that per-alert path: an alert another worker moved since the view was read, a race to
open the same alert (the batch insert is all or nothing, in a savepoint), an escalation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from forewarn.config.schema import MonitorSettings
from forewarn.monitors import lifecycle
from forewarn.monitors.core import AlertCore, Judge, View
from forewarn.monitors.evaluate import Verdict
from forewarn.monitors.rules import fingerprint
from forewarn.ports import AlertEventRecord, AlertExists, AlertRecord, Stores

log = logging.getLogger(__name__)

SMALL = 3
"""Below this many changes the per-alert path is as quick and needs no grouping."""


def decide_many(
    core: AlertCore,
    stores: Stores,
    rule: MonitorSettings,
    judged: Sequence[tuple[str, Judge]],
    view: View,
    now: datetime,
) -> int:
    """Judge ``rule`` on each ``(subject, judge)`` and apply the verdicts; returns how many
    alerts changed (as the sum of :meth:`AlertCore.decide` over them would)."""
    acting: list[tuple[str, AlertRecord | None, Verdict, Judge]] = []
    for subject, judge in judged:
        current = view.get(fingerprint(rule.id, subject))
        verdict = judge(None if current is None else lifecycle.snapshot(current))
        if verdict.action == "none":
            continue
        if current is None and verdict.action not in ("pend", "fire"):
            continue
        acting.append((subject, current, verdict, judge))
    if len(acting) < SMALL:
        return sum(core.decide(stores, rule, s, view, now, j) for s, _, _, j in acting)

    locked = stores.alerts.lock([c.id for _, c, _, _ in acting if c is not None])
    fresh_fps = [fingerprint(rule.id, s) for s, c, _, _ in acting if c is None]
    ended = stores.alerts.last_resolved_many(fresh_fps)
    retry: list[tuple[str, Judge]] = []
    planned: list[tuple[AlertRecord, Verdict, bool]] = []
    version = core.versions[rule.id]
    for subject, current, verdict, judge in acting:
        assert verdict.at is not None
        fp = fingerprint(rule.id, subject)
        if current is not None:
            alert = locked.get(current.id)
            if (
                alert is None
                or not alert.is_open
                or lifecycle.snapshot(alert) != lifecycle.snapshot(current)
            ):
                # Moved by another worker since the view was read: judged again, alone.
                view.pop(fp, None)
                retry.append((subject, judge))
                continue
            planned.append((alert, verdict, False))
        else:
            last = ended.get(fp)
            if last is not None and verdict.at <= last:
                continue  # a late or redelivered sample from an episode already over
            planned.append((lifecycle.new_alert(rule.id, version, subject, verdict), verdict, True))

    window = core.alerting.flapping.window
    counted = [
        (a.fingerprint, v.at - window)
        for a, v, _ in planned
        if v.at is not None and lifecycle.counts_for_flapping(a, v)
    ]
    times = stores.alerts.change_times(
        [fp for fp, _ in counted], min((since for _, since in counted), default=now)
    )
    transitions: list[tuple[lifecycle.Transition, bool]] = []
    for alert, verdict, new in planned:
        flapping = False
        if verdict.at is not None and lifecycle.counts_for_flapping(alert, verdict):
            since = verdict.at - window
            recent = sum(1 for t in times.get(alert.fingerprint, ()) if t > since)
            flapping = lifecycle.flaps(recent, core.alerting.flapping)
        transitions.append(
            (lifecycle.apply(alert, verdict, now, version=version, new=new, flapping=flapping), new)
        )

    try:
        inserted = stores.alerts.insert_many([t.alert for t, new in transitions if new])
    except AlertExists:
        # Another worker opened one of them first: the insert wrote nothing, so every new
        # one goes through the per-alert path, which re-reads and joins the winner.
        inserted = []
        retry.extend(
            (t.alert.subject, j)
            for (t, new), j in zip(transitions, _judges(planned, acting), strict=True)
            if new
        )
        transitions = [(t, new) for t, new in transitions if not new]
    ids = iter(inserted)
    stored: list[lifecycle.Transition] = []
    updated: list[AlertRecord] = []
    for transition, new in transitions:
        if new:
            transition = replace(transition, alert=next(ids))
        else:
            updated.append(transition.alert)
        stored.append(transition)
    stores.alerts.update_many(updated)
    stores.alerts.add_events(
        [
            AlertEventRecord(
                t.alert.id, c.at, c.from_state, c.to_state, t.alert.rule_version, c.evidence
            )
            for t in stored
            for c in t.changes
        ]
    )
    core.writes += len(stored)
    changed = sum(int(t.changed) for t in stored)
    results = _effects(core, stores, rule, stored, now)
    for alert in results:
        if alert.is_open:
            view[alert.fingerprint] = alert
        else:
            view.pop(alert.fingerprint, None)
    log.info("rule %s: %d alert(s) changed in one batch", rule.id, changed)
    for subject, judge in retry:
        changed += core.decide(stores, rule, subject, view, now, judge)
    return changed


def _judges(
    planned: Sequence[tuple[AlertRecord, Verdict, bool]],
    acting: Sequence[tuple[str, AlertRecord | None, Verdict, Judge]],
) -> list[Judge]:
    """The judge of each planned alert, in the plan's order."""
    by_subject = {s: j for s, _, _, j in acting}
    return [by_subject[a.subject] for a, _, _ in planned]


def _effects(
    core: AlertCore,
    stores: Stores,
    rule: MonitorSettings,
    stored: Sequence[lifecycle.Transition],
    now: datetime,
) -> list[AlertRecord]:
    """Tell ticketing what the transitions mean for it (see :meth:`AlertCore.write`);
    returns every alert as it now is."""
    final = {t.alert.id: t.alert for t in stored}
    if not rule.notify:
        return list(final.values())
    announce = [t.alert for t in stored if t.effect == "announce" and t.alert.notified_at is None]
    for alert in announce_many(core, stores, announce, now):
        final[alert.id] = alert
    retire = [t.alert for t in stored if t.effect == "retire" and t.alert.notified_at is not None]
    if retire:
        stores.sink.alerts_resolved(retire, now)
    for t in stored:
        if t.effect == "escalate" and t.alert.notified_at is not None:
            escalated = stores.sink.alert_escalated(t.alert, now)
            stores.alerts.update(escalated)
            final[escalated.id] = escalated
    return list(final.values())


def announce_many(
    core: AlertCore, stores: Stores, alerts: Sequence[AlertRecord], now: datetime
) -> list[AlertRecord]:
    """:meth:`AlertCore.announce` for many firing alerts: the silences, inhibition sources
    and work orders are read once, ticketing hears the announced ones in one call."""
    if not alerts:
        return []
    silences = core.silences(stores, now)
    work = stores.sink.work_orders([a.subject for a in alerts])
    inhibitors = core.inhibitors(stores, alerts)
    done: list[AlertRecord] = []
    told: list[AlertRecord] = []
    for alert in alerts:
        if alert.state == "flapping":
            done.append(replace(alert, suppressed_by="flapping"))
            continue
        core.writes += 1
        reason = core.reason_held(
            stores,
            alert,
            now,
            silences=silences,
            inhibitor=inhibitors.get(alert.id),
            work_order=work.get(alert.subject),
        )
        alert = replace(alert, suppressed_by=reason)
        if lifecycle.held(reason):
            done.append(alert)
        else:
            told.append(alert)
    if len(done) != 0:
        log.info("%d alert(s) held (silence, inhibition or flapping)", len(done))
    fired = stores.sink.alerts_fired(told, now) if told else []
    done.extend(replace(a, notified_at=now) for a in fired)
    stores.alerts.update_many(done)
    inhibited = [a for a in done if a.suppressed_by and a.suppressed_by.startswith("inhibited:")]
    if inhibited:
        # The cause's ticket lists the devices it explains (one incident per site).
        stores.sink.alerts_explained(inhibited, now)
    return done
