"""The backtest's counts are the service's: the same readings ingested live (the real
ingester, the scheduled jobs every minute, injected time) and replayed by the backtest
open the same alerts and tickets and send the same messages."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from forewarn.backtest.engine import Request, Scope, run_backtest
from forewarn.monitors.replay import SimulatedClock
from forewarn.service import build, make_ingester, sweep_tickets
from forewarn.store.engine import make_engine
from forewarn.store.models import Alert, Notification, Ticket
from forewarn.store.schema import upgrade
from tests.backtest.history import CONFIG, START, config, week

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)
DAYS = 2 * D
# Nobody answers work orders here (the live run has no technicians replying), so the
# backtest's simulated crew stays home too: every job runs the escalation chain.
NOBODY_ANSWERS = CONFIG.replace(
    "crew: {accept_after: 20m, visit_hours: 2h}", "crew: {accept_after: null}"
)
EXCURSIONS = {
    "inv-1": [(10 * H, 40 * M, 90.0), (D + 23 * H, 30 * M, 85.0), (D + 9 * H, 3 * H, 95.0)],
    "inv-2": [(10 * H, 30 * M, 90.0)],  # with inv-1's: one merged notice
    "inv-3": [(14 * H, 2 * H, 88.0)],
}


@pytest.mark.slow  # two simulated days, minute by minute, through the real service
def test_the_backtest_counts_what_the_service_did_with_the_same_readings(tmp_path: Path) -> None:
    cfg = config(tmp_path / "live.db", NOBODY_ANSWERS)
    engine = make_engine(cfg.database_url)
    upgrade(engine)
    engine.dispose()
    readings = sorted(week(EXCURSIONS), key=lambda s: (s.ts, s.device_id))
    readings = [r for r in readings if r.ts < START + DAYS]
    clock = SimulatedClock(START)
    app = build(cfg, clock=clock, channels=_dry_run())
    try:
        ingester = make_ingester(app)
        by_time: dict[datetime, list[tuple[str, bytes, bool]]] = {}
        for r in readings:
            payload = json.dumps({"ts": r.ts.isoformat(), "temperature": r.value}).encode()
            by_time.setdefault(r.ts, []).append(
                (f"devices/{r.device_id}/telemetry", payload, False)
            )
        moment = START
        while moment < START + DAYS:
            clock.at = moment
            if moment in by_time:
                ingester.ingest_payloads(by_time[moment])
            # The leader's jobs and the sender, as the scheduler runs them.
            app.monitors.sweep(moment)
            sweep_tickets(app)
            app.sender.drain()
            moment += M
        with app.sessions() as session:
            live_alerts = Counter(
                (a.rule_id, a.subject) for a in session.scalars(select(Alert)) if a.firing_since
            )
            live_tickets = Counter(t.device_id for t in session.scalars(select(Ticket)))
            live_messages = Counter(
                (n.event, n.channel, n.recipient_role)
                for n in session.scalars(select(Notification))
                if n.status == "sent"
            )
    finally:
        app.engine.dispose()
    assert sum(live_tickets.values()) >= 4  # the week exercises tickets and escalation
    assert any(e == "issues_digest" for e, _, _ in live_messages)

    # The backtest reads the same history back from the store the service wrote.
    request = Request(cfg.settings.monitors, START, START + DAYS, Scope.parse("fleet"))
    result = run_backtest(cfg, request).as_dict()
    current = result["current"]
    assert current["alerts_by_rule"] == {"hot": sum(live_alerts.values())}
    assert current["tickets"] == sum(live_tickets.values())
    assert current["messages_by_event"] == dict(
        Counter(e for (e, _, _), n in live_messages.items() for _ in range(n))
    )
    assert current["messages"] == dict(
        Counter(c for (_, c, _), n in live_messages.items() for _ in range(n))
    )
    assert result["draft"] == current  # the draft is the current rule set: no difference
    assert result["diff"]["appear_count"] == result["diff"]["disappear_count"] == 0


def _dry_run() -> dict[str, object]:
    from forewarn.notifier.channels.dry_run import DryRunChannel

    return {"sms": DryRunChannel("sms"), "email": DryRunChannel("email")}
