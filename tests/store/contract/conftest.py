"""One contract suite for the stores of :mod:`forewarn.ports`: every test runs against the
in-memory store, SQLite and PostgreSQL, and no database connection may be left checked out
afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forewarn.config import parse_config
from forewarn.config.schema import Settings
from forewarn.ports import Stores
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.memory import MemoryStore, RecordingSink
from forewarn.store.reference import sync_reference_data
from forewarn.store.schema import upgrade
from forewarn.store.units import SqlStorage
from tests.services import scratch_postgres

REGISTERED = datetime(2026, 3, 1, tzinfo=UTC)
FLEET = """
customers: [{id: c1, name: Marta, phone: "+351912000101"}]
sites:
  - {id: s1, name: Home, customer: c1, region: west}
  - {id: s2, name: Shop, customer: c1, region: west}
devices:
  - {id: d1, site: s1, model: M, kind: inverter}
  - {id: d2, site: s1, model: M, kind: inverter}
  - {id: d3, site: s1, model: M, kind: inverter}
  - {id: d4, site: s1, model: M, kind: inverter}
  - {id: b1, site: s2, model: B, kind: battery}
"""

Unit = Callable[[], AbstractContextManager[Stores]]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return parse_config(FLEET, {}).settings


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def unit(request: pytest.FixtureRequest, tmp_path: Path, settings: Settings) -> Iterator[Unit]:
    """Opens a unit of work on a fresh store holding :data:`FLEET`."""
    if request.param == "memory":
        store = MemoryStore(settings.devices, settings.sites, REGISTERED)
        yield store.begin
        return
    if request.param == "sqlite":
        yield from _sql(f"sqlite:///{tmp_path / 'contract.db'}", settings)
    else:
        with scratch_postgres() as url:
            yield from _sql(url, settings)


def _sql(url: str, settings: Settings) -> Iterator[Unit]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            sync_reference_data(session, settings, REGISTERED)
        storage = SqlStorage(sessions, lambda _: RecordingSink())
        yield storage.begin
        assert engine.pool.checkedout() == 0, "a connection was left checked out"  # type: ignore[attr-defined]
    finally:
        engine.dispose()
