"""The console's heaviest page: a device with a week of one-minute readings.

    python benchmarks/console.py            # measure, print a table
    python benchmarks/console.py --shots docs/   # also photograph device, KPIs, phone

One device (``inv-101``) gets 10 080 readings per metric (a week at one per minute) for
two metrics, plus the overheating that opens an alert and a ticket. Measured:

* server: time for ``GET /devices/inv-101?window=7d`` through the ASGI app (median of
  ``--rounds``), and the page's size in bytes (raw and gzip-compressed);
* browser: headless Chromium, from navigation start to the load event, and to the first
  contentful paint (median of ``--rounds``), served by uvicorn on loopback.

The charts are server-side SVG with min/max decimation (forewarn.web.charts), so the page
carries at most two points per pixel column whatever the number of readings.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.web.console import sign_in
from tests.web.desk import ANA, OPS, running_desk, seed_week
from tests.web.live import chromium, serving

PAGE = "/devices/inv-101?window=7d"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shots", type=Path, help="write device.png, kpis.png, phone.png here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, running_desk(Path(scratch)) as desk:
        written = seed_week(desk)
        desk.fleet.clock.advance(minutes=3)  # past the merge window: the notice leaves
        desk.app.sender.run_once()
        client = TestClient(desk.web)
        sign_in(client, OPS)
        client.get(PAGE)  # warm: templates compiled, SQLite pages cached
        server, body = [], b""
        for _ in range(args.rounds):
            started = time.perf_counter()
            response = client.get(PAGE)
            server.append(time.perf_counter() - started)
            body = response.content
        browser_load, paint = [], []
        with serving(desk.web) as url, chromium() as browser:
            context = browser.new_context(viewport={"width": 1360, "height": 900})
            page = context.new_page()
            page.goto(f"{url}/?token={OPS}")
            for _ in range(args.rounds):
                page.goto(f"{url}{PAGE}", wait_until="load")
                timing = page.evaluate(
                    "() => { const n = performance.getEntriesByType('navigation')[0];"
                    " const p = performance.getEntriesByName('first-contentful-paint')[0];"
                    " return [n.loadEventEnd - n.startTime, p ? p.startTime : -1]; }"
                )
                browser_load.append(timing[0] / 1000)
                paint.append(timing[1] / 1000)  # -1: not reported (headless)
            if args.shots is not None:
                args.shots.mkdir(parents=True, exist_ok=True)
                page.goto(f"{url}/devices/inv-101?window=1d")
                page.screenshot(path=str(args.shots / "device.png"), full_page=True)
                page.goto(f"{url}/kpis")
                page.screenshot(path=str(args.shots / "kpis.png"), full_page=True)
                phone = browser.new_context(
                    viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
                ).new_page()
                phone.goto(f"{url}/my?token={ANA}")
                phone.screenshot(path=str(args.shots / "phone.png"), full_page=True)
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {load[0]:.2f}")
    print(f"readings for inv-101: {written} ({written // 2} per metric, 2 metrics)")
    print(f"page {PAGE}: {len(body):,} bytes, {len(gzip.compress(body)):,} gzipped")
    print(f"server render (median of {args.rounds}): {statistics.median(server) * 1000:.0f} ms")
    print(f"browser load event (median): {statistics.median(browser_load) * 1000:.0f} ms")
    if min(paint) >= 0:
        print(f"browser first contentful paint (median): {statistics.median(paint) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
