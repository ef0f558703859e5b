"""A small fleet with a scripted week of history, stored as the service would store it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from forewarn.config import Config, parse_config
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.readings import SqlReadingStore
from forewarn.store.reference import sync_reference_data
from forewarn.store.schema import upgrade
from forewarn.telemetry.sample import Sample

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
"""A Monday, midnight UTC (midnight in Lisbon too: winter time)."""

CONFIG = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101", email: marta@example.com,
     timezone: Europe/Lisbon, quiet_hours: "22:00-07:00"}
  - {id: c-costa, name: Rui Costa, phone: "+351912000102", timezone: Europe/Lisbon}
sites:
  - {id: s-cascais, name: Silva home, customer: c-silva, region: west, timezone: Europe/Lisbon}
  - {id: s-porto, name: Costa home, customer: c-costa, region: west, timezone: Europe/Lisbon}
devices:
  - {id: inv-1, site: s-cascais, model: SunPeak 5K, kind: inverter}
  - {id: inv-2, site: s-cascais, model: SunPeak 5K, kind: inverter}
  - {id: inv-3, site: s-porto, model: SunPeak 8K, kind: inverter}
technicians:
  - {id: t-ana, name: Ana, phone: "+351913000201", email: ana@example.com,
     skills: [inverter], regions: [west]}
monitors:
  - id: hot
    kind: threshold
    metric: temperature
    above: 80
    clear: 70
    for: 10m
    severity: major
notifications:
  merge_window: 2m
  contact_budget: 3
ticketing:
  on_alert_cleared: auto_close
  cleared_grace: 1h
  reopen_within: 2d
backtest:
  step: 1m
  prices: {currency: EUR, sms_segment: 0.05, email: 0.01}
  crew: {accept_after: 20m, visit_hours: 2h}
"""


def config(database: Path, text: str = CONFIG) -> Config:
    return parse_config(text, {"FOREWARN_DATABASE_URL": f"sqlite:///{database}"})


def temperature(device: str, at: datetime, value: float) -> Sample:
    return Sample(device, "temperature", at, at, value)


def week(excursions: dict[str, Sequence[tuple[timedelta, timedelta, float]]]) -> list[Sample]:
    """Every device reports every 5 minutes for 7 days at 50 degrees, except during its
    ``excursions`` (offset from START, length, value)."""
    out = []
    for device in ("inv-1", "inv-2", "inv-3"):
        for n in range(7 * 24 * 12):
            offset = timedelta(minutes=5 * n)
            value = 50.0
            for begin, length, hot in excursions.get(device, ()):
                if begin <= offset < begin + length:
                    value = hot
            out.append(temperature(device, START + offset, value))
    return out


def store(cfg: Config, readings: Sequence[Sample]) -> None:
    """What the ingester would have stored (readings only; no alert ran)."""
    engine = make_engine(cfg.database_url)
    try:
        upgrade(engine)
        with make_sessionmaker(engine).begin() as session:
            sync_reference_data(session, cfg.settings, START)
            SqlReadingStore(session).add_readings(readings, START)
    finally:
        engine.dispose()
