from __future__ import annotations

from pathlib import Path

from forewarn.scheduler import LeaderLock
from forewarn.store.engine import make_engine


def test_it_lets_exactly_one_process_lead_on_postgresql_and_fails_over(postgres_url: str) -> None:
    first_engine, second_engine = make_engine(postgres_url), make_engine(postgres_url)
    first, second = LeaderLock(first_engine), LeaderLock(second_engine)
    try:
        assert first.try_acquire() is True
        assert second.try_acquire() is False
        assert first.try_acquire() is True  # re-checking keeps the lead
        first.release()  # the leader stops (or dies: its connection closes)
        assert second.try_acquire() is True
        assert first.try_acquire() is False
    finally:
        first.release()
        second.release()
        first_engine.dispose()
        second_engine.dispose()


def test_it_always_leads_on_sqlite_where_there_is_one_process(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert LeaderLock(engine).try_acquire() is True
    finally:
        engine.dispose()
