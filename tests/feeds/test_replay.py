"""Replaying a generated Olist-shaped export through ``forewarn feeds report``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from forewarn.cli import app

ROOT = Path(__file__).resolve().parents[2]
OLIST = ROOT / "config" / "olist.example.yaml"
runner = CliRunner()


def test_the_olist_mapping_is_accepted_by_check() -> None:
    result = runner.invoke(app, ["check", "-c", str(OLIST)])
    assert result.exit_code == 0, result.output


def test_a_replayed_export_warns_late_orders_in_time_and_rarely_on_time_ones(
    tmp_path: Path,
) -> None:
    export = tmp_path / "orders.csv"
    made = runner.invoke(app, ["feeds", "sample", "-o", str(export), "--orders", "600"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(
        app, ["feeds", "report", "-c", str(OLIST), "--json", "--warmup", "20d", str(export)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["quarantined"] == 0
    assert report["late"] >= 15
    assert report["late_warned"] / report["late"] >= 0.9
    assert report["late_warned_by_promise"] / report["late"] >= 0.75
    assert report["on_time_warned"] / report["on_time"] <= 0.12
    assert report["orders_with_two_cases"] == 0
    assert report["resolved_delivered"] > 0


def test_the_report_replayed_in_memory_matches_the_one_on_a_sql_store(tmp_path: Path) -> None:
    export = tmp_path / "orders.csv"
    made = runner.invoke(
        app, ["feeds", "sample", "-o", str(export), "--orders", "250", "--days", "60"]
    )
    assert made.exit_code == 0, made.output
    report = ["feeds", "report", "-c", str(OLIST), "--json", "--warmup", "10d", str(export)]
    memory = runner.invoke(app, report)
    assert memory.exit_code == 0, memory.output
    database = f"sqlite:///{tmp_path / 'scratch.db'}"
    sql = runner.invoke(app, [*report, "--database", database])
    assert sql.exit_code == 0, sql.output
    assert json.loads(memory.output) == json.loads(sql.output)
    assert json.loads(memory.output)["cases"] > 5


def test_report_refuses_a_file_of_unknown_format(tmp_path: Path) -> None:
    odd = tmp_path / "orders.xlsx"
    odd.write_bytes(b"PK")
    result = runner.invoke(app, ["feeds", "report", "-c", str(OLIST), str(odd)])
    assert result.exit_code == 2
    assert "unknown format" in result.output
