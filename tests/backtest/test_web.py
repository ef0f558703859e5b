"""Backtests through the API and the console: start, poll, read; 403, 413 and 422."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.web.app import create_app
from tests.backtest.history import START, config, store, week
from tests.web.conftest import FixedClock
from tests.web.console import csrf_of, sign_in

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)
OPS = "ops-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
LOWER = "monitors:\n  - {id: hot, kind: threshold, metric: temperature, above: 70, for: 10m}\n"
PERIOD = {"since": START.isoformat(), "until": (START + 7 * D).isoformat()}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    cfg = config(tmp_path / "history.db")
    store(cfg, week({"inv-1": [(10 * H, 40 * M, 90.0)], "inv-3": [(D, H, 72.0)]}))
    engine = make_engine(cfg.database_url)
    app = create_app(
        cfg,
        make_sessionmaker(engine),
        FixedClock(START + 7 * D),
        tokens={OPS: "ops", VIEWER: "viewer"},
    )
    with TestClient(app) as test_client:
        yield test_client
    engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def finished(client: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Poll a run until it ends (it runs on the app's worker thread)."""
    for _ in range(2400):
        run = client.get(url, headers=headers).json()
        if run["status"] in ("done", "failed"):
            return run
        threading.Event().wait(0.05)
    raise AssertionError(f"the backtest did not finish: {run}")


def test_ops_start_a_backtest_and_read_its_progress_and_result(client: TestClient) -> None:
    answer = client.post("/api/backtests", json={"rules": LOWER, **PERIOD}, headers=bearer(OPS))
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert started["status"] in ("queued", "running")
    assert answer.headers["location"] == started["url"]
    run = finished(client, started["url"], bearer(VIEWER))
    assert run["status"] == "done", run["error"]
    assert run["progress"] == 1.0
    result = run["result"]
    assert (result["current"]["alerts"], result["draft"]["alerts"]) == (1, 2)
    assert result["diff"]["appear_count"] == 1
    assert result["chart"]["draft_levels"][0]["level"] == 70


def test_the_draft_may_come_as_a_list_or_as_yaml_text(client: TestClient) -> None:
    rules = [{"id": "hot", "kind": "threshold", "metric": "temperature", "above": 70, "for": "10m"}]
    answer = client.post(
        "/api/backtests",
        json={"rules": rules, "scope": "site:s-porto", **PERIOD},
        headers=bearer(OPS),
    )
    assert answer.status_code == 202, answer.text
    result = finished(client, answer.json()["url"], bearer(OPS))["result"]
    assert (result["scope"], result["devices"], result["draft"]["alerts"]) == ("site:s-porto", 1, 1)
    answer = client.post(
        "/api/backtests",
        content=LOWER,
        params=PERIOD,
        headers={**bearer(OPS), "Content-Type": "application/yaml"},
    )
    assert answer.status_code == 202, answer.text


def test_a_viewer_cannot_start_one_and_an_anonymous_caller_cannot_read_one(
    client: TestClient,
) -> None:
    refused = client.post("/api/backtests", json={"rules": LOWER}, headers=bearer(VIEWER))
    assert refused.status_code == 403
    assert client.post("/api/backtests", json={"rules": LOWER}).status_code == 401
    assert client.get("/api/backtests/0123456789abcdef", headers=bearer(VIEWER)).status_code == 404
    assert client.get("/api/backtests/nope", headers=bearer(OPS)).status_code == 404


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            {
                "rules": "monitors:\n  - id: hot\n    kind: threshold\n"
                "    metric: temperature\n    above: warm\n"
            },
            "draft:5: monitors[0].above: Input should be a valid number",
        ),
        (
            {"rules": [{"id": "hot", "kind": "sideways"}]},
            "draft: monitors[0]: unknown monitor kind",
        ),
        ({"rules": LOWER, "scope": "site:nowhere"}, "no site 'nowhere'"),
        ({"rules": LOWER, "since": "last tuesday"}, "neither a duration"),
        ({"rules": LOWER, "colour": "red"}, "colour: unknown field"),
        ({"scope": "fleet"}, 'give {"rules"'),
    ],
)
def test_a_bad_draft_is_422_with_the_messages_of_forewarn_check(
    client: TestClient, body: dict[str, Any], problem: str
) -> None:
    answer = client.post("/api/backtests", json=body, headers=bearer(OPS))
    assert answer.status_code == 422
    assert problem in answer.json()["detail"], answer.json()


def test_a_huge_body_is_413(client: TestClient) -> None:
    huge = LOWER + "# " + "x" * 300_000 + "\n"
    answer = client.post("/api/backtests", json={"rules": huge}, headers=bearer(OPS))
    assert answer.status_code == 413


def test_the_console_page_runs_a_draft_and_shows_the_result_with_its_chart(
    client: TestClient,
) -> None:
    sign_in(client, OPS)
    form = client.get("/backtest")
    assert form.status_code == 200
    assert "inverter" not in form.text or "monitors:" in form.text
    assert "id: hot" in form.text  # the current rules are the starting draft
    started = client.post(
        "/backtest",
        data={"csrf": csrf_of(form.text), "rules": LOWER, "scope": "fleet", **PERIOD},
        follow_redirects=False,
    )
    assert started.status_code == 303
    page_url = started.headers["location"]
    run_id = page_url.rsplit("/", 1)[1]
    progress = client.get(f"/backtest/{run_id}/progress").json()
    assert progress["status"] in ("queued", "running", "done")
    for _ in range(2400):
        if client.get(f"/backtest/{run_id}/progress").json()["status"] == "done":
            break
        threading.Event().wait(0.05)
    page = client.get(page_url)
    assert page.status_code == 200
    assert "<svg" in page.text and "alert-span draft" in page.text
    assert "Alerts that appear and disappear" in page.text
    fragment = client.get(f"/backtest/{run_id}/result")
    assert fragment.text.lstrip().startswith('<section class="backtest-result"')
    script = client.get("/backtest.js")
    assert script.headers["content-type"].startswith("text/javascript")


def test_a_bad_draft_in_the_console_is_shown_beside_the_field(client: TestClient) -> None:
    sign_in(client, OPS)
    form = client.get("/backtest")
    answer = client.post(
        "/backtest",
        data={"csrf": csrf_of(form.text), "rules": "monitors: [{id: hot, kind: threshold}]"},
    )
    assert answer.status_code == 422
    assert "Nothing was run" in answer.text
    assert "draft:1: monitors[0].metric: is required" in answer.text


def test_a_viewer_sees_the_form_but_cannot_run_it(client: TestClient) -> None:
    sign_in(client, VIEWER)
    form = client.get("/backtest")
    assert form.status_code == 200
    assert "needs the ops role" in form.text
    refused = client.post(
        "/backtest", data={"csrf": csrf_of(form.text), "rules": LOWER}, follow_redirects=False
    )
    assert refused.status_code == 403
