"""The whole loop of tuning a threshold, in headless Chromium against a real ``forewarn
run`` in another process (PostgreSQL, Mosquitto): open a device's rule, see a bad value
refused by its field, backtest a lower level and read its counts and chart, save past the
budget guard, find the version in the audit, watch the next reading open an alert with no
restart, roll back. A viewer cannot save.

``FOREWARN_SCREENSHOTS=docs`` also writes ``docs/backtest.png`` (the README's picture).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.publish as publish
import pytest
from playwright.sync_api import Browser, Page, expect

from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Reading
from forewarn.store.schema import upgrade
from tests.faults.process import Forewarn, wait_for
from tests.services import Mosquitto, scratch_postgres, unavailable
from tests.web.live import CHROMIUM, chromium

pytestmark = [pytest.mark.browser, pytest.mark.mosquitto]

OPS = "ops-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
FLEET = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101", email: marta@example.com}
sites:
  - {id: s-cascais, name: Silva home, customer: c-silva, region: lisbon-west,
     location: {lat: 38.697, lon: -9.421}}
devices:
  - {id: inv-101, site: s-cascais, model: SunPeak 5K, kind: inverter}
  - {id: inv-102, site: s-cascais, model: SunPeak 5K, kind: inverter}
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter], regions: [lisbon-west]}
monitors:
  - id: inverter-overheating
    kind: threshold
    description: Heatsink too hot; the inverter derates, then trips.
    metric: temperature
    above: 80
    clear: 65
    suggested_fix: Check the cooling fan.
rules:
  budget: {messages_per_customer_per_day: 2}
"""


def history(url: str, now: datetime) -> None:
    """A week of inv-101 every 10 minutes: 55 degrees, and each afternoon three short
    peaks at 74 (above a level of 70, under the current 80)."""
    engine = make_engine(url)
    try:
        rows = []
        start = (now - timedelta(days=7)).replace(second=0, microsecond=0)
        for step in range(7 * 144):
            ts = start + timedelta(minutes=10 * step)
            peak = ts.hour in (13, 15, 17) and ts.minute < 30
            value = 74.0 if peak else 55.0
            rows.append(
                Reading(
                    device_id="inv-101", metric="temperature", ts=ts, value=value, received_at=ts
                )
            )
        with make_sessionmaker(engine).begin() as session:
            session.add_all(rows)
    finally:
        engine.dispose()


@pytest.fixture
def service(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[Forewarn, str]]:
    with scratch_postgres() as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        child = Forewarn(
            tmp_path,
            url,
            (),
            mosquitto.port,
            "service",
            extra_yaml=FLEET,
            extra_env={"FOREWARN_TOKENS": f"ops:alice:{OPS},viewer:{VIEWER}"},
        )
        child.start()
        try:
            child.wait_up()
            history(url, datetime.now(UTC))
            yield child, url
        finally:
            child.stop()
            child.http.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with chromium() as browser:
        yield browser


def signed_in(browser: Browser, url: str, token: str) -> Page:
    page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    page.goto(f"{url}/login")
    page.get_by_label("access token").fill(token)
    page.get_by_role("button", name="Open").click()
    return page


def reading(broker: Mosquitto, device: str, value: float) -> None:
    body = {"ts": datetime.now(UTC).isoformat(), "temperature": value}
    topic = f"devices/{device}/telemetry"
    publish.single(topic, json.dumps(body), qos=1, hostname=broker.host, port=broker.port)


@pytest.mark.timeout(300)
def test_ops_tune_a_threshold_from_a_device_through_backtest_save_alert_and_rollback(
    service: tuple[Forewarn, str], browser: Browser, mosquitto: Mosquitto
) -> None:
    child, _ = service
    url = child.url
    page = signed_in(browser, url, OPS)

    # From the device page to its rule, with the level it really gets and where from.
    page.goto(f"{url}/devices/inv-101")
    page.get_by_role("link", name="inverter-overheating").first.click()
    expect(page.get_by_role("row", name="above 80 from global (the rule)")).to_be_visible()

    # A bad value: refused next to its field, with forewarn check's message.
    page.locator("#field-above").fill("seventy")
    page.get_by_role("button", name="Backtest the draft").click()
    expect(page.locator("#error-above")).to_have_text(
        "Input should be a valid number, unable to parse string as a number"
    )

    # Lower the threshold and backtest it over the last 7 days for this device.
    page.locator("#field-above").fill("70")
    page.get_by_role("button", name="Backtest the draft").click()
    result = page.locator("#backtest-result [data-backtest=done]")
    expect(result).to_be_visible(timeout=60_000)
    expect(page.locator("#error-above")).to_have_text("")
    alerts = page.locator("#backtest-result .card", has_text="Alerts")
    expect(alerts.locator(".big")).to_have_text("21")  # 3 peaks a day for 7 days
    expect(alerts.locator(".hint")).to_contain_text("now 0")
    expect(page.locator("#backtest-result svg.chart")).to_be_visible()
    expect(page.locator("#backtest-budget")).to_contain_text("messages to one customer in a day")
    if os.environ.get("FOREWARN_SCREENSHOTS"):
        folder = Path(os.environ["FOREWARN_SCREENSHOTS"])
        page.locator("#backtest-panel").scroll_into_view_if_needed()
        page.screenshot(path=str(folder / "backtest.png"), full_page=True)

    # Over the budget guard: saving needs "save anyway".
    page.get_by_label("comment").fill("fans fail at 74 in summer")
    page.get_by_role("button", name="Save as version 2").click()
    expect(page.locator("#budget-warning")).to_be_visible()
    page.get_by_label("save anyway (recorded in the audit)").check()
    page.get_by_role("button", name="Save as version 2").click()
    expect(page.locator("#saved")).to_contain_text("Version 2 saved")

    # The new version in the audit, with who and why, and the override of the guard.
    page.get_by_role("link", name="See it in the audit").click()
    audit = page.locator("#audit-list")
    expect(audit).to_contain_text("version 2 saved: inverter-overheating: above 80 -> 70")
    expect(audit).to_contain_text("ops:alice")
    expect(audit).to_contain_text("fans fail at 74 in summer")
    page.goto(f"{url}/audit?kind=rules.budget_override")
    expect(page.locator("#audit-list")).to_contain_text("saved over the budget guard")

    # The running service judges the next reading by version 2: no restart.
    reading(mosquitto, "inv-102", 72)

    def alert_shown() -> bool:
        page.goto(f"{url}/alerts")
        return "inv-102" in page.locator("main").inner_text()

    wait_for(alert_shown, timeout=20, step=0.5)
    expect(page.locator("main")).to_contain_text("temperature 72 > 70")

    # Roll back to version 1: a new version 3, the level is 80 again.
    page.goto(f"{url}/rules")
    row = page.locator("#rule-versions tr", has_text="provisioned from")
    row.get_by_label("why roll back to version 1").fill("too many tickets after all")
    row.get_by_label("sure").check()
    row.get_by_role("button", name="Roll back to 1").click()
    expect(page.locator("#rule-list")).to_contain_text("temperature > 80")
    expect(page.locator("#rule-versions")).to_contain_text("rollback to 1")

    # A viewer sees the rule read-only, and a save posted anyway is refused.
    viewer = signed_in(browser, url, VIEWER)
    viewer.goto(f"{url}/rules/inverter-overheating")
    expect(viewer.locator("#read-only")).to_be_visible()
    expect(viewer.get_by_role("button", name="Save as version 4")).to_have_count(0)
    csrf = viewer.locator("input[name=csrf]").first.get_attribute("value")
    refused = viewer.request.post(
        f"{url}/rules/inverter-overheating",
        form={"csrf": csrf or "", "above": "60", "comment": "viewer try"},
    )
    assert refused.status == 403
    versions = child.http.get(
        f"{url}/api/rules/versions", headers={"authorization": f"Bearer {OPS}"}
    )
    assert versions.json()["current"] == 3
