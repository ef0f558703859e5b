"""Pushed order records, through ``POST /webhooks/feeds/<name>`` with the TestClient, on
SQLite and PostgreSQL: signatures, replay window, bad bodies, idempotency."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config import parse_config
from forewarn.feeds.webhook import feed_webhook_router
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Quarantine, Ticket
from forewarn.store.orders import DelayCase, Order
from forewarn.store.schema import upgrade

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
SECRET = "webhook-shared-secret-123"
CONFIG = """
feeds:
  - name: shop
    kind: webhook
    auth_env: SHOP_WEBHOOK_SECRET
    webhook_auth: hmac
    mapping:
      order_id: id
      customer_id: customer
      promised: promised
      milestones: {placed: placed, approved: approved}
  - name: simple
    kind: webhook
    auth_env: SIMPLE_WEBHOOK_SECRET
    mapping: {order_id: id}
notifications:
  webhook_max_age: 5m
delays:
  rules:
    - {id: promise-passed, kind: promise_passed}
"""


class FrozenClock:
    def now(self) -> datetime:
        return NOW


@dataclass
class Hook:
    client: TestClient
    sessions: sessionmaker[Session]

    def post(self, body: bytes, *, at: datetime = NOW, secret: str = SECRET) -> Any:
        stamp = int(at.timestamp())
        mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        return self.client.post(
            "/webhooks/feeds/shop",
            content=body,
            headers={"X-Forewarn-Signature": f"t={stamp},v1={mac}"},
        )

    def count(self, model: type[object]) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def hook(database_url: str) -> Iterator[Hook]:
    environ = {"SHOP_WEBHOOK_SECRET": SECRET, "SIMPLE_WEBHOOK_SECRET": SECRET}
    settings = parse_config(CONFIG, environ).settings
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    app = FastAPI()
    app.include_router(feed_webhook_router(settings, sessions, FrozenClock(), environ))
    with TestClient(app) as client:
        yield Hook(client, sessions)
    engine.dispose()


def late(ident: str, **fields: Any) -> dict[str, Any]:
    """An order whose promised date has passed: the rule opens a delay case for it."""
    return {
        "id": ident,
        "customer": "c-1",
        "placed": "2026-11-05T09:00:00Z",
        "approved": "2026-11-05T10:00:00Z",
        "promised": "2026-11-20T00:00:00Z",
        **fields,
    }


def test_a_signed_list_is_taken_in_and_the_answer_counts_it(hook: Hook) -> None:
    body = json.dumps([late("o-1"), late("o-2", approved="yesterday")]).encode()
    response = hook.post(body)
    assert response.status_code == 200
    assert response.json() == {
        "records": 2,
        "accepted": 1,
        "unchanged": 0,
        "quarantined": 1,
        "problems": ["line 2: approved: 'yesterday' is not a timestamp"],
    }
    with hook.sessions() as session:
        assert session.execute(select(Quarantine.source, Quarantine.origin)).all() == [
            ("feed:shop", "webhook:shop:2")
        ]
    assert hook.count(DelayCase) == 1


def test_a_single_record_is_accepted_too(hook: Hook) -> None:
    response = hook.post(json.dumps(late("o-1")).encode())
    assert response.json()["accepted"] == 1


def test_the_same_body_twice_opens_no_second_case(hook: Hook) -> None:
    body = json.dumps([late("o-1")]).encode()
    hook.post(body)
    again = hook.post(body)
    assert (again.json()["accepted"], again.json()["unchanged"]) == (0, 1)
    assert (hook.count(Order), hook.count(DelayCase), hook.count(Ticket)) == (1, 1, 1)


def test_a_forged_signature_is_refused_and_nothing_is_stored(hook: Hook) -> None:
    response = hook.post(json.dumps([late("o-1")]).encode(), secret="guessed")
    assert response.status_code == 403
    assert response.json() == {"detail": "invalid signature"}
    assert hook.count(Order) == 0


def test_an_unsigned_request_is_refused_with_401(hook: Hook) -> None:
    response = hook.client.post("/webhooks/feeds/shop", content=b"[]")
    assert response.status_code == 401
    assert hook.count(Order) == 0


def test_a_stale_timestamp_is_refused_as_a_replay(hook: Hook) -> None:
    response = hook.post(json.dumps([late("o-1")]).encode(), at=NOW - timedelta(minutes=6))
    assert response.status_code == 403
    assert response.json() == {"detail": "stale timestamp"}
    assert hook.count(Order) == 0


def test_malformed_json_is_a_400_and_nothing_is_stored(hook: Hook) -> None:
    response = hook.post(b'[{"id": "o-1"')
    assert response.status_code == 400
    assert response.json()["detail"].startswith("body: line 1: not JSON")
    assert (hook.count(Order), hook.count(Quarantine)) == (0, 0)


def test_an_oversized_body_is_a_413_and_nothing_is_stored(hook: Hook) -> None:
    records = json.dumps([late(f"o-{i}", note="x" * 500) for i in range(12_000)]).encode()
    assert len(records) > 5_000_000
    response = hook.post(records)
    assert response.status_code == 413
    assert (hook.count(Order), hook.count(Quarantine)) == (0, 0)


def test_a_bearer_feed_takes_the_token_and_refuses_a_wrong_one(hook: Hook) -> None:
    url = "/webhooks/feeds/simple"
    body = json.dumps({"id": "o-9"}).encode()
    wrong = hook.client.post(url, content=body, headers={"Authorization": "Bearer nope"})
    right = hook.client.post(url, content=body, headers={"Authorization": f"Bearer {SECRET}"})
    assert (wrong.status_code, right.status_code) == (403, 200)
    assert hook.count(Order) == 1


def test_an_unknown_feed_is_a_404(hook: Hook) -> None:
    assert hook.client.post("/webhooks/feeds/nope", content=b"[]").status_code == 404


@pytest.mark.parametrize(
    "signature",
    ["t=1764061200,v1=sïgnätürë", "t=١٧٦٤٠٦١٢٠٠,v1=00", f"t={'9' * 5000},v1=00", "t=,v1=,x"],
    ids=["non-ascii-mac", "arabic-digits", "huge-timestamp", "empty-parts"],
)
def test_an_odd_signature_header_is_a_4xx_and_nothing_is_stored(hook: Hook, signature: str) -> None:
    response = hook.client.post(
        "/webhooks/feeds/shop",
        content=json.dumps([late("o-1")]).encode(),
        headers={"X-Forewarn-Signature": signature.encode()},  # type: ignore[dict-item]
    )
    assert response.status_code == 403
    assert hook.count(Order) == 0


def test_over_long_fields_are_quarantined_not_a_500(hook: Hook) -> None:
    body = json.dumps([late("o-" + "9" * 5000), late("o-2", customer="c" * 5000), late("o-3")])

    response = hook.post(body.encode())

    assert response.status_code == 200
    assert response.json()["accepted"] >= 1
    assert response.json()["quarantined"] + response.json()["accepted"] == 3


def test_a_body_nested_too_deeply_is_a_400_and_nothing_is_stored(hook: Hook) -> None:
    response = hook.post(b"[" * 200_000 + b"]" * 200_000)
    assert response.status_code == 400
    assert response.json()["detail"] == "body: not JSON (nested too deeply)"
    assert (hook.count(Order), hook.count(Quarantine)) == (0, 0)
