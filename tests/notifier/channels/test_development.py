from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from forewarn.notifier.channels import Outbound
from forewarn.notifier.channels.development import DevelopmentChannel

SMS = Outbound(notification_id=12, to="+351912345678", body="Technician arrives 9-11h.")
EMAIL = Outbound(
    notification_id=13,
    to="joana.silva@example.com",
    subject="We found a fault on your inverter",
    body="A technician is coming.",
    html="<p>A technician is coming.</p>",
)


def test_it_prints_a_framed_block_with_the_recipient_masked() -> None:
    stream = io.StringIO()

    DevelopmentChannel("sms", stream=stream).send(SMS)

    printed = stream.getvalue()
    assert "SMS #12 to +35191****678" in printed
    assert "Technician arrives 9-11h." in printed
    assert "+351912345678" not in printed
    assert printed.startswith("─")
    assert printed.rstrip().endswith("─")


def test_it_shows_the_subject_of_an_email() -> None:
    stream = io.StringIO()

    DevelopmentChannel("email", stream=stream).send(EMAIL)

    printed = stream.getvalue()
    assert "EMAIL #13 to j***@example.com" in printed
    assert "Subject: We found a fault on your inverter" in printed
    assert "joana.silva" not in printed


def test_it_returns_a_receipt_named_after_the_notification() -> None:
    receipt = DevelopmentChannel("sms", stream=io.StringIO()).send(SMS)

    assert (receipt.provider, receipt.provider_message_id) == ("development", "dev-12")


def test_it_appends_one_json_line_per_message_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "outbox.jsonl"
    channel = DevelopmentChannel("email", stream=io.StringIO(), log_path=log)

    channel.send(EMAIL)
    channel.send(EMAIL)

    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2
    assert lines[0] == {
        "notification_id": 13,
        "medium": "email",
        "to": "j***@example.com",
        "subject": "We found a fault on your inverter",
        "body": "A technician is coming.",
        "html": "<p>A technician is coming.</p>",
    }


def test_it_writes_to_standard_output_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    DevelopmentChannel("sms").send(SMS)

    assert "SMS #12 to +35191****678" in capsys.readouterr().out
