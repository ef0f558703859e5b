"""Opening the database: one place that knows SQLite's and PostgreSQL's quirks."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys.

    Statement parameters are never shown (``hide_parameters``): an error or an echoed
    statement would otherwise quote SMS texts, phone numbers and addresses into the log.
    ``echo`` raises the ``sqlalchemy.engine`` logger to INFO rather than passing
    ``echo=True``, which would add a handler of its own that bypasses the log redaction.
    """
    if echo:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            hide_parameters=True,
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        _sqlite_setup(engine)
        return engine
    return create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_size=5, max_overflow=5)


def make_scratch_engine() -> Engine:
    """An empty SQLite database in memory with every table: a backtest's own store.

    One connection shared by every session (a backtest runs on one thread at a time), gone
    when the engine is disposed: nothing is written to disk, nothing is left to block the
    next run.
    """
    from forewarn.store import alerting, console, jobs  # noqa: F401 - their tables
    from forewarn.store.models import Base

    engine = create_engine(
        "sqlite://",
        hide_parameters=True,
        poolclass=StaticPool,
        connect_args={"check_same_thread": False},
    )
    _sqlite_setup(engine)
    Base.metadata.create_all(engine)
    return engine


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin, so that
        # "BEGIN IMMEDIATE" below takes the write lock up front (no upgrade deadlocks).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # 64 MiB of page cache (the default is 2 MiB): a batch of readings touches
        # index pages all over the file, and re-reading them from the OS costs more.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
