from __future__ import annotations

import logging
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

import forewarn
from forewarn.store.models import Device
from forewarn.ticketing.lifecycle import WORKING
from tests.web.conftest import NOW, VIEWER_TOKEN, ClientFactory
from tests.web.scenario import seed

_LABEL_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    rf"(?:\{{(?P<labels>(?:{_LABEL_PAIR},?)*)\}})?"
    r" (?P<value>\S+)$"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def series(self, name: str, label: str) -> dict[str, float]:
        return {dict(key)[label]: value for (n, key), value in self.samples.items() if n == name}


def parse(text: str) -> Exposition:
    """A strict reader of the text format: every line must be HELP, TYPE or a sample."""
    assert text.endswith("\n")
    parsed = Exposition()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in parsed.helps, f"HELP twice for {name}"
            parsed.helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in {"gauge", "counter", "histogram", "untyped"}
            assert name not in parsed.types, f"TYPE twice for {name}"
            parsed.types[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name = match["name"]
            assert _family(name, parsed.types) in parsed.types, f"sample before its TYPE: {line!r}"
            labels = frozenset(
                (k, v.encode().decode("unicode_escape"))
                for k, v in _LABEL.findall(match["labels"] or "")
            )
            key = (name, labels)
            assert key not in parsed.samples, f"duplicate sample {line!r}"
            parsed.samples[key] = float(match["value"])
    return parsed


def _family(sample: str, types: dict[str, str]) -> str:
    """The family a sample belongs to: counters drop ``_total``, histograms their suffix."""
    for suffix, kinds in (
        ("_total", {"counter"}),
        ("_bucket", {"histogram"}),
        ("_sum", {"histogram"}),
        ("_count", {"histogram"}),
    ):
        base = sample.removesuffix(suffix)
        if base != sample and types.get(base) in kinds:
            return base
    return sample


@pytest.fixture
def seeded(any_store: sessionmaker[Session]) -> sessionmaker[Session]:
    with any_store() as session:
        seed(session, NOW)
    return any_store


def test_it_exposes_the_store_gauges_computed_at_scrape_time(
    seeded: sessionmaker[Session], make_client: ClientFactory
) -> None:
    response = make_client(seeded).get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    metrics = parse(response.text)
    assert metrics.series("forewarn_devices", "state") == {"reporting": 4, "silent": 2}
    assert metrics.series("forewarn_alerts_open", "severity") == {
        "critical": 1,
        "major": 1,
        "minor": 1,
        "info": 0,
    }
    # Every status is present, zero or not, so a dashboard's series never vanish.
    assert metrics.series("forewarn_tickets_open", "status") == dict.fromkeys(WORKING, 0) | {
        "open": 1,
        "assigned": 1,
    }
    assert metrics.series("forewarn_notifications", "status") == {
        "queued": 1,
        "sending": 0,
        "sent": 1,
        "delivered": 3,
        "undelivered": 0,
        "bounced": 0,
        "failed": 1,
        "merged": 0,
        "cancelled": 0,
    }
    assert metrics.value("forewarn_quarantine_total") == 3
    assert (
        metrics.value(
            "forewarn_build_info", version=forewarn.__version__, python=platform.python_version()
        )
        == 1
    )
    assert {
        "forewarn_devices": "gauge",
        "forewarn_alerts_open": "gauge",
        "forewarn_tickets_open": "gauge",
        "forewarn_notifications": "gauge",
        "forewarn_quarantine_total": "counter",
        "forewarn_job_last_success_timestamp_seconds": "gauge",
        "forewarn_job_runs_total": "counter",
        "forewarn_outbox_oldest_due_age_seconds": "gauge",
        "forewarn_detect_to_ticket_seconds": "histogram",
        "forewarn_ticket_to_first_notice_seconds": "histogram",
        "forewarn_notification_send_seconds": "histogram",
        "forewarn_build_info": "gauge",
    }.items() <= metrics.types.items()
    # Every family explains itself.
    assert set(metrics.helps) == set(metrics.types)
    assert all(len(text) > 20 for text in metrics.helps.values())


def test_it_follows_the_clock_between_scrapes(
    seeded: sessionmaker[Session], make_client: ClientFactory
) -> None:
    later = make_client(seeded, now=NOW + timedelta(hours=1))

    metrics = parse(later.get("/metrics").text)

    # An hour on, nobody has reported within the 15-minute window.
    assert metrics.series("forewarn_devices", "state") == {"reporting": 0, "silent": 6}


def test_it_counts_with_the_same_few_queries_whatever_the_fleet_size(
    seeded: sessionmaker[Session], make_client: ClientFactory
) -> None:
    client = make_client(seeded)
    engine = seeded.kw["bind"]
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        client.get("/metrics")
        small = len(statements)
        with seeded() as session:
            session.add_all(
                Device(
                    id=f"bulk-{i:04d}",
                    site_id="site-opo-foz",
                    model="SunWave 8K",
                    kind="inverter",
                    registered_at=NOW,
                    last_seen_at=NOW,
                )
                for i in range(500)
            )
            session.commit()
        statements.clear()
        metrics = parse(client.get("/metrics").text)
    finally:
        event.remove(engine, "before_cursor_execute", count)

    # A fixed number of statements, none of them a per-row loop.
    assert len(statements) == small
    assert small <= 12
    assert metrics.value("forewarn_devices", state="reporting") == 504


def test_it_adds_samples_from_in_process_sources(
    seeded: sessionmaker[Session], make_client: ClientFactory
) -> None:
    def ingest() -> Iterable[tuple[str, Mapping[str, str], float]]:
        yield ("forewarn_ingest_messages_total", {"outcome": "stored"}, 1200)
        yield ("forewarn_ingest_messages_total", {"outcome": "quarantined"}, 3)
        yield ("forewarn_ingest_queue_depth", {}, 17.5)
        yield ("forewarn_ingest_topic_lag_seconds", {"topic": 'dev/"x"\\y\nz'}, 0.25)

    client = make_client(seeded, metrics_sources=[ingest])

    metrics = parse(client.get("/metrics").text)

    assert metrics.series("forewarn_ingest_messages_total", "outcome") == {
        "stored": 1200,
        "quarantined": 3,
    }
    assert metrics.types["forewarn_ingest_messages_total"] == "counter"
    assert metrics.value("forewarn_ingest_queue_depth") == 17.5
    assert metrics.types["forewarn_ingest_queue_depth"] == "gauge"
    assert metrics.value("forewarn_ingest_topic_lag_seconds", topic='dev/"x"\\y\nz') == 0.25
    assert metrics.value("forewarn_quarantine_total") == 3


def test_it_leaves_out_a_broken_source_and_logs_it_once(
    seeded: sessionmaker[Session],
    make_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> Iterable[tuple[str, Mapping[str, str], float]]:
        raise RuntimeError("counter lock poisoned")

    def bad_name() -> Iterable[tuple[str, Mapping[str, str], float]]:
        return [("forewarn ingest", {}, 1.0)]

    def steals_a_store_name() -> Iterable[tuple[str, Mapping[str, str], float]]:
        return [("forewarn_devices", {"state": "imaginary"}, 1.0)]

    def fine() -> Iterable[tuple[str, Mapping[str, str], float]]:
        return [("forewarn_ingest_up", {}, 1.0)]

    client = make_client(seeded, metrics_sources=[broken, bad_name, steals_a_store_name, fine])

    with caplog.at_level(logging.ERROR, logger="forewarn.web.metrics"):
        first = client.get("/metrics")
        second = client.get("/metrics")

    assert first.status_code == second.status_code == 200
    metrics = parse(second.text)
    assert metrics.value("forewarn_ingest_up") == 1
    assert "imaginary" not in second.text
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert any("counter lock poisoned" in m for m in messages)
    assert any("invalid metric name 'forewarn ingest'" in m for m in messages)
    assert any("'forewarn_devices' belongs to the store" in m for m in messages)


def test_it_needs_a_viewer_token_for_metrics_when_tokens_are_configured(
    seeded: sessionmaker[Session], make_client: ClientFactory
) -> None:
    client = make_client(seeded, tokens={VIEWER_TOKEN: "viewer"})

    anonymous = client.get("/metrics")
    scraper = client.get("/metrics", headers={"authorization": f"Bearer {VIEWER_TOKEN}"})

    assert anonymous.status_code == 401
    assert scraper.status_code == 200
    assert parse(scraper.text).value("forewarn_quarantine_total") == 3


def test_it_exposes_zeroes_for_an_empty_store(
    any_store: sessionmaker[Session], make_client: ClientFactory
) -> None:
    metrics = parse(make_client(any_store).get("/metrics").text)

    assert metrics.series("forewarn_devices", "state") == {"reporting": 0, "silent": 0}
    assert set(metrics.series("forewarn_alerts_open", "severity").values()) == {0}
    assert set(metrics.series("forewarn_tickets_open", "status").values()) == {0}
    assert set(metrics.series("forewarn_notifications", "status").values()) == {0}
    assert metrics.value("forewarn_detect_to_ticket_seconds_count") == 0
    # Without a scheduler in the store yet, the leader heartbeat shows as never run.
    assert metrics.series("forewarn_job_last_success_timestamp_seconds", "job") == {"leader": 0}
    assert metrics.value("forewarn_quarantine_total") == 0
