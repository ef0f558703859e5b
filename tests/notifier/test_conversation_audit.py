"""Ops answering and closing a customer's conversation are in the audit trail, without the
text of the answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.providers import FakeTwilio
from tests.notifier.journey import MARTA, OPS_TOKEN, Desk, desk
from tests.notifier.test_conversations import conversations, grid_fault

BEARER = {"Authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture
def journey(tmp_path: Path, fake_twilio: FakeTwilio) -> Iterator[Desk]:
    yield from desk(f"sqlite:///{tmp_path / 'forewarn.db'}", fake_twilio)


def test_a_reply_and_a_close_are_audited_without_the_answer_text(journey: Desk) -> None:
    grid_fault(journey)
    journey.sms(MARTA, "HUMAN")
    [talk] = conversations(journey)

    journey.web.post(
        f"/api/conversations/{talk.id}/reply", json={"body": "On his way."}, headers=BEARER
    )
    journey.web.post(f"/api/conversations/{talk.id}/close", headers=BEARER)

    found = journey.web.get("/api/audit", params={"kind": "conversation"}, headers=BEARER)
    rows = found.json()["items"]
    assert [r["kind"] for r in rows] == ["conversation.close", "conversation.reply"]
    assert rows[1]["summary"] == f"answered conversation {talk.id} (11 characters)"
    assert "On his way" not in found.text
