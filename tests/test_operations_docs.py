"""docs/operations.md and docs/prometheus-alerts.yml name only series forewarn exports.

The exported names come from a real scrape of ``/metrics`` of an application built as
``forewarn run`` builds it (every role, an ingester, a leader election), so a renamed
series fails here instead of silently breaking an operator's alert.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from forewarn.config import parse_config
from forewarn.scheduler import JobLedger, LeaderElection
from forewarn.service import ROLES, build, make_ingester, web_app
from forewarn.store.engine import make_engine
from forewarn.store.schema import upgrade
from forewarn.web.health import ProcessStatus

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "docs" / "prometheus-alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
_SERIES = re.compile(r"\bforewarn_[a-z0-9_]+\b")
_SAMPLE_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[ {]", re.M)
_HELP_NAME = re.compile(r"^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) ", re.M)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Every series name on /metrics of a process running every role."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ops') / 'forewarn.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    app = build(parse_config(f"database: {{url: '{url}'}}\n", {}))
    ingester = make_ingester(app)  # built, not connected: its counters and link exist
    ledger = JobLedger(app.sessions, "test:1")
    ledger.register("monitor-sweep", timedelta(seconds=30), leader_only=True)
    status = ProcessStatus(
        roles=ROLES,
        worker="test:1",
        election=LeaderElection(app.engine, timedelta(seconds=5)),
        ledger=ledger,
        mqtt=ingester.link,
    )
    try:
        with TestClient(web_app(app, {}, ingester, status)) as client:
            text = client.get("/metrics").text
        # Sample names, and the names of families with no sample yet (no feed polled).
        yield set(_SAMPLE_NAME.findall(text)) | set(_HELP_NAME.findall(text))
    finally:
        app.engine.dispose()


def _rules() -> list[dict[str, object]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_rule_names_only_series_forewarn_exports(exported: set[str]) -> None:
    rules = _rules()

    assert len(rules) >= 10
    for rule in rules:
        named = set(_SERIES.findall(str(rule["expr"])))
        assert named <= exported, (rule["alert"], named - exported)
        annotations = rule["annotations"]
        assert isinstance(annotations, dict) and annotations.get("summary"), rule["alert"]


def test_the_alerts_cover_a_late_job_a_missing_leader_and_stuck_messages() -> None:
    expressions = " ".join(str(rule["expr"]) for rule in _rules())

    for series in (
        "forewarn_job_last_success_timestamp_seconds",
        "forewarn_scheduler_leader",
        "forewarn_mqtt_connected",
        "forewarn_outbox_oldest_due_age_seconds",
    ):
        assert series in expressions


def test_operations_md_explains_only_series_forewarn_exports(exported: set[str]) -> None:
    named = set(_SERIES.findall(OPERATIONS.read_text()))
    # Histograms are documented by family name; their samples carry a suffix.
    families = exported | {
        name.removesuffix(suffix)
        for name in exported
        for suffix in ("_bucket", "_sum", "_count")
        if name.endswith(suffix)
    }

    # Some series appear only once there is data (a KPI ratio needs an episode); those
    # must at least be names the code can produce.
    produced = re.compile(
        "|".join(
            re.sub(r"\\{[^}]*\\}", "[a-z_]+", re.escape(literal))
            for path in (ROOT / "forewarn").rglob("*.py")
            for literal in re.findall(r'"(forewarn_[a-z0-9_{}]+)"', path.read_text())
        )
    )

    assert named, "docs/operations.md names no series"
    unknown = {name for name in named - families if not produced.fullmatch(name)}
    assert unknown == set()


def test_operations_md_explains_every_exported_family(exported: set[str]) -> None:
    text = OPERATIONS.read_text()
    families = {
        name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        for name in exported
    }

    undocumented = {f for f in families if f not in text}
    assert undocumented == set()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_alert_rules() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
