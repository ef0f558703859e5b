"""Broker settings for several ingest processes: share group and per-process client ids."""

from __future__ import annotations

import pytest

from forewarn.config import ConfigError, parse_config


def problem(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, {})
    return str(caught.value)


def test_a_share_group_puts_every_topic_in_the_group() -> None:
    config = parse_config(
        "broker:\n  share_group: forewarn\n  topics: [devices/+/telemetry, sites/+/gw]\n", {}
    )
    assert config.settings.broker.subscription_filters() == (
        "$share/forewarn/devices/+/telemetry",
        "$share/forewarn/sites/+/gw",
    )


def test_without_a_share_group_the_topics_are_subscribed_as_written() -> None:
    broker = parse_config("broker:\n  topics: [devices/+/telemetry]\n", {}).settings.broker
    assert broker.subscription_filters() == ("devices/+/telemetry",)


def test_the_instance_number_fills_the_client_id() -> None:
    broker = parse_config("broker:\n  client_id: ingest-{instance}\n", {}).settings.broker
    assert [broker.client_id_for(n) for n in (1, 2)] == ["ingest-1", "ingest-2"]


def test_it_refuses_a_share_group_with_topic_characters() -> None:
    assert problem("broker:\n  share_group: a/b\n").startswith(
        "forewarn.yaml:2: broker.share_group: a share group is 1-64 letters"
    )


def test_it_refuses_a_topic_already_shared_when_a_group_is_set() -> None:
    message = problem("broker:\n  share_group: g\n  topics: [$share/g/devices/+/telemetry]\n")
    assert "already a shared subscription" in message


def test_it_refuses_other_placeholders_in_the_client_id() -> None:
    assert "only placeholder" in problem("broker:\n  client_id: ingest-{host}\n")
