"""Take the console screenshot for the docs.

Run ``python -m tests.web.make_screenshot docs/console.png``.

Seeds a scratch SQLite store with the demo-like scenario (tests/web/scenario.py), serves
the console with uvicorn and photographs the dashboard in headless Chromium. With
``--page /tickets/1`` it photographs another page instead.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from forewarn.config.loading import parse_config
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.schema import upgrade
from forewarn.web.app import create_app
from tests.web.live import chromium, serving
from tests.web.scenario import seed

NOW = datetime(2026, 11, 25, 3, 1, tzinfo=UTC)


class _Frozen:
    def now(self) -> datetime:
        return NOW


def main() -> None:
    parser = argparse.ArgumentParser(description="Take the console screenshot for the docs.")
    parser.add_argument("output", type=Path, help="PNG file to write")
    parser.add_argument("--page", default="/", help="console path to photograph")
    parser.add_argument("--width", type=int, default=1360)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'demo.db'}")
        try:
            upgrade(engine)
            sessions = make_sessionmaker(engine)
            with sessions() as session:
                seed(session, NOW)
            # A token, so the picture shows the console as production runs it (no banner).
            token = "screenshot-token-0123456789"
            config = parse_config("", {"FOREWARN_API_TOKEN": token})
            app = create_app(config, sessions, _Frozen())
            with serving(app) as base, chromium() as browser:
                page = browser.new_page(viewport={"width": args.width, "height": args.height})
                page.goto(f"{base}{args.page}?token={token}")
                args.output.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.output), full_page=True)
                page.close()
        finally:
            engine.dispose()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
