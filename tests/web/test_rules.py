"""Rules as versioned data through the API, on a live forewarn (SQLite): save, validate as
``forewarn check`` does, re-judge open alerts at once, roll back, and audit it all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from forewarn.config import parse_config
from forewarn.config.loading import ConfigError
from forewarn.store.models import Alert, AlertEvent
from tests.ticketing.test_tickets import hot, ingest
from tests.web.desk import OPS, VIEWER, Desk, running_desk


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as desk:
        yield desk


def api(desk: Desk, token: str = OPS) -> TestClient:
    return TestClient(desk.web, headers={"authorization": f"Bearer {token}"})


def overheating(client: TestClient) -> dict[str, Any]:
    rules = client.get("/api/rules").json()["rules"]
    return dict(next(r for r in rules if r["id"] == "inverter-overheating"))


def test_the_file_provisions_version_1_and_the_api_reads_it(desk: Desk) -> None:
    current = api(desk, VIEWER).get("/api/rules").json()

    assert current["version"] == 1
    assert current["author"] == "file"
    assert current["source"] == "file"
    assert [r["id"] for r in current["rules"]] == ["inverter-overheating", "inverter-faults"]
    assert overheating(api(desk, VIEWER))["above"] == 80


def test_ops_save_a_rule_and_every_save_is_a_version_with_author_diff_and_audit(
    desk: Desk,
) -> None:
    ops = api(desk)
    rule = {**overheating(ops), "above": 90, "clear": 75}

    saved = ops.put(
        "/api/rules/inverter-overheating",
        json={"rule": rule, "comment": "too many false alarms at noon", "base_version": 1},
    )

    assert saved.status_code == 201, saved.text
    assert saved.json()["version"] == 2
    assert saved.json()["changes"] == [
        "inverter-overheating: above 80 -> 90",
        "inverter-overheating: clear 70 -> 75",
    ]
    history = ops.get("/api/rules/versions").json()
    assert [v["version"] for v in history["items"]] == [2, 1]
    assert history["current"] == history["running"] == 2
    latest = history["items"][0]
    assert (latest["author"], latest["source"]) == ("ops (api)", "api")
    assert latest["comment"] == "too many false alarms at noon"
    (entry,) = ops.get("/api/audit", params={"kind": "rules.change"}).json()["items"]
    assert entry["kind"] == "rules.change"
    assert entry["actor"] == "ops (api)"
    assert entry["reason"] == "too many false alarms at noon"
    assert "above 80 -> 90" in entry["summary"]


def test_a_saved_level_rejudges_the_open_alert_and_says_the_rule_change_caused_it(
    desk: Desk,
) -> None:
    ops = api(desk)
    rule = {**overheating(ops), "above": 90, "clear": 88}  # the device reads 85

    body = {"rule": rule, "comment": "raise", "base_version": 1}
    saved = ops.put("/api/rules/inverter-overheating", json=body)

    assert saved.json()["reevaluated"] == 1
    with desk.app.sessions() as session:
        alert = session.get(Alert, desk.alert_id)
        assert alert is not None and alert.state == "resolved"
        last = session.scalars(
            select(AlertEvent)
            .where(AlertEvent.alert_id == desk.alert_id)
            .order_by(AlertEvent.id.desc())
        ).first()
    assert last is not None and last.to_state == "resolved"
    assert last.evidence["cause"] == {
        "rule_change": 2,
        "from_version": 1,
        "by": "ops (api)",
    }
    assert "under the new level > 90" in last.evidence["summary"]


def test_the_next_reading_is_judged_by_the_new_version_without_a_restart(desk: Desk) -> None:
    ops = api(desk)
    rule = {**overheating(ops), "above": 60, "clear": 55, "for": "0s"}
    saved = ops.put("/api/rules/inverter-overheating", json={"rule": rule, "comment": "c"})
    assert saved.is_success

    ingest(desk.app, [hot("inv-201", 65, desk.fleet.clock.now())])

    with desk.app.sessions() as session:
        fired = session.scalars(select(Alert).where(Alert.subject == "inv-201")).one()
    assert fired.state == "firing"
    assert "65 > 60" in fired.summary


def test_a_bad_value_is_refused_with_the_path_and_message_of_forewarn_check(desk: Desk) -> None:
    ops = api(desk)
    rule = {**overheating(ops), "above": "hot"}

    refused = ops.put("/api/rules/inverter-overheating", json={"rule": rule, "comment": "c"})

    assert refused.status_code == 422
    (problem,) = refused.json()["problems"]
    assert problem["path"] == "monitors[0].above"
    # The very message forewarn check prints for the same file.
    with pytest.raises(ConfigError) as checked:
        parse_config(
            "monitors:\n  - {id: x, kind: threshold, metric: t, above: hot}\n", {}, "f.yaml"
        )
    assert str(checked.value).endswith(f"monitors[0].above: {problem['message']}")
    assert api(desk).get("/api/rules").json()["version"] == 1  # nothing written


def test_a_rule_that_breaks_the_schema_as_a_whole_is_refused(desk: Desk) -> None:
    ops = api(desk)
    rule = {**overheating(ops), "below": 10}  # above and below

    refused = ops.put("/api/rules/inverter-overheating", json={"rule": rule, "comment": "c"})

    assert refused.status_code == 422
    assert refused.json()["problems"] == [
        {"path": "monitors[0]", "message": "set exactly one of 'above' or 'below'"}
    ]


def test_a_save_based_on_an_old_version_is_refused_instead_of_undoing_the_newer(
    desk: Desk,
) -> None:
    ops = api(desk)
    rule = overheating(ops)
    first = ops.put(
        "/api/rules/inverter-overheating",
        json={"rule": {**rule, "above": 85}, "comment": "a", "base_version": 1},
    )
    second = ops.put(
        "/api/rules/inverter-overheating",
        json={"rule": {**rule, "above": 95}, "comment": "b", "base_version": 1},
    )
    same = ops.put(
        "/api/rules/inverter-overheating",
        json={"rule": {**rule, "above": 85}, "comment": "c", "base_version": 2},
    )

    assert first.status_code == 201
    assert second.status_code == 409
    assert "version 2 was saved after version 1" in second.json()["detail"]
    assert same.status_code == 409
    assert "are those of version 2" in same.json()["detail"]


def test_rollback_makes_an_old_version_current_again_as_a_new_audited_version(
    desk: Desk,
) -> None:
    ops = api(desk)
    rule = overheating(ops)
    ops.put("/api/rules/inverter-overheating", json={"rule": {**rule, "above": 95}, "comment": "a"})

    back = ops.post("/api/rules/versions/1/rollback", json={"comment": "95 missed a real fault"})

    assert back.status_code == 201, back.text
    assert back.json()["version"] == 3
    assert back.json()["changes"] == ["inverter-overheating: above 95 -> 80"]
    latest = ops.get("/api/rules/versions/3").json()
    assert (latest["source"], latest["restored_from"]) == ("rollback", 1)
    assert overheating(ops)["above"] == 80
    kinds = [e["kind"] for e in ops.get("/api/audit", params={"kind": "rules"}).json()["items"]]
    assert kinds == ["rules.rollback", "rules.change", "rules.provision"]
    assert ops.post("/api/rules/versions/99/rollback", json={"comment": "x"}).status_code == 404


def test_viewers_read_rules_but_cannot_save_or_roll_back(desk: Desk) -> None:
    viewer = api(desk, VIEWER)
    rule = overheating(viewer)

    assert viewer.get("/api/rules/versions").status_code == 200
    saved = viewer.put("/api/rules/inverter-overheating", json={"rule": rule, "comment": "c"})
    rolled = viewer.post("/api/rules/versions/1/rollback", json={"comment": "c"})

    assert saved.status_code == 403
    assert rolled.status_code == 403
    audited = viewer.get("/api/audit", params={"kind": "rules"}).json()["items"]
    assert [e["kind"] for e in audited] == ["rules.provision"]


def test_every_ops_action_is_in_the_audit_with_who_what_and_why(desk: Desk) -> None:
    ops = api(desk)

    ops.post(f"/api/alerts/{desk.alert_id}/acknowledge", json={"note": "on it"})
    ops.post(
        "/api/silences",
        json={
            "id": "swap",
            "sites": ["s-cascais"],
            "ends": "2026-11-04T06:00:00+00:00",
            "comment": "inverter swap",
        },
    )
    ops.post("/api/silences/swap/expire")
    ops.post(f"/api/tickets/{desk.ticket_id}/assign", json={"technician": "t-bea"})
    ops.post(f"/api/tickets/{desk.ticket_id}/commands", json={"command": "cancel", "note": "dup"})

    found = ops.get("/api/audit").json()
    rows = {e["kind"]: e for e in found["items"] if e["kind"] != "rules.provision"}
    assert set(rows) == {
        "alert.acknowledge",
        "silence.create",
        "silence.expire",
        "ticket.assign",
        "ticket.command",
    }
    assert rows["alert.acknowledge"]["reason"] == "on it"
    assert rows["silence.create"]["reason"] == "inverter swap"
    assert "sites s-cascais" in rows["silence.create"]["summary"]
    assert rows["ticket.assign"]["summary"] == f"assigned ticket {desk.ticket_id} to t-bea"
    assert rows["ticket.command"]["reason"] == "dup"
    assert {e["actor"] for e in found["items"]} == {"ops (api)", "file"}
    only = ops.get("/api/audit", params={"kind": "silence"}).json()
    assert [e["kind"] for e in only["items"]] == ["silence.expire", "silence.create"]
    assert ops.get("/api/audit", params={"actor": "nobody"}).json()["total"] == 0


def test_a_refused_action_leaves_no_audit_row(desk: Desk) -> None:
    ops = api(desk)

    refused = ops.post(f"/api/tickets/{desk.ticket_id}/assign", json={"technician": "t-joao"})

    assert refused.status_code == 409
    assert ops.get("/api/audit", params={"kind": "ticket"}).json()["total"] == 0


def test_removing_a_rule_closes_its_open_alerts_and_says_why(desk: Desk) -> None:
    ops = api(desk)
    rules = ops.get("/api/rules").json()["rules"]
    kept = [r for r in rules if r["id"] != "inverter-overheating"]

    saved = ops.put("/api/rules", json={"rules": kept, "comment": "replaced by a drift rule"})

    assert saved.status_code == 201, saved.text
    assert saved.json()["changes"] == ["inverter-overheating: removed"]
    with desk.app.sessions() as session:
        alert = session.get(Alert, desk.alert_id)
        assert alert is not None and alert.state == "resolved"
        last = session.scalars(
            select(AlertEvent)
            .where(AlertEvent.alert_id == desk.alert_id)
            .order_by(AlertEvent.id.desc())
        ).first()
    assert last is not None
    assert last.evidence["summary"] == "rule inverter-overheating removed in version 2"
    assert last.evidence["cause"]["rule_change"] == 2
