from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import (
    Mosquitto,
    mosquitto_binary,
    running_mosquitto,
    scratch_postgres,
    unavailable,
)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto broker on a free port, stopped after the test."""
    if mosquitto_binary() is None:
        unavailable("the mosquitto binary is not installed (apt-get install mosquitto)")
    with running_mosquitto(tmp_path) as broker:
        yield broker


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test."""
    with scratch_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'forewarn.db'}"
    else:
        with scratch_postgres() as url:
            yield url
