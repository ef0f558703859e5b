"""Take the backtest screenshot for the README:
``python -m tests.backtest.make_screenshot docs/backtest-page.png`` (``--full``: the whole
page). Stores the scripted week of tests/backtest/history.py, runs a draft that lowers
the overheating level in the console, photographs the result."""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.web.app import create_app
from tests.backtest.history import START, config, store, week
from tests.web.conftest import FixedClock
from tests.web.live import chromium, serving

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)
TOKEN = "screenshot-token-0123456789"
DRAFT = (
    "monitors:\n"
    "  - {id: hot, kind: threshold, metric: temperature, above: 70, clear: 65, for: 10m}\n"
)


def main() -> None:
    output = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as scratch:
        cfg = config(Path(scratch) / "history.db")
        store(
            cfg,
            week(
                {
                    "inv-1": [(10 * H, 40 * M, 90.0), (3 * D + 15 * H, 25 * M, 74.0)],
                    "inv-2": [(D + 13 * H, 30 * M, 72.0), (4 * D + 11 * H, 50 * M, 76.0)],
                    "inv-3": [(2 * D + 12 * H, 2 * H, 84.0)],
                }
            ),
        )
        engine = make_engine(cfg.database_url)
        app = create_app(
            cfg, make_sessionmaker(engine), FixedClock(START + 7 * D), tokens={TOKEN: "ops"}
        )
        try:
            with serving(app) as base, chromium() as browser:
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                page.goto(f"{base}/backtest?token={TOKEN}")
                page.locator("#rules").fill(DRAFT)
                page.locator("input[name=since]").fill(START.isoformat())
                page.locator("input[name=until]").fill((START + 7 * D).isoformat())
                page.get_by_role("button", name="Run backtest").click()
                page.locator("section.backtest-result").wait_for(timeout=300_000)
                # The top of the result: the cards and the chart (the table follows).
                page.screenshot(path=str(output), full_page="--full" in sys.argv)
                page.close()
        finally:
            engine.dispose()
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
