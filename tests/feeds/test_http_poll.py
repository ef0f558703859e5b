"""A polled JSON endpoint, through the HTTP feed against a local server, on SQLite and
PostgreSQL: conditional requests, backoff and recovery, quarantine, the auth header."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config import parse_config
from forewarn.feeds.http_poll import HttpFeed, credential_of
from forewarn.feeds.runner import FeedRunner
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Quarantine
from forewarn.store.orders import FeedCursor, Order

NOW = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
TOKEN = "Bearer s3cret-feed-token"
CONFIG = """
feeds:
  - name: shop
    kind: http
    url: {url}/orders
    records_key: data.orders
    interval: 5m
    max_backoff: 1h
    timeout: 2s
    auth_header: X-Api-Key
    auth_env: SHOP_FEED_TOKEN
    mapping:
      order_id: id
      customer_id: customer
      promised: promised
      milestones: {{placed: placed, approved: approved}}
delays:
  rules:
    - {{id: promise-passed, kind: promise_passed}}
"""


def order(ident: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "customer": "c-1",
        "placed": "2026-11-05T09:00:00Z",
        "approved": "2026-11-05T10:00:00Z",
        "promised": "2026-11-20T00:00:00Z",
        **fields,
    }


@dataclass
class Endpoint:
    """A JSON endpoint with an ETag; ``fail`` scripts the next answers' status codes."""

    document: bytes = b""
    fail: list[int] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    pages: dict[str, bytes] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def serve(self, *records: dict[str, Any]) -> None:
        self.document = json.dumps({"data": {"orders": list(records)}}).encode()

    @property
    def etag(self) -> str:
        return f'"{hash(self.document) & 0xFFFFFFFF:x}"'

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.requests.append({"path": self.path, **dict(self.headers.items())})
                if endpoint.fail:
                    self._answer(endpoint.fail.pop(0), b'{"error": "unavailable"}', {})
                    return
                if self.path in endpoint.pages:
                    self._answer(200, endpoint.pages[self.path], {})
                    return
                etag = endpoint.etag
                if self.headers.get("If-None-Match") == etag:
                    self._answer(304, b"", {"ETag": etag})
                    return
                headers = {"ETag": etag}
                if endpoint.pages:
                    headers["Link"] = f'<{next(iter(endpoint.pages))}>; rel="next"'
                self._answer(200, endpoint.document, headers)

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if status != 304:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@dataclass
class Polling:
    endpoint: Endpoint
    feed: HttpFeed
    sessions: sessionmaker[Session]

    def count(self, model: type[object]) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def polling(database_url: str) -> Iterator[Polling]:
    from forewarn.store.schema import upgrade

    environ = {"SHOP_FEED_TOKEN": TOKEN}
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with Endpoint() as endpoint:
        settings = parse_config(CONFIG.format(url=endpoint.url), environ).settings
        runner = FeedRunner(settings, sessions, environ)
        feed = HttpFeed(
            settings.feeds[0],
            runner.intake,
            sessions,
            credential=credential_of(settings.feeds[0], environ),
            jitter=lambda: 1.0,  # the longest wait of each step: exact times to assert
        )
        try:
            yield Polling(endpoint, feed, sessions)
        finally:
            feed.close()
            runner.close()
    engine.dispose()


def test_the_first_poll_takes_the_orders_in_and_sends_the_auth_header(polling: Polling) -> None:
    polling.endpoint.serve(order("o-1"), order("o-2"))
    count = polling.feed.poll(NOW)
    assert (count.rows, count.accepted, count.quarantined) == (2, 2, 0)
    assert polling.count(Order) == 2
    assert polling.endpoint.requests[0]["X-Api-Key"] == TOKEN


def test_an_unchanged_document_answers_304_to_if_none_match_and_writes_nothing(
    polling: Polling,
) -> None:
    polling.endpoint.serve(order("o-1"))
    polling.feed.poll(NOW)
    count = polling.feed.poll(NOW + timedelta(minutes=5))
    first, second = polling.endpoint.requests
    assert "If-None-Match" not in first
    assert second["If-None-Match"] == polling.endpoint.etag
    assert count.rows == 0
    assert polling.count(Order) == 1


def test_a_poll_before_the_interval_has_passed_asks_nothing(polling: Polling) -> None:
    polling.endpoint.serve(order("o-1"))
    polling.feed.poll(NOW)
    polling.feed.poll(NOW + timedelta(minutes=2))
    assert len(polling.endpoint.requests) == 1


def test_a_changed_document_is_read_again_and_only_the_changes_are_stored(
    polling: Polling,
) -> None:
    polling.endpoint.serve(order("o-1"))
    polling.feed.poll(NOW)
    polling.endpoint.serve(order("o-1"), order("o-2"))
    count = polling.feed.poll(NOW + timedelta(minutes=5))
    assert (count.rows, count.accepted, count.unchanged) == (2, 1, 1)
    assert polling.count(Order) == 2


def test_a_503_backs_off_logs_once_and_recovers(
    polling: Polling, caplog: pytest.LogCaptureFixture
) -> None:
    polling.endpoint.serve(order("o-1"))
    polling.endpoint.fail = [503, 503]
    with caplog.at_level(logging.INFO, logger="forewarn.feeds.http_poll"):
        polling.feed.poll(NOW)  # fails: next try after one interval (5 min)
        polling.feed.poll(NOW + timedelta(minutes=4))  # not due: no request
        polling.feed.poll(NOW + timedelta(minutes=5))  # fails again: waits 10 min
        polling.feed.poll(NOW + timedelta(minutes=14))  # not due
        count = polling.feed.poll(NOW + timedelta(minutes=15))
    assert len(polling.endpoint.requests) == 3
    assert count.accepted == 1
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "fails" in m] == [
        f"feed shop: polling {polling.endpoint.url}/orders fails (HTTP 503); backing off up to "
        "1:00:00"
    ]
    assert [m for m in messages if "again" in m] == [
        f"feed shop: {polling.endpoint.url}/orders answers again after 2 failed polls"
    ]
    assert all(TOKEN not in m for m in messages)


def test_a_refused_connection_backs_off_like_an_error_answer(polling: Polling) -> None:
    polling.endpoint.__exit__(None, None, None)
    try:
        assert polling.feed.poll(NOW).rows == 0
    finally:
        polling.endpoint.__enter__()  # the fixture closes it again
    with polling.sessions() as session:
        cursor = session.get(FeedCursor, "shop")
        assert cursor is not None
        assert (cursor.failures, cursor.next_poll_at) == (1, NOW + timedelta(minutes=5))
        assert cursor.last_error is not None and "Connect" in cursor.last_error


def test_invalid_json_is_quarantined_once_and_nothing_is_stored(polling: Polling) -> None:
    polling.endpoint.document = b'{"data": {"orders": [ {"id": "o-1"'
    polling.feed.poll(NOW)
    polling.feed.poll(NOW + timedelta(minutes=5))  # the same broken document again
    with polling.sessions() as session:
        problems = session.execute(select(Quarantine.source, Quarantine.origin)).all()
    assert problems == [("feed:shop", f"{polling.endpoint.url}/orders")]
    assert polling.count(Order) == 0
    polling.endpoint.serve(order("o-1"))
    assert polling.feed.poll(NOW + timedelta(minutes=15)).accepted == 1


def test_a_bad_record_is_quarantined_with_url_and_index_while_the_good_ones_go_on(
    polling: Polling,
) -> None:
    polling.endpoint.serve(order("o-1"), order("o-2", approved="yesterday"), order("o-3"))
    count = polling.feed.poll(NOW)
    assert (count.rows, count.accepted, count.quarantined) == (3, 2, 1)
    with polling.sessions() as session:
        problems = session.execute(
            select(Quarantine.source, Quarantine.origin, Quarantine.reason)
        ).all()
    assert problems == [
        (
            "feed:shop",
            f"{polling.endpoint.url}/orders:2",
            "approved: 'yesterday' is not a timestamp",
        )
    ]


def test_the_next_pages_of_a_link_header_are_read_in_the_same_poll(polling: Polling) -> None:
    polling.endpoint.serve(order("o-1"))
    polling.endpoint.pages["/orders?page=2"] = json.dumps(
        {"data": {"orders": [order("o-2")]}}
    ).encode()
    count = polling.feed.poll(NOW)
    assert (count.rows, count.accepted) == (2, 2)
    assert [r["path"] for r in polling.endpoint.requests] == ["/orders", "/orders?page=2"]
    assert all(r["X-Api-Key"] == TOKEN for r in polling.endpoint.requests)
