"""The device page (charts with rule levels and alerts, latest values, tickets, silences)
and the search that finds a device by id, site or customer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from forewarn.config import parse_config
from forewarn.config.schema import DeviceSettings, ThresholdMonitor
from forewarn.web.charts import Point, decimate
from forewarn.web.devices import level_source
from tests.web.console import sign_in
from tests.web.desk import OPS, VIEWER, Desk, running_desk
from tests.web.html import visible_text


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as desk:
        yield desk


@pytest.fixture
def viewer(desk: Desk) -> TestClient:
    client = TestClient(desk.web)
    sign_in(client, VIEWER)
    return client


def test_the_device_page_draws_the_readings_with_the_rule_level_and_the_alert(
    desk: Desk, viewer: TestClient
) -> None:
    page = viewer.get("/devices/inv-101?window=1h")
    text = visible_text(page.text)

    assert page.status_code == 200
    svg = re.search(
        r'<div class="panel chart-box" id="chart-temperature">.*?</svg>', page.text, re.S
    )
    assert svg is not None
    chart = svg.group(0)
    assert "6 readings" in chart
    assert '<path class="series"' in chart
    assert "inverter-overheating &gt; 80" in chart  # the level, drawn across
    assert "clears at 70" in chart
    assert 'class="alert-span ' in chart  # the open alert, shaded
    assert "from global (the rule)" in text
    assert f'href="/tickets/{desk.ticket_id}"' in page.text
    assert "Silva home" in text and "Marta Silva" in text
    assert re.search(r"temperature\s+85", text)


def test_the_device_page_zooms_and_pages_through_time_by_links(viewer: TestClient) -> None:
    day = viewer.get("/devices/inv-101").text
    zoom = re.findall(r'<a href="(/devices/inv-101\?window=6h&amp;end=[^"]+)" class="zoom">', day)

    assert len(zoom) == 12
    closer = viewer.get(zoom[-1].replace("&amp;", "&"))
    assert closer.status_code == 200
    assert 'class="here">last 6h' in closer.text
    assert viewer.get("/devices/inv-101?window=7d&end=2026-11-01T00:00").status_code == 200
    assert viewer.get("/devices/inv-101?window=2y").status_code == 422
    assert viewer.get("/devices/no-such-device").status_code == 404


def test_the_device_page_lists_the_silences_that_match_it(desk: Desk) -> None:
    ops = TestClient(desk.web)
    sign_in(ops, OPS)
    ops.post(
        "/api/silences",
        json={"id": "swap", "devices": ["inv-101"], "ends": "2026-11-04T06:00:00+00:00"},
        headers={"authorization": f"Bearer {OPS}"},
    )

    text = visible_text(ops.get("/devices/inv-101").text)

    assert "swap active" in text


def test_device_ids_link_to_the_device_page(desk: Desk, viewer: TestClient) -> None:
    for page in ("/devices", "/alerts", f"/tickets/{desk.ticket_id}", f"/alerts/{desk.alert_id}"):
        assert 'href="/devices/inv-101"' in viewer.get(page).text, page


@pytest.mark.parametrize("term", ["inv-101", "Silva home", "s-cascais", "marta", "c-silva"])
def test_search_finds_a_device_by_id_site_or_customer(viewer: TestClient, term: str) -> None:
    found = viewer.get("/search", params={"q": term}).text

    assert 'href="/devices/inv-101"' in found
    assert 'href="/devices/inv-201"' not in found


def test_a_level_comes_from_the_most_specific_override() -> None:
    config = parse_config(
        """
monitors:
  - id: hot
    kind: threshold
    metric: temperature
    above: 80
    overrides:
      - {model: SunPeak 5K, above: 75}
      - {site: s-roof, above: 70}
      - {device: inv-9, above: 65}
""",
        {},
    )
    (rule,) = config.settings.monitors
    assert isinstance(rule, ThresholdMonitor)

    def device(id: str, site: str, model: str) -> DeviceSettings:
        return DeviceSettings(id=id, site=site, model=model, kind="inverter")

    assert level_source(rule, device("inv-1", "s-a", "Other")) == "global (the rule)"
    assert level_source(rule, device("inv-1", "s-a", "SunPeak 5K")) == "model override (SunPeak 5K)"
    assert level_source(rule, device("inv-1", "s-roof", "SunPeak 5K")) == "site override (s-roof)"
    assert level_source(rule, device("inv-9", "s-roof", "SunPeak 5K")) == "device override (inv-9)"


def test_decimation_keeps_every_spike_with_two_points_per_column() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    week = [Point(start + timedelta(minutes=n), 20.0) for n in range(10_080)]
    week[5_000] = Point(week[5_000].at, 99.0)
    week[7_000] = Point(week[7_000].at, -5.0)

    kept = decimate(week, start, start + timedelta(days=7), 754)

    assert len(kept) <= 2 * 755
    assert {p.value for p in kept} == {20.0, 99.0, -5.0}
    assert [p.at for p in kept] == sorted(p.at for p in kept)
