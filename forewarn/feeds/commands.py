"""``forewarn feeds ...``: generate a sample export, replay a historical feed and report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forewarn.commandline import fail, load
from forewarn.config.durations import parse_duration

if TYPE_CHECKING:
    from forewarn.config.schema import FeedSettings, Settings
    from forewarn.feeds.readers import Format
    from forewarn.feeds.replay import ReplayResult, Report

feeds_app = typer.Typer(help="Order and shipping feeds.", no_args_is_help=True)


@feeds_app.command("sample")
def sample(
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write.")],
    orders: Annotated[int, typer.Option(help="Number of orders.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 7,
    days: Annotated[int, typer.Option(help="Days of purchases.")] = 150,
    regions: Annotated[
        bool, typer.Option(help="Add a customer_state column (not in the real orders file).")
    ] = False,
) -> None:
    """Write a realistic Olist-shaped order export (seeded), for trying the delay rules."""
    from forewarn.feeds.sample import SampleSpec, generate, to_csv

    rows = generate(SampleSpec(orders=orders, seed=seed, days=days, with_region=regions))
    output.write_text(to_csv(rows), encoding="utf-8")
    typer.echo(f"wrote {len(rows)} orders to {output}")


@feeds_app.command("report")
def report(
    file: Annotated[Path, typer.Argument(help="A historical export (CSV, JSON, JSON Lines).")],
    config: Annotated[Path, typer.Option("--config", "-c", help="The forewarn.yaml.")] = Path(
        "forewarn.yaml"
    ),
    feed: Annotated[
        str | None, typer.Option(help="Which feed's mapping to read it with (default: first).")
    ] = None,
    warmup: Annotated[
        str, typer.Option(help="Learn transit times first; measure orders placed after this.")
    ] = "30d",
    step: Annotated[str, typer.Option(help="Simulated clock step between sweeps.")] = "1h",
    database: Annotated[
        str | None,
        typer.Option(
            help="Replay into this scratch SQL database instead of memory (much slower; the "
            "same figures: a check of the stores)."
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    risk_table: Annotated[
        bool,
        typer.Option(
            "--risk-table/--no-risk-table",
            help="Also print the delay-risk trade-off table (probability threshold -> late "
            "orders warned by the promise, on-time orders warned, median lead).",
        ),
    ] = True,
) -> None:
    """Replay a historical feed in event time and report: late orders warned, how many days
    before the promised date, on-time orders warned needlessly; and the trade-off table
    that says which risk threshold to warn at (docs/delays.md)."""
    from forewarn.feeds.readers import DocumentProblem, format_of
    from forewarn.feeds.tradeoff import feed_tradeoff

    loaded = load(config)
    feeds = {f.name: f for f in loaded.settings.feeds}
    if not feeds:
        raise fail(f"{config} defines no feeds: nothing says how to read {file}")
    chosen = feeds.get(feed) if feed else next(iter(feeds.values()))
    if chosen is None:
        raise fail(f"no feed {feed!r} in {config}; choose from {', '.join(feeds)}")
    fmt = format_of(file.name)
    if fmt is None:
        raise fail(f"{file}: unknown format (use .csv, .json or .jsonl)")
    try:
        data = file.read_bytes()
        warm, every = parse_duration(warmup), parse_duration(step)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from exc
    if every <= timedelta(0):
        raise fail("--step must be positive")
    try:
        if database is None:
            result, measured = _in_memory(loaded.settings, chosen, data, fmt, every, warm)
        else:
            result, measured = _in_sql(database, loaded.settings, chosen, data, fmt, every, warm)
    except DocumentProblem as exc:
        raise fail(f"{file}: {exc}") from exc
    since = result.started + warm if result.started else None
    table = feed_tradeoff(loaded.settings, chosen, data, fmt) if risk_table else None
    if json_output:
        payload = {
            **{k: v for k, v in vars(measured).items() if k != "lead_days"},
            "lead_days": sorted(round(d, 2) for d in measured.lead_days),
            "rows": result.count.rows,
            "quarantined": result.count.quarantined,
            "measured_from": _iso(since),
            "replayed": [_iso(result.started), _iso(result.ended)],
            "risk_tradeoff": None if table is None else table.as_dict(),
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(
        f"{file}: {result.count.rows} rows, {result.count.quarantined} quarantined; replayed "
        f"{_iso(result.started)} .. {_iso(result.ended)}; measuring orders placed from "
        f"{_iso(since)}"
    )
    for problem in result.count.problems[:5]:
        typer.echo(f"  quarantined: {problem}")
    for line in measured.lines():
        typer.echo(line)
    typer.echo("learned transit times (days to delivery, all carriers and regions):")
    for row in measured.transit:
        if row["carrier"] == "*" and row["region"] == "*":
            typer.echo(
                f"  from {row['from']:<18} n={row['samples']:<6} p50 {row['p50_days']:>5}  "
                f"p80 {row['p80_days']:>5}  p95 {row['p95_days']:>5}"
            )
    if table is not None:
        for line in table.lines():
            typer.echo(line)


def _in_memory(
    settings: Settings,
    feed: FeedSettings,
    data: bytes,
    fmt: Format,
    step: timedelta,
    warmup: timedelta,
) -> tuple[ReplayResult, Report]:
    from forewarn.feeds.replay import measure, replay
    from forewarn.store.memory_tickets import MemoryTicketStores

    stores = MemoryTicketStores()
    result = replay(settings, feed, data, fmt, stores, step=step)
    since = result.started + warmup if result.started else None
    orders = stores.orders
    return result, measure(
        orders.rows.values(), stores.cases.rows.values(), orders.transit(), since
    )


def _in_sql(
    url: str,
    settings: Settings,
    feed: FeedSettings,
    data: bytes,
    fmt: Format,
    step: timedelta,
    warmup: timedelta,
) -> tuple[ReplayResult, Report]:
    from forewarn.feeds.replay import measure, replay
    from forewarn.store.engine import make_engine, make_sessionmaker
    from forewarn.store.orders import all_cases, all_orders
    from forewarn.store.schema import upgrade
    from forewarn.store.tickets import SqlTicketStorage, SqlTicketStores

    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        result = replay(settings, feed, data, fmt, SqlTicketStorage(sessions), step=step)
        since = result.started + warmup if result.started else None
        with sessions() as session:
            transit = SqlTicketStores(session).orders.transit()
            return result, measure(all_orders(session), all_cases(session), transit, since)
    finally:
        engine.dispose()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="minutes") if value is not None else None
