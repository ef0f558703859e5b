"""The backtest page in headless Chromium: paste a draft, run it, watch the progress
script hand over to the result with its chart; usable at a phone's 390 px."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.web.app import create_app
from tests.backtest.history import START, config, store, week
from tests.web.conftest import FixedClock
from tests.web.live import chromium, serving

pytest.importorskip("playwright")

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)
OPS = "ops-token-0123456789abcdef"
LOWER = "monitors:\n  - {id: hot, kind: threshold, metric: temperature, above: 70, for: 10m}\n"


@pytest.fixture
def console(tmp_path: Path) -> Iterator[str]:
    cfg = config(tmp_path / "history.db")
    store(cfg, week({"inv-1": [(10 * H, 40 * M, 90.0)], "inv-3": [(D, H, 72.0)]}))
    engine = make_engine(cfg.database_url)
    app = create_app(cfg, make_sessionmaker(engine), FixedClock(START + 7 * D), tokens={OPS: "ops"})
    try:
        with serving(app) as base:
            yield base
    finally:
        engine.dispose()


def test_ops_run_a_draft_and_read_its_counts_and_chart(console: str) -> None:
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{console}/backtest?token={OPS}")
        expect(page.get_by_role("heading", name="Backtest")).to_be_visible()
        page.locator("#rules").fill(LOWER)
        page.locator("input[name=since]").fill(START.isoformat())
        page.locator("input[name=until]").fill((START + 7 * D).isoformat())
        page.get_by_role("button", name="Run backtest").click()
        # The script polls the progress and loads the result when the run is done.
        result = page.locator("section.backtest-result")
        expect(result).to_be_visible(timeout=180_000)
        expect(result.locator(".card").first).to_contain_text("2")  # alerts: 1 now, 2 draft
        expect(page.locator("svg.chart .alert-span.draft")).to_have_count(1)
        expect(page.locator("svg.chart .level.draft")).to_have_count(1)
        expect(page.locator("svg.chart .level.current")).to_have_count(1)
        expect(page.get_by_text("Appear with the draft (1)")).to_be_visible()
        assert errors == []  # the page's script ran under the CSP without complaint
        page.set_viewport_size({"width": 390, "height": 844})
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"the result is {width} px wide on a 390 px phone"
        page.close()
