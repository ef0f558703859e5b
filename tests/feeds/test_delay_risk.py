"""The calibrated delay risk: its probabilities match what happens on a generated history,
the at-risk rule warns at a probability, and ``forewarn feeds report`` prints the
trade-off table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.config import load_config
from forewarn.config.schema import PromiseAtRiskRule
from forewarn.feeds.sample import SampleSpec, generate, to_csv
from forewarn.feeds.tradeoff import order_histories
from forewarn.monitors.delay_risk import learn_book, order_risk, tradeoff
from forewarn.monitors.orders import OrderFacts, evaluate_order
from forewarn.monitors.transit import TransitBook, miss_probability, percentiles

ROOT = Path(__file__).resolve().parents[2]
OLIST = ROOT / "config" / "olist.example.yaml"
runner = CliRunner()


def history(orders: int = 3000) -> list[OrderFacts]:
    settings = load_config(OLIST, {"FOREWARN_DATABASE_URL": "sqlite://"}).settings
    data = to_csv(generate(SampleSpec(orders=orders, seed=11))).encode()
    return order_histories(settings, settings.feeds[0], data, "csv")


def test_the_risk_is_calibrated_on_a_generated_history() -> None:
    orders = sorted(
        (o for o in history() if o.promised and "delivered" in o.milestones),
        key=lambda o: o.milestones["placed"],
    )
    split = orders[len(orders) // 2].milestones["placed"]
    book = learn_book(orders, split)
    bins: dict[int, list[tuple[float, bool]]] = {}
    for order in orders[len(orders) // 2 :]:
        assert order.promised is not None
        # Judged three days before the promise, for orders still on their way then.
        moment = order.promised - timedelta(days=3)
        if not order.milestones["placed"] < moment < order.milestones["delivered"]:
            continue
        risk = order_risk(order, book, moment)
        if risk is None:
            continue
        late = order.milestones["delivered"] > order.promised
        bins.setdefault(min(int(risk.probability * 5), 4), []).append((risk.probability, late))
    judged = [b for b in bins.values() if len(b) >= 30]
    assert len(judged) >= 2, {k: len(v) for k, v in bins.items()}
    for members in judged:
        predicted = sum(p for p, _ in members) / len(members)
        observed = sum(late for _, late in members) / len(members)
        assert abs(observed - predicted) < 0.15, (predicted, observed, len(members))


def test_the_probability_is_the_share_of_slower_deliveries_among_those_as_slow_so_far() -> None:
    times = percentiles([float(d) for d in range(1, 101)])  # 1..100 days, evenly
    assert miss_probability(times, 0.0, 50.0) == pytest.approx(0.5, abs=0.02)
    assert miss_probability(times, 50.0, 75.0) == pytest.approx(0.5, abs=0.03)
    assert miss_probability(times, 80.0, 79.0) == 1.0


def test_an_at_risk_rule_with_a_probability_fires_at_it_and_no_earlier() -> None:
    start = datetime(2026, 5, 4, 12, tzinfo=UTC)
    days = 86400.0
    book = TransitBook(
        {("*", "*", "handed_to_carrier"): percentiles([d * days for d in range(1, 11)])}
    )
    order = OrderFacts(
        "o-1",
        {"placed": start - timedelta(days=1), "handed_to_carrier": start},
        promised=start + timedelta(days=8),
    )
    rule = PromiseAtRiskRule(id="risky", kind="promise_at_risk", probability=0.6, min_samples=5)
    early = evaluate_order([rule], order, book, start + timedelta(days=1))
    assert early.findings == ()
    assert early.next_check is not None
    late = evaluate_order([rule], order, book, early.next_check)
    (finding,) = late.findings
    assert finding.evidence["probability"] >= 0.6
    assert "likely to miss the promised" in finding.summary


def test_feeds_report_prints_the_tradeoff_table(tmp_path: Path) -> None:
    export = tmp_path / "orders.csv"
    made = runner.invoke(app, ["feeds", "sample", "-o", str(export), "--orders", "300"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["feeds", "report", "-c", str(OLIST), "--json", str(export)])
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)["risk_tradeoff"]
    rows = {r["threshold"]: r for r in table["rows"]}
    assert table["late"] > 0 and table["on_time"] > table["late"]
    # Warning at a higher risk warns fewer orders, late and on time alike.
    assert rows[0.1]["on_time_warned"] >= rows[0.5]["on_time_warned"] >= rows[0.9]["on_time_warned"]
    assert rows[0.1]["late_warned_by_promise"] >= rows[0.9]["late_warned_by_promise"]


def test_the_tradeoff_table_reads_as_a_table() -> None:
    table = tradeoff(history(1200))
    lines = table.lines()
    assert "warn at risk >=" in lines[1] and "on-time warned" in lines[1]
    assert len(lines) == 2 + len(table.rows)
    assert lines[2].split()[0] == "5%"
