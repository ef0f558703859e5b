"""The file and the database: which rules win when both changed, and ``forewarn rules
export`` writing the current version back into the file (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from forewarn.cli import app as cli
from forewarn.config import load_config
from forewarn.notifier.channels.development import DevelopmentChannel
from forewarn.service import Forewarn, build, web_app
from forewarn.store.engine import make_engine
from forewarn.store.schema import upgrade
from tests.ticketing.test_tickets import FLEET, START, TECHNICIANS, SteppingClock

OPS = "ops-token-0123456789abcdef"
runner = CliRunner()


class Deployment:
    """One database and one config file; :meth:`start` builds forewarn as ``run`` does."""

    def __init__(self, url: str, config: Path) -> None:
        self.url = url
        self.config = config
        self.started: list[Forewarn] = []

    def start(self) -> Forewarn:
        channels = {
            "sms": DevelopmentChannel("sms", io.StringIO()),
            "email": DevelopmentChannel("email", io.StringIO()),
        }
        loaded = load_config(self.config, {"FOREWARN_DATABASE_URL": self.url})
        started = build(loaded, clock=SteppingClock(START), channels=channels)
        self.started.append(started)
        return started

    def api(self, started: Forewarn) -> TestClient:
        client = TestClient(web_app(started, {"FOREWARN_TOKENS": f"ops:{OPS}"}))
        client.headers["authorization"] = f"Bearer {OPS}"
        return client

    def cli(self, *args: str) -> Any:
        env = {"FOREWARN_DATABASE_URL": self.url}
        return runner.invoke(cli, list(args), env={**os.environ, **env})


@pytest.fixture
def deployment(database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    config = tmp_path / "forewarn.yaml"
    config.write_text("# our fleet, kept in git\n" + FLEET + TECHNICIANS)
    found = Deployment(database_url, config)
    yield found
    for started in found.started:
        started.engine.dispose()


def versions(client: TestClient) -> list[tuple[int, str, list[str]]]:
    items = client.get("/api/rules/versions").json()["items"]
    return [(v["version"], v["author"], v["changes"]) for v in items]


def raise_level(client: TestClient, above: int) -> None:
    rules = client.get("/api/rules").json()["rules"]
    rule = {**rules[0], "above": above}
    saved = client.put(f"/api/rules/{rule['id']}", json={"rule": rule, "comment": "console"})
    assert saved.status_code == 201, saved.text


def test_a_console_edit_stands_across_restarts_while_the_file_is_unchanged(
    deployment: Deployment,
) -> None:
    first = deployment.start()
    raise_level(deployment.api(first), 90)

    again = deployment.start()

    assert again.rules is not None and again.rules.number == 2
    assert versions(deployment.api(again)) == [
        (2, "ops (api)", ["inverter-overheating: above 80 -> 90"]),
        (1, "file", ["inverter-overheating: added", "inverter-faults: added"]),
    ]
    assert again.monitors.core.rules["inverter-overheating"].above == 90  # type: ignore[union-attr]


def test_a_changed_file_becomes_a_new_version_authored_file_over_the_console_edit(
    deployment: Deployment,
) -> None:
    first = deployment.start()
    raise_level(deployment.api(first), 90)
    deployment.config.write_text(deployment.config.read_text().replace("above: 80", "above: 75"))

    again = deployment.start()

    client = deployment.api(again)
    assert versions(client)[0] == (3, "file", ["inverter-overheating: above 90 -> 75"])
    assert again.monitors.core.rules["inverter-overheating"].above == 75  # type: ignore[union-attr]
    (provisioned, _) = client.get("/api/audit", params={"kind": "rules.provision"}).json()["items"]
    assert provisioned["actor"] == "file"
    assert "changed since its rules were last provisioned" in provisioned["reason"]


def test_export_writes_the_current_version_into_the_file_and_check_accepts_it(
    deployment: Deployment, tmp_path: Path
) -> None:
    started = deployment.start()
    raise_level(deployment.api(started), 90)
    out = tmp_path / "exported.yaml"

    exported = deployment.cli("rules", "export", "-c", str(deployment.config), "-o", str(out))

    assert exported.exit_code == 0, exported.output
    text = out.read_text()
    assert text.startswith("# our fleet, kept in git\n")  # the rest of the file as it was
    assert "above: 90" in text and "above: 80" not in text
    assert deployment.cli("check", "-c", str(out)).exit_code == 0
    # Written back into the file, it is the current version: starting changes nothing.
    deployment.config.write_text(text)
    again = deployment.start()
    assert [v for v, _, _ in versions(deployment.api(again))] == [2, 1]


def test_export_to_standard_output_and_the_history(deployment: Deployment) -> None:
    raise_level(deployment.api(deployment.start()), 85)

    shown = deployment.cli("rules", "export", "-c", str(deployment.config))
    history = deployment.cli("rules", "history", "-c", str(deployment.config))

    assert shown.exit_code == 0 and "above: 85" in shown.output
    assert history.exit_code == 0
    assert history.output.splitlines()[0].startswith("version 2 (current): ")
    assert "    inverter-overheating: above 80 -> 85" in history.output


def test_export_before_any_version_exists_says_so_in_one_line(deployment: Deployment) -> None:
    result = deployment.cli("rules", "export", "-c", str(deployment.config))

    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: the database holds no rule version yet: nothing to export"
    )
