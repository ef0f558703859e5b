from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from forewarn.config import ConfigError, load_config, parse_config
from forewarn.config.reference import render_reference

ROOT = Path(__file__).resolve().parents[2]

THRESHOLD = """\
monitors:
  - id: hot
    kind: threshold
    metric: temperature
    above: 80
    for: {hold}
"""


def problem(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ or {})
    return str(caught.value)


def test_it_names_the_file_line_and_key_of_a_bad_duration() -> None:
    assert problem(THRESHOLD.format(hold="10x")) == (
        "forewarn.yaml:6: monitors[0].for: '10x' is not a duration (use e.g. 30s, 10m, 2h, 1d)"
    )


def test_it_accepts_durations_in_the_forms_ops_write() -> None:
    config = parse_config(THRESHOLD.format(hold="1h30m"), {})
    assert config.settings.monitors[0].for_ == timedelta(hours=1, minutes=30)  # type: ignore[union-attr]


def test_it_refuses_a_secret_written_in_the_file() -> None:
    text = 'notifications:\n  twilio:\n    from_number: "+15005550006"\n    auth_token: abc\n'
    assert "secrets do not belong in the file" in problem(text)
    assert "abc" not in problem(text)


def test_it_refuses_a_database_password_in_the_url() -> None:
    message = problem("database:\n  url: postgresql://forewarn:hunter2@db/forewarn\n")
    assert "FOREWARN_DATABASE_URL" in message
    assert "hunter2" not in message


def test_it_reports_a_misspelt_key_instead_of_ignoring_it() -> None:
    message = problem("scheduler:\n  offline_check_intervall: 30s\n")
    assert message.startswith("forewarn.yaml:2: scheduler.offline_check_intervall: unknown key")


def test_it_reports_an_unknown_monitor_kind() -> None:
    assert "unknown monitor kind 'nope'" in problem("monitors:\n  - {id: x, kind: nope}\n")


def test_it_reports_a_device_on_a_site_that_does_not_exist() -> None:
    text = (
        "customers: [{id: c, name: C}]\n"
        "sites: [{id: s, name: S, customer: c, region: r}]\n"
        "devices: [{id: d, site: elsewhere, model: m, kind: k}]\n"
    )
    assert problem(text) == "forewarn.yaml:3: devices[0].site: unknown site 'elsewhere'"


def test_it_reports_a_time_zone_that_does_not_exist() -> None:
    text = "customers: [{id: c, name: C, timezone: Mars/Olympus}]\n"
    assert "'Mars/Olympus' is not an IANA time zone" in problem(text)


def test_it_reports_broken_yaml_with_its_line() -> None:
    assert problem("broker:\n  port: [1883\n").startswith("forewarn.yaml:3: not valid YAML")


def test_it_refuses_a_threshold_with_no_direction() -> None:
    text = "monitors:\n  - {id: x, kind: threshold, metric: t}\n"
    assert "set exactly one of 'above' or 'below'" in problem(text)


def test_it_takes_secrets_only_from_the_environment() -> None:
    config = parse_config(
        "", {"FOREWARN_DATABASE_URL": "postgresql://u:pw@db/x", "TWILIO_AUTH_TOKEN": "s3cr3t-value"}
    )
    assert config.database_url == "postgresql://u:pw@db/x"
    assert "s3cr3t-value" not in repr(config.secrets)
    assert "u:pw" not in repr(config.secrets)


def test_it_says_when_the_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "forewarn.yaml", {})


def test_the_shipped_example_config_is_valid() -> None:
    config = load_config(ROOT / "config" / "forewarn.example.yaml", {})
    assert len(config.settings.monitors) >= 4


def test_the_config_reference_in_docs_matches_the_schema() -> None:
    committed = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/config.md is out of date: run `forewarn config-reference > docs/config.md`"
    )


PEOPLE = """\
{region}customers:
  - {{id: c-ana, name: Ana, phone: "{phone}"}}
"""


def test_it_stores_a_local_phone_number_as_e164_in_the_configured_region() -> None:
    config = parse_config(PEOPLE.format(region="phone_region: pt\n", phone="912 345 678"), {})

    assert config.settings.customers[0].phone == "+351912345678"


def test_it_accepts_an_international_number_in_any_written_form() -> None:
    config = parse_config(PEOPLE.format(region="", phone="+55 (21) 99000-0009"), {})

    assert config.settings.customers[0].phone == "+5521990000009"


def test_it_names_the_key_of_a_phone_number_that_cannot_be_read() -> None:
    assert problem(PEOPLE.format(region="", phone="912 345 678")) == (
        "forewarn.yaml:2: customers[0].phone: the number has no country code: write it as "
        "+<country> <number>, or set phone_region"
    )
    assert problem(PEOPLE.format(region="phone_region: PT\n", phone="+351 212")) == (
        "forewarn.yaml:3: customers[0].phone: not a valid phone number in PT"
    )


def test_it_reports_an_unknown_phone_region() -> None:
    assert problem(PEOPLE.format(region="phone_region: XX\n", phone="+351912345678")) == (
        "forewarn.yaml:1: phone_region: 'XX' is not a region code for phone numbers "
        "(e.g. PT, BR, US)"
    )
