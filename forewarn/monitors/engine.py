"""Running the monitors against the store: event-driven on ingest, scheduled for silence.

The pure evaluators in :mod:`forewarn.monitors.evaluate` decide; this module turns their
verdicts into alert rows (one open alert per fingerprint, every change an ``alert_events``
row with its evidence) and tells the :class:`AlertSink` (ticketing) inside the same
transaction, so an alert, its ticket and its outbox rows commit together or not at all.

Open alerts are cached in memory so that the common case -- a normal reading with no open
alert -- costs no query. Changes are staged per session and reach the cache only after
the transaction commits; a rollback discards them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import ColumnElement, event, exists, func, literal, select
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from forewarn.config.schema import MonitorSettings, OfflineMonitor, Settings
from forewarn.monitors.evaluate import (
    OpenAlert,
    State,
    Verdict,
    evaluate_fault_code,
    evaluate_offline,
    evaluate_threshold,
)
from forewarn.monitors.rules import DeviceRules, compile_rules, fingerprint, rule_version
from forewarn.store.models import Alert, AlertEvent, Device
from forewarn.telemetry.sample import STATUS_METRIC, Sample

log = logging.getLogger(__name__)

_STAGED = "forewarn.monitors.staged"
_SAVEPOINTS = "forewarn.monitors.savepoints"


class AlertSink(Protocol):
    """Who is told when an alert starts or stops firing (ticketing), in the same session."""

    def alert_fired(self, session: Session, alert: Alert, now: datetime) -> None: ...

    def alert_resolved(self, session: Session, alert: Alert, now: datetime) -> None: ...


class Monitors:
    """All configured monitors, compiled per device."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], sink: AlertSink
    ) -> None:
        self._sessions = sessions
        self._sink = sink
        self._rules: dict[str, MonitorSettings] = {m.id: m for m in settings.monitors}
        self._versions = {m.id: rule_version(m) for m in settings.monitors}
        self._by_device: dict[str, DeviceRules] = compile_rules(settings.monitors, settings.devices)
        self._offline_rules = [m for m in settings.monitors if isinstance(m, OfflineMonitor)]
        self._open: dict[str, tuple[int, OpenAlert]] = {}
        self._lock = threading.Lock()
        _listen_for_commits(sessions, self)

    def load(self) -> None:
        """Read the open alerts from the store (at start-up; the store is the truth)."""
        with self._sessions() as session:
            rows = session.scalars(select(Alert).where(Alert.open_fingerprint.is_not(None)))
            cache = {a.fingerprint: (a.id, _snapshot(a)) for a in rows if a.state != "resolved"}
        with self._lock:
            self._open = cache

    # -- event-driven ------------------------------------------------------------------

    def on_samples(self, session: Session, samples: Sequence[Sample], now: datetime) -> None:
        """Evaluate freshly stored samples; called inside the ingest transaction."""
        for sample in sorted(samples, key=lambda s: s.ts):
            if sample.stale:
                continue
            rules = self._by_device.get(sample.device_id)
            if rules is None:
                continue
            if sample.metric == STATUS_METRIC:
                for fault_rule in rules.fault_codes:
                    fp = fingerprint(fault_rule.id, sample.device_id)
                    current = self._current(session, fp)
                    verdict = evaluate_fault_code(fault_rule, sample, current)
                    self._apply(session, fault_rule, sample.device_id, fp, verdict, now)
            else:
                for rule, levels in rules.thresholds.get(sample.metric, ()):
                    fp = fingerprint(rule.id, sample.device_id)
                    current = self._current(session, fp)
                    verdict = evaluate_threshold(rule, levels, sample, current)
                    self._apply(session, rule, sample.device_id, fp, verdict, now)
            for offline_rule in rules.offline:
                fp = fingerprint(offline_rule.id, sample.device_id)
                current = self._current(session, fp)
                if current is not None:
                    verdict = evaluate_offline(offline_rule, sample.ts, current, now)
                    self._apply(session, offline_rule, sample.device_id, fp, verdict, now)

    # -- scheduled ---------------------------------------------------------------------

    def sweep_offline(self, now: datetime) -> int:
        """Fire offline alerts for silent devices and resolve those reporting again.

        One set-based query per offline rule, never a loop over every device. Returns the
        number of alerts changed.
        """
        changed = 0
        for rule in self._offline_rules:
            with self._sessions.begin() as session:
                changed += self._sweep_rule(session, rule, now)
        return changed

    def _sweep_rule(self, session: Session, rule: OfflineMonitor, now: datetime) -> int:
        last_seen = func.coalesce(Device.last_seen_at, Device.registered_at)
        open_fp = literal(f"{rule.id}:") + Device.id
        has_open = exists().where(Alert.open_fingerprint == open_fp)
        scope = _scope(rule)
        silent = session.execute(
            select(Device.id, last_seen).where(last_seen < now - rule.after, ~has_open, *scope)
        ).all()
        back = session.execute(
            select(Device.id, last_seen).where(last_seen >= now - rule.after, has_open, *scope)
        ).all()
        for device_id, seen in [*silent, *back]:
            fp = fingerprint(rule.id, device_id)
            current = self._current(session, fp, refresh=True)
            verdict = evaluate_offline(rule, seen, current, now)
            self._apply(session, rule, device_id, fp, verdict, now)
        return len(silent) + len(back)

    # -- alert rows --------------------------------------------------------------------

    def _current(self, session: Session, fp: str, *, refresh: bool = False) -> OpenAlert | None:
        staged: dict[str, tuple[int, OpenAlert] | None] = session.info.get(_STAGED, {})
        if fp in staged:
            entry = staged[fp]
            return entry[1] if entry else None
        if refresh:
            alert = session.scalar(select(Alert).where(Alert.open_fingerprint == fp))
            return _snapshot(alert) if alert is not None else None
        with self._lock:
            cached = self._open.get(fp)
        return cached[1] if cached else None

    def _alert_id(self, session: Session, fp: str) -> int | None:
        staged: dict[str, tuple[int, OpenAlert] | None] = session.info.get(_STAGED, {})
        if fp in staged:
            entry = staged[fp]
            return entry[0] if entry else None
        with self._lock:
            cached = self._open.get(fp)
        if cached:
            return cached[0]
        return session.scalar(select(Alert.id).where(Alert.open_fingerprint == fp))

    def _apply(
        self,
        session: Session,
        rule: MonitorSettings,
        subject: str,
        fp: str,
        verdict: Verdict,
        now: datetime,
    ) -> None:
        if verdict.action == "none":
            return
        assert verdict.at is not None
        version = self._versions[rule.id]
        alert_id = self._alert_id(session, fp)
        alert = session.get(Alert, alert_id) if alert_id is not None else None
        if alert is not None and alert.open_fingerprint is None:
            # Our cache was stale: another worker resolved it. A resolved alert is history;
            # reviving it would fire without an open_fingerprint, i.e. again on every sweep.
            session.info.setdefault(_STAGED, {})[fp] = None
            alert = None
        previous = alert.state if alert is not None else None
        if alert is None:
            if verdict.action not in ("pend", "fire"):
                return
            if _episode_ended_after(session, fp, verdict.at):
                return  # a late or redelivered sample from an episode already over
            alert = Alert(
                fingerprint=fp,
                open_fingerprint=fp,
                rule_id=rule.id,
                rule_version=version,
                subject=subject,
                state="pending",
                severity=verdict.severity,
                summary=verdict.summary,
                suggested_fix=verdict.suggested_fix,
                pending_since=verdict.at,
                last_value=verdict.value,
                evidence=verdict.evidence,
            )
            session.add(alert)
        alert.rule_version = version
        alert.summary = verdict.summary or alert.summary
        alert.last_value = verdict.value
        alert.evidence = verdict.evidence
        if verdict.action == "fire":
            alert.state = "firing"
            alert.severity = verdict.severity
            alert.firing_since = verdict.at
            alert.suggested_fix = verdict.suggested_fix or alert.suggested_fix
        elif verdict.action in ("resolve", "cancel"):
            alert.state = "resolved"
            alert.open_fingerprint = None
            alert.resolved_at = verdict.at
        session.flush()
        session.add(
            AlertEvent(
                alert_id=alert.id,
                at=verdict.at,
                from_state=previous,
                to_state=alert.state,
                rule_version=version,
                evidence={
                    **verdict.evidence,
                    "summary": verdict.summary,
                    "decided_at": now.isoformat(),
                },
            )
        )
        staged = session.info.setdefault(_STAGED, {})
        staged[fp] = None if alert.state == "resolved" else (alert.id, _snapshot(alert, verdict.at))
        log.info("alert %s %s -> %s: %s", fp, previous or "new", alert.state, verdict.summary)
        if not rule.notify:
            return
        if verdict.action == "fire":
            self._sink.alert_fired(session, alert, now)
        elif verdict.action == "resolve":
            self._sink.alert_resolved(session, alert, now)

    def _committed(self, staged: dict[str, tuple[int, OpenAlert] | None]) -> None:
        with self._lock:
            for fp, entry in staged.items():
                if entry is None:
                    self._open.pop(fp, None)
                else:
                    self._open[fp] = entry


def _episode_ended_after(session: Session, fp: str, at: datetime) -> bool:
    """Whether an episode of ``fp`` was resolved at or after ``at``.

    The evaluators ignore samples older than the open alert's last one; once the alert is
    resolved, this keeps an old sample from opening a new episode in the past.
    """
    ended = session.scalar(select(func.max(Alert.resolved_at)).where(Alert.fingerprint == fp))
    return ended is not None and at <= ended


def _snapshot(alert: Alert, last_ts: datetime | None = None) -> OpenAlert:
    state: State = "firing" if alert.state == "firing" else "pending"
    moved = last_ts or alert.firing_since or alert.pending_since
    return OpenAlert(state=state, pending_since=alert.pending_since, last_ts=moved)


def _scope(rule: OfflineMonitor) -> list[ColumnElement[bool]]:
    selector = rule.applies_to
    clauses: list[ColumnElement[bool]] = []
    if selector.kinds:
        clauses.append(Device.kind.in_(selector.kinds))
    if selector.models:
        clauses.append(Device.model.in_(selector.models))
    if selector.sites:
        clauses.append(Device.site_id.in_(selector.sites))
    if selector.devices:
        clauses.append(Device.id.in_(selector.devices))
    return clauses


def _listen_for_commits(sessions: sessionmaker[Session], monitors: Monitors) -> None:
    # SQLAlchemy's after_commit and after_rollback also fire when a savepoint is released
    # or rolled back (ticketing and the ingester use savepoints): only the outermost
    # commit publishes to the cache, and a rolled-back savepoint drops exactly what was
    # staged inside it.

    @event.listens_for(sessions, "after_transaction_create")
    def _after_savepoint(session: Session, transaction: SessionTransaction) -> None:
        if transaction.nested:
            marks = session.info.setdefault(_SAVEPOINTS, {})
            marks[transaction] = dict(session.info.get(_STAGED, {}))

    @event.listens_for(sessions, "after_commit")
    def _after_commit(session: Session) -> None:
        if session.in_nested_transaction():
            return
        session.info.pop(_SAVEPOINTS, None)
        staged = session.info.pop(_STAGED, None)
        if staged:
            monitors._committed(staged)

    @event.listens_for(sessions, "after_soft_rollback")
    def _after_rollback(session: Session, previous: SessionTransaction) -> None:
        if previous.nested:
            mark = session.info.get(_SAVEPOINTS, {}).pop(previous, None)
            if mark is not None:
                session.info[_STAGED] = mark
            return
        session.info.pop(_SAVEPOINTS, None)
        session.info.pop(_STAGED, None)
