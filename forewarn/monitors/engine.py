"""Running the monitors against the store: event-driven on ingest, scheduled for time.

The pure evaluators in :mod:`forewarn.monitors.evaluate` decide; this module turns their
verdicts into alert rows (one open alert per fingerprint, every change an ``alert_events``
row with its evidence) and tells the :class:`AlertSink` (ticketing) inside the same
transaction, so an alert, its ticket and its outbox rows commit together or not at all.

The store is the truth, not a process's memory: each ingest batch reads the open alerts
of its devices in one query, so any worker can resolve an alert another worker opened,
and two workers firing the same alert at once meet at the unique ``open_fingerprint``
(the loser's insert fails inside a savepoint; it re-reads the winner and judges again,
keeping every other decision of its batch).

The lifecycle beyond pending -> firing -> resolved:

* ``flapping``: a subject that changed state ``alerting.flapping.changes`` times within the
  window stays open in state ``flapping`` (its ``condition`` follows the rule) until it
  has kept one condition for ``settle``; then it resolves once, or fires.
* an alert that fires while silenced, inhibited or flapping is recorded with
  ``suppressed_by`` and is not handed to ticketing (``notified_at`` stays NULL); the
  scheduled sweep announces it if it is still firing once the reason has gone. Only an
  announced alert's resolution reaches ticketing: every notice has one resolution.
* while the device's ticket is being worked, a new alert still goes to ticketing (which
  attaches it, notifying nobody) and records ``work_order:<ticket>``.

Scheduled checks (:meth:`Monitors.sweep`, leader only) are set-based queries: offline and
absence timers, pending timers, resolution from the latest readings, fleet-peer
deviation, flapping that settled and suppressions that ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import (
    DeviceSettings,
    DriftMonitor,
    MonitorSettings,
    OfflineMonitor,
    PeerMonitor,
    RateMonitor,
    Selector,
    Settings,
    SilenceSettings,
    ThresholdMonitor,
)
from forewarn.monitors.evaluate import (
    Average,
    OpenAlert,
    Verdict,
    evaluate_drift,
    evaluate_due,
    evaluate_fault_code,
    evaluate_offline,
    evaluate_peer,
    evaluate_rate,
    evaluate_threshold,
)
from forewarn.monitors.rules import DeviceRules, compile_rules, fingerprint, rule_version
from forewarn.monitors.silences import Silence, SilenceStatus, silence_report
from forewarn.store.alerting import LatestReading
from forewarn.store.alerting import Silence as SilenceRow
from forewarn.store.models import (
    Alert,
    AlertEvent,
    Device,
    Reading,
    Ticket,
    postgresql_quoted,
    postgresql_text_array,
    sqlite_time,
)
from forewarn.store.peers import peer_readings
from forewarn.telemetry.sample import STATUS_METRIC, Sample

log = logging.getLogger(__name__)

_Entry = tuple[int, OpenAlert | None]
View = dict[str, _Entry]
"""fingerprint -> (open alert id, what the evaluator sees); absent: no open alert."""
Judge = Callable[[OpenAlert | None], Verdict]
_CHUNK = 500
"""Ids per ``IN (...)`` list (well under every driver's parameter limit)."""
_SQLITE_UPSERT_LATEST = (
    "INSERT INTO latest_readings (device_id, metric, ts, value, code) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (device_id, metric) DO UPDATE SET ts = excluded.ts, value = excluded.value, "
    "code = excluded.code WHERE latest_readings.ts < excluded.ts"
)
_POSTGRESQL_UPSERT_LATEST = (
    "INSERT INTO latest_readings (device_id, metric, ts, value, code) "
    "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::timestamptz[], %s::float8[], "
    "%s::varchar[]) "
    "ON CONFLICT (device_id, metric) DO UPDATE SET ts = excluded.ts, value = excluded.value, "
    "code = excluded.code WHERE latest_readings.ts < excluded.ts"
)


class AlertSink(Protocol):
    """Who is told when an alert starts or stops firing (ticketing), in the same session.

    ``alert_fired`` is called once per alert when it is announced (not while silenced,
    inhibited or flapping); ``alert_resolved`` only for an alert that was announced.
    """

    def alert_fired(self, session: Session, alert: Alert, now: datetime) -> None: ...

    def alert_resolved(self, session: Session, alert: Alert, now: datetime) -> None: ...


class _Moved(Exception):
    """Another worker changed the alert between our read and our write: read it again."""


@dataclass(frozen=True)
class SweepReport:
    """How many alerts one scheduled sweep changed, by check."""

    offline: int = 0
    pending: int = 0
    peers: int = 0
    lifecycle: int = 0

    @property
    def total(self) -> int:
        return self.offline + self.pending + self.peers + self.lifecycle


class Monitors:
    """All configured monitors, compiled per device."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], sink: AlertSink
    ) -> None:
        self._sessions = sessions
        self._sink = sink
        self._alerting = settings.alerting
        self._rules: dict[str, MonitorSettings] = {m.id: m for m in settings.monitors}
        self._versions = {m.id: rule_version(m) for m in settings.monitors}
        self._by_device: dict[str, DeviceRules] = compile_rules(settings.monitors, settings.devices)
        self._devices = {d.id: d for d in settings.devices}
        self._fleet = settings.devices
        self._site_zones = {s.id: s.timezone for s in settings.sites}
        self._sources = {i.source_rule for i in settings.alerting.inhibit}
        # Inhibition sources first, so a gateway's alarm exists before its devices' do.
        self._offline_rules = sorted(
            (m for m in settings.monitors if isinstance(m, OfflineMonitor)),
            key=lambda m: m.id not in self._sources,
        )
        self._timed_rules = [
            m
            for m in settings.monitors
            if isinstance(m, ThresholdMonitor | RateMonitor | DriftMonitor)
        ]
        self._peer_rules = [m for m in settings.monitors if isinstance(m, PeerMonitor)]
        self._config_silences = [Silence.from_settings(s) for s in settings.alerting.silences]

    def load(self) -> None:
        """Check the configured silences at start-up: one that matches nothing is a typo."""
        for status in silence_report(
            self._config_silences, self._fleet, self._site_zones, _epoch(), timedelta(0)
        ):
            if status.matches_nothing:
                log.warning("silence %s matches no device", status.silence.id)

    # -- event-driven ------------------------------------------------------------------

    def on_samples(self, session: Session, samples: Sequence[Sample], now: datetime) -> None:
        """Evaluate freshly stored samples; called inside the ingest transaction.

        Stale samples (retained, replayed, too old) are stored history: they never fire
        or clear a rule, and do not move the latest readings either.
        """
        fresh = sorted(
            (s for s in samples if not s.stale and s.device_id in self._by_device),
            key=lambda s: s.ts,
        )
        if not fresh:
            return
        self._record_latest(session, fresh)
        view = self._open_alerts(session, {s.device_id for s in fresh})
        histories = self._histories(session, fresh)
        for sample in fresh:
            rules = self._by_device[sample.device_id]
            device = sample.device_id
            if sample.metric == STATUS_METRIC:
                for fault_rule in rules.fault_codes:
                    judge: Judge = partial(evaluate_fault_code, fault_rule, sample)
                    self._decide(session, fault_rule, device, view, now, judge)
            else:
                for rule, levels in rules.thresholds.get(sample.metric, ()):
                    judge = partial(evaluate_threshold, rule, levels, sample)
                    self._decide(session, rule, device, view, now, judge)
                for rate_rule in rules.rates.get(sample.metric, ()):
                    history = histories.get((device, sample.metric), [])
                    points = [p for p in history if p[0] <= sample.ts]
                    judge = partial(evaluate_rate, rate_rule, points, sample)
                    self._decide(session, rate_rule, device, view, now, judge)
                for drift_rule in rules.drifts.get(sample.metric, ()):
                    recent, baseline = _averages(session, drift_rule, sample)
                    judge = partial(evaluate_drift, drift_rule, recent, baseline, sample)
                    self._decide(session, drift_rule, device, view, now, judge)
            for offline_rule in rules.offline:
                if offline_rule.metric is not None and offline_rule.metric != sample.metric:
                    continue
                if fingerprint(offline_rule.id, device) in view:
                    judge = partial(evaluate_offline, offline_rule, sample.ts, now=now)
                    self._decide(session, offline_rule, device, view, now, judge)

    def _record_latest(self, session: Session, fresh: Sequence[Sample]) -> None:
        newest: dict[tuple[str, str], Sample] = {}
        for sample in fresh:
            if sample.metric not in self._by_device[sample.device_id].tracked:
                continue
            key = (sample.device_id, sample.metric)
            if key not in newest or newest[key].ts < sample.ts:
                newest[key] = sample
        if not newest:
            return
        ordered = sorted(newest.items())  # one lock order for every worker
        connection = session.connection()
        if connection.dialect.name == "sqlite":
            # To the driver directly, as the ingester writes readings: SQLAlchemy's
            # per-value bind processing was most of this statement's cost.
            texts: dict[datetime, str] = {}  # the samples of one message share their ts
            rows = []
            for (d, m), s in ordered:
                text = texts.get(s.ts)
                if text is None:
                    text = texts[s.ts] = sqlite_time(s.ts)
                rows.append((d, m, text, s.value, s.code))
            connection.exec_driver_sql(_SQLITE_UPSERT_LATEST, rows)
            return
        # One statement of column arrays (as the ingester writes readings): executemany
        # through SQLAlchemy and psycopg cost ~35 µs per row in per-value adaptation.
        connection.exec_driver_sql(
            _POSTGRESQL_UPSERT_LATEST,
            (
                postgresql_text_array([d for (d, _), _ in ordered]),
                postgresql_text_array([m for (_, m), _ in ordered]),
                "{" + ",".join([s.ts.isoformat() for _, s in ordered]) + "}",
                "{"
                + ",".join(["NULL" if s.value is None else repr(s.value) for _, s in ordered])
                + "}",
                "{" + ",".join([postgresql_quoted(s.code) for _, s in ordered]) + "}",
            ),
        )

    def _histories(
        self, session: Session, fresh: Sequence[Sample]
    ) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        """Readings in the rate rules' windows, one query per device and metric."""
        spans: dict[tuple[str, str], tuple[datetime, datetime, timedelta]] = {}
        for sample in fresh:
            rates = self._by_device[sample.device_id].rates.get(sample.metric, ())
            if not rates:
                continue
            window = max(r.window for r in rates)
            key = (sample.device_id, sample.metric)
            low, high, _ = spans.get(key, (sample.ts, sample.ts, window))
            spans[key] = (min(low, sample.ts), max(high, sample.ts), window)
        histories: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
        for (device, metric), (low, high, window) in spans.items():
            rows = session.execute(
                select(Reading.ts, Reading.value)
                .where(
                    Reading.device_id == device,
                    Reading.metric == metric,
                    Reading.ts >= low - window,
                    Reading.ts <= high,
                    Reading.stale.is_(False),
                    Reading.value.is_not(None),
                )
                .order_by(Reading.ts)
            ).all()
            histories[(device, metric)] = [(ts, v) for ts, v in rows if v is not None]
        return histories

    # -- scheduled ---------------------------------------------------------------------

    def sweep(self, now: datetime, *, peers: bool = True) -> SweepReport:
        """Every scheduled check, each rule in its own transaction.

        ``peers=False`` leaves out the fleet-peer comparison, which the service runs on its
        own, slower interval (``scheduler.peer_check_interval``): it reads every device's
        latest reading, where the other checks read only timers and open alerts.
        """
        return SweepReport(
            offline=self.sweep_offline(now),
            pending=self.sweep_pending(now),
            peers=self.sweep_peers(now) if peers else 0,
            lifecycle=self.sweep_lifecycle(now),
        )

    def sweep_offline(self, now: datetime) -> int:
        """Fire offline (and metric-absence) alerts for silent devices AT their timeout and
        resolve those reporting again.

        One set-based query per offline rule, never a loop over every device. Returns the
        number of alerts changed.
        """
        changed = 0
        for rule in self._offline_rules:
            with self._sessions.begin() as session:
                changed += self._sweep_offline_rule(session, rule, now)
        return changed

    def _sweep_offline_rule(self, session: Session, rule: OfflineMonitor, now: datetime) -> int:
        if rule.metric is None:
            last_seen = func.coalesce(Device.last_seen_at, Device.registered_at)
            query = select(Device.id, last_seen)
        else:
            last_seen = func.coalesce(LatestReading.ts, Device.registered_at)
            query = select(Device.id, last_seen).outerjoin(
                LatestReading,
                and_(LatestReading.device_id == Device.id, LatestReading.metric == rule.metric),
            )
        open_fp = literal(f"{rule.id}:") + Device.id
        # A flapping alert whose condition is clear is open but not "offline" right now.
        has_open = exists().where(
            Alert.open_fingerprint == open_fp,
            or_(Alert.condition.is_(None), Alert.condition != "clear"),
        )
        scope = _scope(rule.applies_to)
        cutoff = now - rule.after
        # Same boundary as evaluate_offline: silent from last_seen + after <= now on.
        silent = session.execute(query.where(last_seen <= cutoff, ~has_open, *scope)).all()
        back = session.execute(query.where(last_seen > cutoff, has_open, *scope)).all()
        rows = sorted([*silent, *back], key=lambda row: not self._is_source(rule, row[0]))
        view = self._load_view(session, [fingerprint(rule.id, d) for d, _ in rows])
        changed = 0
        for device_id, seen in rows:
            judge: Judge = partial(evaluate_offline, rule, seen, now=now)
            changed += self._decide(session, rule, device_id, view, now, judge)
        return changed

    def sweep_pending(self, now: datetime) -> int:
        """Open threshold and rate alerts against the latest stored readings and the clock.

        A pending alert fires AT ``pending_since + for`` even when its device fell silent
        (the timer survives restarts: it is the row); an alert whose device's latest
        reading clears it resolves even if that reading reached another worker. Only open
        alerts are read, joined to their device's latest reading: a few rows, not a fleet.
        """
        changed = 0
        for rule in self._timed_rules:
            with self._sessions.begin() as session:
                rows = session.execute(
                    select(Alert, LatestReading.ts, LatestReading.value)
                    .outerjoin(
                        LatestReading,
                        and_(
                            LatestReading.device_id == Alert.subject,
                            LatestReading.metric == rule.metric,
                        ),
                    )
                    .where(Alert.rule_id == rule.id, Alert.open_fingerprint.is_not(None))
                ).all()
                view: View = {}
                for alert, _, _ in rows:
                    assert alert.open_fingerprint is not None
                    view[alert.open_fingerprint] = (alert.id, _snapshot(alert))
                for alert, ts, value in rows:
                    changed += self._settle_timed(
                        session, rule, alert.subject, ts, value, view, now
                    )
        return changed

    def _settle_timed(
        self,
        session: Session,
        rule: ThresholdMonitor | RateMonitor | DriftMonitor,
        device: str,
        ts: datetime | None,
        value: float | None,
        view: View,
        now: datetime,
    ) -> int:
        changed = 0
        if isinstance(rule, ThresholdMonitor):
            compiled = self._by_device.get(device)
            levels = next(
                (
                    lv
                    for r, lv in (compiled.thresholds.get(rule.metric, ()) if compiled else ())
                    if r.id == rule.id
                ),
                None,
            )
            if levels is None:
                return 0
            hold = levels.hold
            if ts is not None and value is not None:
                latest = Sample(device, rule.metric, ts, received_at=ts, value=value)
                judge: Judge = partial(evaluate_threshold, rule, levels, latest)
                changed += self._decide(session, rule, device, view, now, judge)
        else:
            hold = rule.for_
        judge = partial(_due, rule, hold, now=now)
        changed += self._decide(session, rule, device, view, now, judge)
        return changed

    def sweep_peers(self, now: datetime) -> int:
        """Fleet-peer deviation for every device in one set-based query per rule."""
        changed = 0
        for rule in self._peer_rules:
            with self._sessions.begin() as session:
                open_subjects = list(
                    session.scalars(
                        select(Alert.subject).where(
                            Alert.rule_id == rule.id, Alert.open_fingerprint.is_not(None)
                        )
                    )
                )
                readings = peer_readings(session, rule, now, open_subjects, _scope(rule.applies_to))
                subjects = sorted(set(readings) | set(open_subjects))
                view = self._load_view(session, [fingerprint(rule.id, s) for s in subjects])
                for subject in subjects:
                    judge: Judge = partial(evaluate_peer, rule, readings.get(subject), now=now)
                    changed += self._decide(session, rule, subject, view, now, judge)
        return changed

    def sweep_lifecycle(self, now: datetime) -> int:
        """Flapping alerts that settled; firing alerts whose silence, inhibition or
        flapping has ended and that were never announced."""
        changed = 0
        settle_before = now - self._alerting.flapping.settle
        with self._sessions.begin() as session:
            settled = session.scalars(
                select(Alert)
                .where(
                    Alert.open_fingerprint.is_not(None),
                    Alert.state == "flapping",
                    Alert.condition.in_(("firing", "clear")),
                    Alert.condition_since <= settle_before,
                    Alert.rule_id.in_(list(self._rules)),
                )
                .order_by(Alert.id)
                .with_for_update()
            ).all()
            for alert in settled:
                self._settle(session, self._rules[alert.rule_id], alert, now)
                changed += 1
        with self._sessions.begin() as session:
            held = session.scalars(
                select(Alert)
                .where(
                    Alert.open_fingerprint.is_not(None),
                    Alert.state == "firing",
                    Alert.notified_at.is_(None),
                    Alert.rule_id.in_([r.id for r in self._rules.values() if r.notify]),
                )
                .order_by(Alert.id)
                .with_for_update()
            ).all()
            for alert in held:
                before = alert.suppressed_by
                self._announce(session, self._rules[alert.rule_id], alert, now)
                changed += int(alert.notified_at is not None or alert.suppressed_by != before)
        return changed

    # -- acknowledge and silences --------------------------------------------------------

    def acknowledge(self, alert_id: int, by: str, now: datetime, note: str = "") -> bool:
        """Someone is on it: recorded once on an open alert (compare-and-set)."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Alert)
                .where(
                    Alert.id == alert_id,
                    Alert.open_fingerprint.is_not(None),
                    Alert.acknowledged_at.is_(None),
                )
                .values(acknowledged_at=now, acknowledged_by=by)
            )
            if getattr(result, "rowcount", 0) != 1:
                return False
            alert = session.get(Alert, alert_id)
            assert alert is not None
            session.add(
                AlertEvent(
                    alert_id=alert.id,
                    at=now,
                    from_state=alert.state,
                    to_state=alert.state,
                    rule_version=alert.rule_version,
                    evidence={"acknowledged_by": by, "note": note, "decided_at": now.isoformat()},
                )
            )
        log.info("alert %s acknowledged by %s", alert_id, by)
        return True

    def add_silence(self, silence: SilenceSettings, now: datetime) -> None:
        """Store a silence created through the API (validated by the same schema as the
        file). Naive times need the silence's ``timezone``."""
        unknown = [r for r in silence.rules if r not in self._rules]
        if unknown:
            raise ValueError(f"unknown monitor(s): {', '.join(unknown)}")
        starts, ends = silence.starts, silence.ends
        if (starts is not None and starts.tzinfo is None) or (
            ends is not None and ends.tzinfo is None
        ):
            if silence.timezone is None:
                raise ValueError("give 'starts' and 'ends' a UTC offset, or set 'timezone'")
            bounded = Silence.from_settings(silence)
            starts, ends = bounded.bounds(bounded.zone(silence.timezone))
        with self._sessions.begin() as session:
            session.add(
                SilenceRow(
                    id=silence.id,
                    matchers={
                        "devices": list(silence.devices),
                        "sites": list(silence.sites),
                        "models": list(silence.models),
                        "tags": list(silence.tags),
                        "rules": list(silence.rules),
                    },
                    starts=starts,
                    ends=ends,
                    days=list(silence.days),
                    hours=(
                        f"{silence.hours.start:%H:%M}-{silence.hours.end:%H:%M}"
                        if silence.hours
                        else None
                    ),
                    timezone=silence.timezone,
                    comment=silence.comment,
                    created_by=silence.created_by,
                    created_at=now,
                )
            )

    def expire_silence(self, silence_id: str, by: str, now: datetime) -> bool:
        """End an API silence now (compare-and-set: only one that has not ended yet).

        Silences in the config file are the file's to change; they are never expired here.
        """
        with self._sessions.begin() as session:
            result = session.execute(
                update(SilenceRow)
                .where(
                    SilenceRow.id == silence_id,
                    or_(SilenceRow.ends.is_(None), SilenceRow.ends > now),
                )
                .values(ends=now)
            )
            expired = getattr(result, "rowcount", 0) == 1
        if expired:
            log.info("silence %s expired by %s", silence_id, by)
        return expired

    def is_configured_silence(self, silence_id: str) -> bool:
        return any(s.id == silence_id for s in self._config_silences)

    def silences(self, session: Session, now: datetime) -> list[Silence]:
        """The silences in the file and those created through the API that have not ended
        a day ago (naive local end times can be up to a day off UTC)."""
        rows = session.scalars(
            select(SilenceRow).where(
                or_(SilenceRow.ends.is_(None), SilenceRow.ends > now - timedelta(days=1))
            )
        )
        return [*self._config_silences, *(_from_row(row) for row in rows)]

    def silence_report(self, now: datetime) -> list[SilenceStatus]:
        """Every silence with what it matches, whether it is active and about to expire."""
        with self._sessions() as session:
            silences = self.silences(session, now)
        return silence_report(
            silences, self._fleet, self._site_zones, now, self._alerting.expiring_within
        )

    # -- alert rows --------------------------------------------------------------------

    def _open_alerts(self, session: Session, subjects: Iterable[str]) -> View:
        view: View = {}
        ordered = sorted(subjects)
        for start in range(0, len(ordered), _CHUNK):
            rows = session.scalars(
                select(Alert).where(
                    Alert.open_fingerprint.is_not(None),
                    Alert.subject.in_(ordered[start : start + _CHUNK]),
                )
            )
            for alert in rows:
                if alert.rule_id in self._rules and alert.open_fingerprint is not None:
                    view[alert.open_fingerprint] = (alert.id, _snapshot(alert))
        return view

    def _load_view(self, session: Session, fingerprints: Sequence[str]) -> View:
        view: View = {}
        for start in range(0, len(fingerprints), _CHUNK):
            rows = session.scalars(
                select(Alert).where(
                    Alert.open_fingerprint.in_(fingerprints[start : start + _CHUNK])
                )
            )
            for alert in rows:
                assert alert.open_fingerprint is not None
                view[alert.open_fingerprint] = (alert.id, _snapshot(alert))
        return view

    def _decide(
        self,
        session: Session,
        rule: MonitorSettings,
        subject: str,
        view: View,
        now: datetime,
        judge: Judge,
    ) -> int:
        """Judge the rule against the open alert and apply the verdict; 1 if it changed.

        If another worker moved the alert meanwhile (or won the race to open it), read it
        again and judge once more against what it did.
        """
        fp = fingerprint(rule.id, subject)
        for attempt in (1, 2):
            entry = view.get(fp)
            verdict = judge(entry[1] if entry else None)
            if verdict.action == "none":
                return 0
            try:
                return self._apply(session, rule, subject, fp, verdict, now, view, entry, attempt)
            except _Moved:
                view.pop(fp, None)
                view.update(self._load_view(session, [fp]))
        return 0

    def _apply(
        self,
        session: Session,
        rule: MonitorSettings,
        subject: str,
        fp: str,
        verdict: Verdict,
        now: datetime,
        view: View,
        entry: _Entry | None,
        attempt: int,
    ) -> int:
        assert verdict.at is not None
        alert: Alert | None = None
        if entry is not None:
            session.flush()  # populate_existing must not overwrite unflushed progress
            alert = session.get(Alert, entry[0], with_for_update=True, populate_existing=True)
            moved = alert is None or alert.open_fingerprint is None
            if not moved and alert is not None and _snapshot(alert) != entry[1]:
                moved = True
            if moved:
                if attempt == 1:
                    raise _Moved
                return 0
        if alert is None:
            if verdict.action not in ("pend", "fire"):
                return 0
            if _episode_ended_after(session, fp, verdict.at):
                return 0  # a late or redelivered sample from an episode already over
            alert = self._insert(session, rule, subject, fp, verdict)
        previous = None if entry is None else alert.state
        if alert.state == "flapping":
            changed = self._apply_flapping(session, alert, verdict, now)
            view[fp] = (alert.id, _snapshot(alert))
            return changed
        alert.last_ts = max(alert.last_ts or verdict.at, verdict.at)
        alert.breaches = verdict.breaches
        alert.clearing_since = verdict.clearing_since
        if verdict.action == "progress":
            view[fp] = (alert.id, _snapshot(alert))
            return 0
        alert.rule_version = self._versions[rule.id]
        alert.summary = verdict.summary or alert.summary
        alert.last_value = verdict.value
        alert.evidence = verdict.evidence
        flaps = False
        if verdict.action == "fire":
            alert.severity = verdict.severity
            alert.firing_since = verdict.at
            alert.suggested_fix = verdict.suggested_fix or alert.suggested_fix
            flaps = self._flapping(session, fp, verdict.at)
            alert.state = "firing"
            if flaps:
                _start_flapping(alert, "firing", verdict.at)
        elif verdict.action == "resolve" and previous == "firing":
            flaps = self._flapping(session, fp, verdict.at)
            if flaps:
                _start_flapping(alert, "clear", verdict.at)
            else:
                _close(alert, verdict.at)
        elif verdict.action in ("resolve", "cancel"):
            _close(alert, verdict.at)
        session.flush()
        self._event(session, alert, previous, verdict, now, rule)
        view[fp] = (alert.id, _snapshot(alert))
        if alert.state == "resolved":
            view.pop(fp, None)
        log.info("alert %s %s -> %s: %s", fp, previous or "new", alert.state, verdict.summary)
        if alert.state == "firing" and previous != "firing":
            self._announce(session, rule, alert, now)
        elif alert.state == "resolved" and previous == "firing":
            self._retire(session, rule, alert, now)
        return 1

    def _insert(
        self, session: Session, rule: MonitorSettings, subject: str, fp: str, verdict: Verdict
    ) -> Alert:
        assert verdict.at is not None
        alert = Alert(
            fingerprint=fp,
            open_fingerprint=fp,
            rule_id=rule.id,
            rule_version=self._versions[rule.id],
            subject=subject,
            state="pending",
            severity=verdict.severity,
            summary=verdict.summary,
            suggested_fix=verdict.suggested_fix,
            pending_since=verdict.at,
            last_ts=verdict.at,
            breaches=verdict.breaches,
            last_value=verdict.value,
            evidence=verdict.evidence,
        )
        try:
            with session.begin_nested():
                session.add(alert)
                session.flush()
        except IntegrityError as exc:
            # Another worker opened this fingerprint first: judge again against its alert.
            raise _Moved from exc
        return alert

    def _apply_flapping(
        self, session: Session, alert: Alert, verdict: Verdict, now: datetime
    ) -> int:
        """A flapping alert follows its rule in ``condition`` and stays open."""
        assert verdict.at is not None
        alert.last_ts = max(alert.last_ts or verdict.at, verdict.at)
        alert.breaches = verdict.breaches
        alert.clearing_since = verdict.clearing_since
        before = alert.condition
        if verdict.action == "pend":
            alert.condition, alert.condition_since = "pending", verdict.at
        elif verdict.action == "fire":
            alert.condition, alert.condition_since = "firing", verdict.at
            alert.severity = verdict.severity
        elif verdict.action in ("resolve", "cancel"):
            alert.condition, alert.condition_since = "clear", verdict.at
        if verdict.action in ("fire", "resolve"):
            alert.summary = verdict.summary or alert.summary
            alert.last_value = verdict.value
            alert.evidence = verdict.evidence
            session.flush()
            session.add(
                AlertEvent(
                    alert_id=alert.id,
                    at=verdict.at,
                    from_state="flapping",
                    to_state="flapping",
                    rule_version=alert.rule_version,
                    evidence={
                        **verdict.evidence,
                        "condition": alert.condition,
                        "summary": verdict.summary,
                        "decided_at": now.isoformat(),
                    },
                )
            )
        return int(alert.condition != before)

    def _settle(self, session: Session, rule: MonitorSettings, alert: Alert, now: datetime) -> None:
        """A flapping alert kept one condition for ``settle``: it ends, exactly once."""
        assert alert.condition_since is not None
        at = alert.condition_since
        if alert.condition == "clear":
            _close(alert, at)
            to_state, summary = "resolved", "settled: back to normal"
        else:
            alert.state, alert.condition, alert.condition_since = "firing", None, None
            alert.suppressed_by = None if alert.notified_at is not None else alert.suppressed_by
            to_state, summary = "firing", "settled: still firing"
        session.add(
            AlertEvent(
                alert_id=alert.id,
                at=at,
                from_state="flapping",
                to_state=to_state,
                rule_version=alert.rule_version,
                evidence={"summary": summary, "decided_at": now.isoformat()},
            )
        )
        session.flush()
        log.info("alert %s flapping -> %s", alert.fingerprint, to_state)
        if to_state == "resolved":
            self._retire(session, rule, alert, now)
        elif alert.notified_at is None:
            self._announce(session, rule, alert, now)

    def _flapping(self, session: Session, fp: str, at: datetime) -> bool:
        """Whether this change (fire or resolve) makes ``fp`` flap: counting it, the
        firing/resolved changes within the window reach the limit."""
        settings = self._alerting.flapping
        changes = session.scalar(
            select(func.count())
            .select_from(AlertEvent)
            .join(Alert, Alert.id == AlertEvent.alert_id)
            .where(
                Alert.fingerprint == fp,
                AlertEvent.at > at - settings.window,
                or_(
                    AlertEvent.to_state.in_(("firing", "flapping")),
                    AlertEvent.from_state.in_(("firing", "flapping")),
                ),
            )
        )
        return (changes or 0) + 1 >= settings.changes

    def _event(
        self,
        session: Session,
        alert: Alert,
        previous: str | None,
        verdict: Verdict,
        now: datetime,
        rule: MonitorSettings,
    ) -> None:
        assert verdict.at is not None
        session.add(
            AlertEvent(
                alert_id=alert.id,
                at=verdict.at,
                from_state=previous,
                to_state=alert.state,
                rule_version=self._versions[rule.id],
                evidence={
                    **verdict.evidence,
                    "summary": verdict.summary,
                    "decided_at": now.isoformat(),
                },
            )
        )

    def _announce(
        self, session: Session, rule: MonitorSettings, alert: Alert, now: datetime
    ) -> None:
        """Hand a firing alert to ticketing unless a silence, an inhibition or flapping
        holds it; the reason is recorded either way."""
        if not rule.notify:
            return
        if alert.state == "flapping":
            alert.suppressed_by = "flapping"
            return
        reason = self._suppression(session, rule, alert, now)
        alert.suppressed_by = reason
        if reason is not None and not reason.startswith("work_order:"):
            log.info("alert %s held: %s", alert.fingerprint, reason)
            return
        self._sink.alert_fired(session, alert, now)
        alert.notified_at = now

    def _retire(self, session: Session, rule: MonitorSettings, alert: Alert, now: datetime) -> None:
        if rule.notify and alert.notified_at is not None:
            self._sink.alert_resolved(session, alert, now)

    def _suppression(
        self, session: Session, rule: MonitorSettings, alert: Alert, now: datetime
    ) -> str | None:
        device = self._devices.get(alert.subject)
        if device is None:
            return None
        site_zone = self._site_zones.get(device.site, "UTC")
        for silence in self.silences(session, now):
            if silence.matches(device, rule.id) and silence.active_at(now, silence.zone(site_zone)):
                return f"silence:{silence.id}"
        inhibitor = self._inhibitor(session, rule, device)
        if inhibitor is not None:
            return f"inhibited:{inhibitor}"
        ticket = session.scalar(
            select(Ticket.id).where(
                Ticket.device_id == device.id,
                Ticket.open_fingerprint.is_not(None),
                Ticket.status.in_(self._alerting.work_order_statuses),
            )
        )
        return f"work_order:{ticket}" if ticket is not None else None

    def _inhibitor(
        self, session: Session, rule: MonitorSettings, device: DeviceSettings
    ) -> str | None:
        for inhibit in self._alerting.inhibit:
            if inhibit.target_rules and rule.id not in inhibit.target_rules:
                continue
            if inhibit.scope == "parent":
                sources = [device.parent] if device.parent else []
            else:
                sources = [d.id for d in self._fleet if d.site == device.site]
            sources = [
                s
                for s in sources
                if s != device.id
                and (not inhibit.source_kinds or self._devices[s].kind in inhibit.source_kinds)
            ]
            if not sources:
                continue
            found = session.scalar(
                select(Alert.open_fingerprint)
                .where(
                    Alert.open_fingerprint.in_(
                        [fingerprint(inhibit.source_rule, s) for s in sources]
                    ),
                    or_(Alert.state == "firing", Alert.condition == "firing"),
                )
                .limit(1)
            )
            if found is not None:
                return found
        return None

    def _is_source(self, rule: MonitorSettings, device_id: str) -> bool:
        device = self._devices.get(device_id)
        if device is None:
            return False
        return any(
            i.source_rule == rule.id and (not i.source_kinds or device.kind in i.source_kinds)
            for i in self._alerting.inhibit
        )


def _due(
    rule: ThresholdMonitor | RateMonitor | DriftMonitor,
    hold: timedelta,
    current: OpenAlert | None,
    now: datetime,
) -> Verdict:
    if current is None:
        return Verdict("none")
    return evaluate_due(rule, hold, current, now)


def _averages(session: Session, rule: DriftMonitor, sample: Sample) -> tuple[Average, Average]:
    """The moving average over ``rule.window`` up to ``sample`` and the baseline before it,
    aggregated by the store in one range scan of the readings index (a day of readings
    per sample would otherwise travel to Python)."""
    split = sample.ts - rule.window
    recent = Reading.ts > split
    row = session.execute(
        select(
            func.avg(case((recent, Reading.value))),
            func.count(case((recent, Reading.value))),
            func.avg(case((~recent, Reading.value))),
            func.count(case((~recent, Reading.value))),
            func.min(case((~recent, Reading.ts))),
        ).where(
            Reading.device_id == sample.device_id,
            Reading.metric == rule.metric,
            Reading.ts > split - rule.baseline,
            Reading.ts <= sample.ts,
            Reading.stale.is_(False),
            Reading.value.is_not(None),
        )
    ).one()
    recent_mean, recent_count, base_mean, base_count, first = row
    return (
        Average(None if recent_mean is None else float(recent_mean), int(recent_count or 0)),
        Average(
            None if base_mean is None else float(base_mean),
            int(base_count or 0),
            _aware(first),
        ),
    )


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back aggregates of timestamps as naive datetimes (or text).
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _start_flapping(alert: Alert, condition: str, at: datetime) -> None:
    alert.state = "flapping"
    alert.condition = condition
    alert.condition_since = at
    alert.suppressed_by = "flapping" if alert.notified_at is None else alert.suppressed_by


def _close(alert: Alert, at: datetime) -> None:
    alert.state = "resolved"
    alert.open_fingerprint = None
    alert.resolved_at = at
    alert.condition = None
    alert.condition_since = None


def _episode_ended_after(session: Session, fp: str, at: datetime) -> bool:
    """Whether an episode of ``fp`` was resolved at or after ``at``.

    The evaluators ignore samples older than the open alert's last one; once the alert is
    resolved, this keeps an old sample from opening a new episode in the past.
    """
    ended = session.scalar(select(func.max(Alert.resolved_at)).where(Alert.fingerprint == fp))
    return ended is not None and at <= ended


def _snapshot(alert: Alert) -> OpenAlert | None:
    """What the evaluator sees; None for a flapping alert whose rule says "clear"."""
    last = alert.last_ts or alert.firing_since or alert.pending_since
    if alert.state == "flapping":
        if alert.condition == "clear":
            return None
        if alert.condition == "pending":
            since = alert.condition_since or alert.pending_since
            return OpenAlert("pending", since, last, max(alert.breaches, 1))
        return OpenAlert("firing", alert.pending_since, last, clearing_since=alert.clearing_since)
    state: Any = "firing" if alert.state == "firing" else "pending"
    return OpenAlert(state, alert.pending_since, last, max(alert.breaches, 1), alert.clearing_since)


def _scope(selector: Selector) -> list[ColumnElement[bool]]:
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


def _from_row(row: SilenceRow) -> Silence:
    matchers = row.matchers
    settings = SilenceSettings.model_validate(
        {
            "id": row.id,
            "devices": matchers.get("devices", []),
            "sites": matchers.get("sites", []),
            "models": matchers.get("models", []),
            "tags": matchers.get("tags", []),
            "rules": matchers.get("rules", []),
            "starts": row.starts,
            "ends": row.ends,
            "days": row.days,
            "hours": row.hours,
            "timezone": row.timezone,
            "comment": row.comment,
            "created_by": row.created_by,
        }
    )
    return Silence.from_settings(settings, source="api")


def _epoch() -> datetime:
    return datetime.fromisoformat("2000-01-01T00:00:00+00:00")
