"""The technicians page: on shift, load against capacity, declines, SLA breaches, where."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.web.console import sign_in, submit
from tests.web.desk import ANA, VIEWER, Desk, running_desk
from tests.web.html import visible_text


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as desk:
        yield desk


def test_the_technicians_page_shows_load_declines_and_where_each_one_is(desk: Desk) -> None:
    ana = TestClient(desk.web)
    sign_in(ana, ANA)
    submit(ana, "/my", f"/tickets/{desk.ticket_id}/command", {"command": "enroute", "back": "/my"})
    viewer = TestClient(desk.web)
    sign_in(viewer, VIEWER)

    text = visible_text(viewer.get("/technicians").text)
    rows = {
        name: re.search(rf"{name} t-\w+ (.*?)(?= [A-Z][a-z]+ [A-Z][a-z]+ t-|$)", text)
        for name in ("Ana Costa", "Bea Matos", "Joao Reis")
    }

    ana_row = rows["Ana Costa"]
    assert ana_row is not None
    assert "on shift" in ana_row.group(1)  # no shifts configured: always on
    assert "1 / 3" in ana_row.group(1)
    assert "at or heading to Silva home" in ana_row.group(1)
    bea_row = rows["Bea Matos"]
    assert bea_row is not None and "0 / 3" in bea_row.group(1)
    page = visible_text(viewer.get("/technicians/t-ana").text)
    assert f"#{desk.ticket_id}" in page and "en route" in page
    assert viewer.get("/technicians/t-nobody").status_code == 404


def test_a_technician_reads_only_their_own_page(desk: Desk) -> None:
    ana = TestClient(desk.web)
    sign_in(ana, ANA)

    assert ana.get("/technicians/t-ana").status_code == 200
    assert ana.get("/technicians/t-bea").status_code == 404
