from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.loading import Config, parse_config
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.schema import upgrade
from forewarn.web.app import create_app
from forewarn.web.metrics import MetricsSource
from tests.web.scenario import Scenario, seed

NOW = datetime(2026, 11, 25, 3, 1, tzinfo=UTC)

OPS_TOKEN = "ops-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"
TECH_TOKEN = "technician-token-0123456789"


@dataclass
class FixedClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


def make_config(environ: Mapping[str, str] | None = None, yaml_text: str = "") -> Config:
    return parse_config(yaml_text, dict(environ or {}))


def open_store(url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """An empty, migrated SQLite store."""
    yield from open_store(f"sqlite:///{tmp_path / 'forewarn.db'}")


@pytest.fixture
def any_store(database_url: str) -> Iterator[sessionmaker[Session]]:
    """An empty, migrated store on SQLite and on PostgreSQL."""
    yield from open_store(database_url)


@pytest.fixture
def scenario(store: sessionmaker[Session]) -> Scenario:
    with store() as session:
        return seed(session, NOW)


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    """Build the app through ``create_app`` and return a TestClient, closed afterwards."""
    with ExitStack() as stack:

        def factory(
            sessions: sessionmaker[Session],
            *,
            environ: Mapping[str, str] | None = None,
            tokens: Mapping[str, str] | None = None,
            yaml_text: str = "",
            metrics_sources: Sequence[MetricsSource] = (),
            now: datetime = NOW,
            raise_server_exceptions: bool = True,
        ) -> TestClient:
            app = create_app(
                make_config(environ, yaml_text),
                sessions,
                FixedClock(now),
                tokens=tokens or {},
                metrics_sources=metrics_sources,
            )
            client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
            return stack.enter_context(client)

        yield factory


@pytest.fixture
def client(
    store: sessionmaker[Session], scenario: Scenario, make_client: ClientFactory
) -> TestClient:
    """The open console (no token configured) over the scenario."""
    return make_client(store)
