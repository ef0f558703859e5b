"""The rule editor's forms over HTTP, as a browser posts them (see test_browser_rules.py
for the whole loop in Chromium): inheritance, validation by field, save, rollback,
read-only roles."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.web.console import csrf_of, sign_in, submit
from tests.web.desk import ANA, OPS, VIEWER, Desk, running_desk
from tests.web.html import visible_text

PAGE = "/rules/inverter-overheating"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as desk:
        yield desk


def signed_in(desk: Desk, token: str) -> TestClient:
    client = TestClient(desk.web)
    sign_in(client, token)
    return client


def form_of(page: str) -> dict[str, str]:
    """The rule form's text inputs as the page fills them."""
    import re

    fields = dict(
        re.findall(r'<input type="text" name="([^"]+)" id="field-[^"]+" value="([^"]*)"', page)
    )
    fields.update(re.findall(r'<input type="text" name="(ov\d+\.[a-z]+)" value="([^"]*)"', page))
    for name in re.findall(
        r'<input type="checkbox" name="([^"]+)" id="field-[^"]+" value="yes" checked>', page
    ):
        fields.update({name: "yes", f"{name}.shown": "1"})
    fields["overrides"] = re.search(r'name="overrides" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    fields["base_version"] = re.search(r'name="base_version" value="(\d*)"', page).group(1)  # type: ignore[union-attr]
    return fields


def test_the_rules_page_lists_the_rules_and_the_versions(desk: Desk) -> None:
    page = visible_text(signed_in(desk, VIEWER).get("/rules").text)

    assert "inverter-overheating" in page
    assert "temperature > 80; clears at 70; for 5m" in page
    assert "version 1" in page
    assert "Roll back" not in page  # viewers cannot


def test_the_editor_shows_which_level_a_device_gets_and_from_where(desk: Desk) -> None:
    ops = signed_in(desk, OPS)
    page = ops.get(PAGE).text
    fields = form_of(page)
    fields.update(
        {"ov0.device": "inv-101", "ov0.above": "75", "ov1.site": "s-cascais", "ov1.for": "2m"}
    )
    fields["comment"] = "inv-101 runs hot on its roof"

    saved = ops.post(PAGE, data={"csrf": csrf_of(page), **fields}, follow_redirects=False)

    assert saved.status_code == 303, visible_text(saved.text)
    trace = visible_text(ops.get(f"{PAGE}?device=inv-101").text)
    assert "above 75 from device override (inv-101)" in trace
    assert "clear 70 from global (the rule)" in trace
    assert "for 2m from site override (s-cascais)" in trace
    other = visible_text(ops.get(f"{PAGE}?device=inv-201").text)
    assert "above 80 from global (the rule)" in other


def test_a_bad_value_is_shown_next_to_its_field_with_the_message_of_forewarn_check(
    desk: Desk,
) -> None:
    ops = signed_in(desk, OPS)
    page = ops.get(PAGE).text
    fields = {**form_of(page), "above": "hot", "comment": "try"}

    refused = ops.post(PAGE, data={"csrf": csrf_of(page), **fields})

    assert refused.status_code == 422
    assert (
        '<div class="field-error" id="error-above" role="alert">Input should be a valid number, '
        "unable to parse string as a number</div>" in refused.text
    )
    assert 'value="hot"' in refused.text  # what was typed stays
    with desk.app.sessions() as session:
        from forewarn.store.rulesets import current_number

        assert current_number(session) == 1


def test_a_bad_override_is_shown_in_its_row(desk: Desk) -> None:
    ops = signed_in(desk, OPS)
    page = ops.get(PAGE).text
    fields = {**form_of(page), "ov0.device": "inv-101", "ov0.for": "10x", "comment": "c"}

    refused = ops.post(PAGE, data={"csrf": csrf_of(page), **fields})

    assert refused.status_code == 422
    cell = html.unescape(refused.text.split('id="error-ov0.for"')[1][:200])
    assert cell.startswith(">'10x' is not a duration (use e.g. 30s, 10m, 2h, 1d)</div>")


def test_ops_save_a_lower_level_and_see_it_in_the_audit(desk: Desk) -> None:
    ops = signed_in(desk, OPS)
    page = ops.get(PAGE).text
    fields = {**form_of(page), "above": "75", "comment": "catch fan failures earlier"}

    saved = ops.post(PAGE, data={"csrf": csrf_of(page), **fields}, follow_redirects=False)

    assert saved.status_code == 303
    assert saved.headers["location"] == f"{PAGE}?saved=2"
    assert "Version 2 saved" in visible_text(ops.get(saved.headers["location"]).text)
    audit = visible_text(ops.get("/audit?kind=rules.change").text)
    assert "version 2 saved: inverter-overheating: above 80 -> 75" in audit
    assert "catch fan failures earlier" in audit
    assert "ops (console)" in audit


def test_an_unchanged_form_saves_nothing(desk: Desk) -> None:
    ops = signed_in(desk, OPS)
    page = ops.get(PAGE).text

    refused = ops.post(PAGE, data={"csrf": csrf_of(page), **form_of(page), "comment": "c"})

    assert refused.status_code == 409
    assert "the rules are those of version 1" in visible_text(refused.text)


def test_ops_roll_back_from_the_rules_page(desk: Desk) -> None:
    ops = signed_in(desk, OPS)
    page = ops.get(PAGE).text
    ops.post(PAGE, data={"csrf": csrf_of(page), **form_of(page), "above": "90", "comment": "c"})

    back = submit(
        ops, "/rules", "/rules/versions/1/rollback", {"comment": "90 is too late", "confirm": "yes"}
    )

    assert back.status_code == 303
    listing = visible_text(ops.get("/rules").text)
    assert "temperature > 80" in listing
    assert "rollback to 1" in listing
    assert "90 is too late" in visible_text(ops.get("/audit?kind=rules.rollback").text)


def test_viewers_and_technicians_see_the_rule_read_only_and_cannot_save(desk: Desk) -> None:
    ops_page = signed_in(desk, OPS).get(PAGE).text
    fields = {**form_of(ops_page), "above": "75", "comment": "c"}
    for token in (VIEWER, ANA):
        client = signed_in(desk, token)
        page = client.get(PAGE)
        assert page.status_code == 200
        assert "Read-only: saving a rule needs the ops role." in visible_text(page.text)
        assert "<fieldset disabled" in page.text
        assert 'id="save-rule"' not in page.text
        csrf = csrf_of(page.text)
        refused = client.post(PAGE, data={"csrf": csrf, **fields})
        assert refused.status_code == 403
    with desk.app.sessions() as session:
        from forewarn.store.rulesets import current_number

        assert current_number(session) == 1


def test_the_device_page_links_each_rule_to_its_editor_for_that_device(desk: Desk) -> None:
    page = signed_in(desk, VIEWER).get("/devices/inv-101").text

    assert 'href="/rules/inverter-overheating?device=inv-101"' in page
