from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from forewarn.store.engine import make_engine
from forewarn.store.schema import upgrade
from tests.faults.process import Forewarn
from tests.services import scratch_postgres

Spawn = Callable[..., Forewarn]


@pytest.fixture
def migrated_postgres() -> Iterator[str]:
    """A scratch PostgreSQL database at the current schema."""
    with scratch_postgres() as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield url


@pytest.fixture
def spawn(tmp_path: Path, migrated_postgres: str) -> Iterator[Spawn]:
    """Start ``forewarn run`` children on the scratch database; all stopped afterwards."""
    started: list[Forewarn] = []

    def factory(name: str, *roles: str, broker_port: int | None = None) -> Forewarn:
        child = Forewarn(tmp_path, migrated_postgres, roles, broker_port, name)
        child.start()
        started.append(child)
        return child

    try:
        yield factory
    finally:
        for child in started:
            if child.process is not None and child.process.poll() is None:
                child.process.kill()
                child.process.wait(timeout=10)
            child.http.close()
