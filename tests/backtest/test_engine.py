"""The backtest runs the whole live path on a simulated clock: its counts of alerts,
tickets and messages are those of a scripted week, told step by step."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from forewarn.backtest.engine import BacktestError, History, Request, Scope, run_backtest
from forewarn.config.drafts import parse_draft
from forewarn.store.history import PastTicket
from tests.backtest.history import START, config, week

LOWER = """
monitors:
  - {id: hot, kind: threshold, metric: temperature, above: 65, clear: 60, for: 10m}
"""
H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)
EXCURSIONS = {
    # Monday 10:00 UTC, 40 minutes at 90: fires at 10:10 under both rule sets.
    "inv-1": [(10 * H, 40 * M, 90.0), (2 * D + 23 * H, 30 * M, 85.0)],
    # Thursday 14:00, an hour at 70: only the draft's 65 sees it.
    "inv-2": [(3 * D + 14 * H, 60 * M, 70.0)],
}


def backtest(
    tmp_path: Path,
    draft: str = LOWER,
    scope: str = "fleet",
    excursions: dict[str, list[tuple[timedelta, timedelta, float]]] = EXCURSIONS,
    **history: object,
) -> dict[str, Any]:
    cfg = config(tmp_path / "unused.db")
    readings = sorted(week(excursions), key=lambda s: s.ts)
    request = Request(parse_draft(cfg.settings, draft), START, START + 7 * D, Scope.parse(scope))
    return run_backtest(
        cfg,
        request,
        history=History(readings, **history),  # type: ignore[arg-type]
    ).as_dict()


def test_it_counts_alerts_tickets_and_every_message_of_a_scripted_week(tmp_path: Path) -> None:
    result = backtest(tmp_path)
    current = result["current"]
    # Two excursions of inv-1: two alerts, two tickets; each cleared within the hour and
    # was closed by the ticket sweep an hour later (cleared_grace), before the visit.
    assert current["alerts"] == 2
    assert current["tickets"] == 2
    assert current["auto_closed"] == 2
    assert current["technician_hours"] == 0
    # Monday: work order by SMS and email, the fault notice by SMS after the 2-minute
    # merge window, "Ana is coming" at the ACK 20 minutes later, then the job cancelled
    # (SMS and email) and the all-clear when the sweep closed it.
    # Monday also offers c-silva visit windows, right after the fault notice.
    # Wednesday 23:10 Lisbon: the work order goes out at night (technicians have no quiet
    # hours); the fault notice, the visit windows and "Ana is coming" wait for 07:00 and
    # are dropped when the ticket closes at 00:31; the all-clear waits for 07:00 and is
    # dropped too: she was never told of that fault.
    assert current["messages"] == {"sms": 8, "email": 4}
    assert current["messages_by_recipient"] == {"customer": 4, "technician": 8}
    assert current["messages_by_event"]["visit_proposal"] == 1
    assert current["quiet_hours_held"] == 0  # nothing she was told waited for the morning
    assert current["max_per_customer_day"]["messages"] == 4
    assert current["max_per_customer_day"]["customer"] == "c-silva"
    assert current["max_per_customer_week"]["messages"] == 4
    # 0.05 a segment, 0.01 an email: the messages are one segment each except the
    # longer ones, which the project's GSM-7/UCS-2 counter says.
    assert current["cost"] == pytest.approx(current["sms_segments"] * 0.05 + 4 * 0.01)
    assert current["sms_segments"] >= 8


def test_the_draft_adds_the_alert_its_lower_level_sees_and_says_so(tmp_path: Path) -> None:
    result = backtest(tmp_path)
    assert result["draft"]["alerts"] == 3
    assert result["draft"]["tickets"] == 3
    assert result["changed_rules"] == ["hot"]
    diff = result["diff"]
    assert (diff["appear_count"], diff["disappear_count"], diff["unchanged"]) == (1, 0, 2)
    assert diff["appear"][0]["device"] == "inv-2"
    assert diff["appear"][0]["from"].startswith("2026-11-05T14:10")
    # inv-2's customer is c-silva too: her week now has a third ticket's messages
    # (notice, visit windows, "Ana is coming", all-clear).
    assert result["draft"]["max_per_customer_week"]["messages"] == 8
    chart = result["chart"]
    assert chart["device"] == "inv-2" and chart["metric"] == "temperature"
    assert [lv["level"] for lv in chart["current_levels"]] == [80]
    assert [lv["level"] for lv in chart["draft_levels"]] == [65]
    assert chart["current_alerts"] == []
    assert len(chart["draft_alerts"]) == 1


def test_a_scope_counts_only_its_devices(tmp_path: Path) -> None:
    result = backtest(tmp_path, scope="device:inv-2")
    assert result["devices"] == 1
    assert result["current"]["alerts"] == 0
    assert result["draft"]["alerts"] == 1
    assert backtest(tmp_path, scope="site:s-porto")["draft"]["alerts"] == 0
    with pytest.raises(BacktestError, match="no site 'nowhere'"):
        backtest(tmp_path, scope="site:nowhere")
    with pytest.raises(BacktestError, match="give fleet, device:ID"):
        Scope.parse("building:7")


def test_notices_to_one_customer_are_merged_and_budgeted_as_live(tmp_path: Path) -> None:
    # Monday in Lisbon: both of c-silva's inverters overheat at noon, then inv-1 again at
    # 16:00, 19:00 and 21:00 (each cleared and closed before the next).
    day = {
        "inv-1": [(h * H, 30 * M, 90.0) for h in (12, 16, 19, 21)],
        "inv-2": [(12 * H, 30 * M, 90.0)],
    }
    current = backtest(tmp_path, excursions=day)["current"]
    assert current["tickets"] == 5
    sent = current["messages_by_event"]
    # Noon: two fault notices queued in the same minute leave as one message.
    assert current["merged"] == 1
    assert sent["issues_digest"] == 1
    # contact_budget is 3 proactive messages a day: the digest, 16:12 and 19:12 went;
    # the 21:10 notice waited for room and was dropped when its ticket closed, and so were
    # its visit windows and "Ana is coming", which waited behind it (nothing goes before
    # the fault notice), and its all-clear (she never heard of that fault).
    assert sent["fault_notice"] == 2
    assert current["dropped"] == 4
    assert sent["work_order"] == 10  # SMS and email to the technician, for each ticket


def test_real_closures_say_how_many_would_be_tickets_were_real_faults(tmp_path: Path) -> None:
    past = [
        PastTicket(1, "inv-1", "hot", START + 10 * H + 5 * M, START + 12 * H, "fixed"),
        PastTicket(
            2, "inv-2", "hot", START + 3 * D + 15 * H, START + 3 * D + 18 * H, "no_fault_found"
        ),
    ]
    nff = backtest(tmp_path, tickets=past)["no_fault_found"]
    assert nff["real_fault"] == 1
    assert nff["no_fault_found"] == 1
    assert nff["unmatched"] == 1  # Wednesday night's ticket has no real counterpart
    assert nff["real_fault_share"] == 0.5
    assert backtest(tmp_path)["no_fault_found"] is None
