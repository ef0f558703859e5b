"""The commands a new user runs first, through the real ``forewarn`` entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forewarn.cli import app
from tests.services import mosquitto_binary, unavailable

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_check_accepts_the_example_config() -> None:
    result = runner.invoke(app, ["check", "-c", str(ROOT / "config" / "forewarn.example.yaml")])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_check_refuses_a_broken_config_with_one_line_and_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "forewarn.yaml"
    bad.write_text("monitors:\n  - {id: hot, kind: threshold, metric: t, above: 1, for: 10x}\n")
    result = runner.invoke(app, ["check", "-c", str(bad)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [
        f"error: {bad}:2: monitors[0].for: '10x' is not a duration (use e.g. 30s, 10m, 2h, 1d)"
    ]


def test_check_says_which_file_is_missing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: no such file" in result.output
    assert "Traceback" not in result.output


def test_db_upgrade_creates_the_schema_and_run_refuses_an_unmigrated_database(
    tmp_path: Path,
) -> None:
    config = tmp_path / "forewarn.yaml"
    config.write_text(f"database:\n  url: sqlite:///{tmp_path / 'fw.db'}\n")
    refused = runner.invoke(app, ["run", "-c", str(config), "--role", "sender"])
    assert refused.exit_code == 2
    assert "forewarn db upgrade" in refused.output
    upgraded = runner.invoke(app, ["db", "upgrade", "-c", str(config)])
    assert upgraded.exit_code == 0, upgraded.output
    assert "database at revision" in upgraded.output


def test_run_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "-c", str(tmp_path / "x.yaml"), "--role", "everything"])
    assert result.exit_code == 2
    assert "unknown role(s) everything" in result.output


def test_run_refuses_an_instance_number_the_client_id_cannot_hold(tmp_path: Path) -> None:
    config = tmp_path / "forewarn.yaml"
    config.write_text("broker:\n  client_id: ingest\n  share_group: forewarn\n")
    result = runner.invoke(app, ["run", "-c", str(config), "--role", "ingest", "--instance", "2"])
    assert result.exit_code == 2
    assert "broker.client_id: 'ingest' has no {instance}" in result.output
    assert "Traceback" not in result.output


@pytest.mark.mosquitto
def test_the_headless_demo_opens_tickets_and_notifies_technician_and_customer() -> None:
    if mosquitto_binary() is None:
        unavailable("the demo's MQTT path needs the mosquitto binary")
    done = subprocess.run(
        [sys.executable, "-m", "forewarn", "demo", "--headless", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["completed"] is True
    assert outcome["broker"].startswith("mosquitto 127.0.0.1:")
    tickets = outcome["tickets"]
    assert {t["device"] for t in tickets} == {"inv-101", "inv-301", "bat-202"}
    assert all(t["technician"] and t["status"] == "assigned" for t in tickets)
    by_role = {n["recipient_role"] for n in outcome["notifications"]}
    assert by_role == {"technician", "customer"}
    assert all(n["status"] == "sent" for n in outcome["notifications"])
    assert {n["template"] for n in outcome["notifications"]} == {"work_order", "fault_notice"}
    # The malformed message was quarantined, not fatal, and addresses never appear in clear.
    assert outcome["quarantined"]
    assert "+351912000101" not in done.stdout


def test_the_demo_without_a_broker_feeds_the_same_pipeline_and_says_so() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "forewarn", "demo", "--headless", "--no-broker"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "straight into forewarn's ingest pipeline" in done.stdout
    assert "Ticket #" in done.stdout
    assert "fault_notice" in done.stdout
    assert "work_order" in done.stdout
    assert "Quarantined a bad message" in done.stdout
