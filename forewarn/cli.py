"""The ``forewarn`` command. Every user error ends in one clear line and exit status 2."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from forewarn.backtest.command import backtest
from forewarn.commandline import fail, load
from forewarn.config import Config, ConfigError
from forewarn.config.durations import parse_duration
from forewarn.feeds.commands import feeds_app
from forewarn.rule_commands import rules_app

app = typer.Typer(
    name="forewarn",
    help="Proactive monitoring: catch device faults and late orders, open the work order, "
    "tell the customer first.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(feeds_app, name="feeds")
app.add_typer(rules_app, name="rules")
app.command()(backtest)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The forewarn.yaml to use.", show_default=True)
]


LogLevelOption = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        envvar="FOREWARN_LOG_LEVEL",
        help="DEBUG, INFO, WARNING or ERROR. No level logs a credential.",
        show_default=False,
    ),
]
LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        envvar="FOREWARN_LOG_FORMAT",
        help="text, or json (one object per line, for log shippers).",
        show_default=False,
    ),
]


@dataclass
class _Logging:
    """The logging asked for on the command line, before any subcommand option."""

    level: str | None = None
    log_format: str | None = None


def _logging(
    ctx: typer.Context,
    level: str | None,
    log_format: str | None,
    *,
    default_level: str,
    config: Config | None = None,
) -> None:
    """Set up logging: the command's option, else the global one, else the config, else
    ``default_level`` and text. Exit 2 on an unknown level or format."""
    from forewarn.logs import configure_logging, secret_environment_names

    given = ctx.find_object(_Logging) or _Logging()
    configured = config.settings.logging if config is not None else None
    level = level or given.level or (configured.level if configured else None) or default_level
    chosen = log_format or given.log_format or (configured.format if configured else "text")
    if chosen not in ("text", "json"):
        raise fail(f"--log-format must be text or json, not {chosen!r}")
    try:
        configure_logging(
            level,
            "json" if chosen == "json" else "text",
            environ=os.environ,
            secret_names=secret_environment_names(config.settings) if config else (),
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc


@app.callback()
def _options(
    ctx: typer.Context, log_level: LogLevelOption = None, log_format: LogFormatOption = None
) -> None:
    """Logging options for every command (``forewarn --log-format json check ...``)."""
    ctx.obj = _Logging(log_level, log_format)
    _logging(ctx, None, None, default_level="WARNING")


@app.command()
def check(config: ConfigOption = Path("forewarn.yaml")) -> None:
    """Validate the config file and every message template; exit 2 on any problem."""
    from forewarn.notifier.render import Renderer, check_templates

    loaded = load(config)
    problems = check_templates(
        Renderer(default_locale=loaded.settings.notifications.default_locale)
    )
    if problems:
        for problem in problems:
            typer.echo(f"error: template {problem}", err=True)
        raise typer.Exit(2)
    s = loaded.settings
    typer.echo(
        f"{config}: OK: {len(s.devices)} devices at {len(s.sites)} sites, "
        f"{len(s.monitors)} monitors, {len(s.technicians)} technicians, "
        f"{len(s.customers)} customers; templates render"
    )
    from forewarn.notifier.render import sms_costs

    typer.echo("SMS cost per template (example context):")
    for cost in sms_costs(Renderer(default_locale=s.notifications.default_locale)):
        typer.echo(
            f"  {cost.event}/{cost.locale}: {cost.characters} characters, {cost.encoding}, "
            f"{cost.segments} segment{'s' if cost.segments != 1 else ''}"
        )


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOption = Path("forewarn.yaml"),
    url: Annotated[str | None, typer.Option(help="Database URL (overrides the config).")] = None,
) -> None:
    """Create or migrate the database schema to this version of forewarn."""
    from sqlalchemy.exc import SQLAlchemyError

    from forewarn.store.engine import make_engine
    from forewarn.store.schema import current_revision, upgrade

    target = url or os.environ.get("FOREWARN_DATABASE_URL") or load(config).database_url
    engine = make_engine(target)
    try:
        upgrade(engine)
        typer.echo(f"database at revision {current_revision(engine)}")
    except SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        raise fail(f"cannot migrate the database: {detail}") from exc
    finally:
        engine.dispose()


@app.command()
def run(
    ctx: typer.Context,
    config: ConfigOption = Path("forewarn.yaml"),
    role: Annotated[
        list[str] | None,
        typer.Option(help="Run only these roles: ingest, scheduler, sender, web (repeatable)."),
    ] = None,
    instance: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar="FOREWARN_INSTANCE",
            help="Which ingest process this is (1, 2, ...): fills {instance} in "
            "broker.client_id, so each process on a shared subscription has its own "
            "stable MQTT session.",
        ),
    ] = None,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run the service: ingest, monitors, scheduler, senders and the web console.

    Logs go to stderr at INFO (or ``logging.level`` in the config): state changes only."""
    from forewarn.service import ROLES, Runtime, StartupError

    _logging(ctx, log_level, log_format, default_level="INFO")
    roles = tuple(role or ROLES)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise fail(f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(ROLES)}")
    loaded = load(config)
    if instance is not None and "{instance}" not in loaded.settings.broker.client_id:
        raise fail(
            f"{config}: broker.client_id: {loaded.settings.broker.client_id!r} has no "
            "{instance}, so --instance would give every ingest process the same MQTT "
            "session; write e.g. 'forewarn-ingest-{instance}'"
        )
    # Again, now that the config may set the level and name further secret variables.
    _logging(ctx, log_level, log_format, default_level="INFO", config=loaded)
    try:
        runtime = Runtime.start(loaded, roles, instance=instance or 1)
    except (StartupError, ConfigError) as exc:
        raise fail(str(exc)) from exc
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if runtime.web is not None:
        from forewarn.logs import announce

        announce(
            f"forewarn: console at {runtime.web.url} (health: {runtime.web.url}readyz)"
            + (" -- open: no access token is set" if runtime.web.open_console else "")
        )
    try:
        runtime.serve_until(stop)
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()


@app.command()
def demo(
    ctx: typer.Context,
    headless: Annotated[
        bool, typer.Option(help="Run the scenario without interaction and exit.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with the outcome.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port of the console after the scenario.")] = 8080,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the story.")] = 90.0,
    broker: Annotated[
        bool,
        typer.Option(
            help="Use a private Mosquitto when installed; --no-broker feeds the readings "
            "straight into the ingest pipeline, as when Mosquitto is missing."
        ),
    ] = True,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """The one-command tour: a simulated fleet, a fault, a work order, customer notices."""
    from forewarn.demo import run_demo
    from forewarn.service import StartupError

    _logging(ctx, log_level, log_format, default_level="WARNING")

    def interrupted(*_: object) -> None:
        # SIGTERM takes the same way out as Ctrl-C: the broker is stopped and the
        # temporary folder removed on the way.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        code = run_demo(
            headless=headless, json_output=json_output, port=port, timeout=timeout, broker=broker
        )
    except StartupError as exc:
        raise fail(str(exc)) from exc
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


@app.command()
def simulate(
    config: ConfigOption = Path("forewarn.yaml"),
    interval: Annotated[str, typer.Option(help="Time between readings of a device.")] = "5s",
    duration: Annotated[str, typer.Option(help="How long to publish, e.g. 10m.")] = "1m",
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="Inject a fault: inv-101:overheat@30s, inv-301:code=E021@1m, "
            "bat-202:silence@2m, inv-201:garbage@10s (repeatable)."
        ),
    ] = None,
) -> None:
    """Publish the configured fleet's telemetry to the configured broker, with faults."""
    from datetime import UTC, datetime

    from forewarn.simulator import Fault, Fleet, Publisher

    loaded = load(config)
    try:
        faults = [Fault.parse(f) for f in fault or []]
        every, total = parse_duration(interval), parse_duration(duration)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    if every <= timedelta(0):
        raise fail("--interval must be positive")
    broker = loaded.settings.broker
    publisher = Publisher(
        Fleet(loaded.settings.devices, faults),
        broker.host,
        broker.port,
        every,
        clock=lambda: datetime.now(UTC),
    )
    try:
        publisher.start()
    except OSError as exc:
        raise fail(f"cannot reach the broker at {broker.host}:{broker.port}: {exc}") from exc
    try:
        threading.Event().wait(total.total_seconds())
    except KeyboardInterrupt:
        pass
    finally:
        publisher.stop()
    typer.echo(f"published {publisher.published} messages")


@app.command()
def replay(
    config: ConfigOption = Path("forewarn.yaml"),
    csv_file: Annotated[
        Path | None,
        typer.Option("--csv", help="Readings CSV: device_id, metric, ts, value, code[, stale]."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Replay the configured store's readings of the last ...")
    ] = None,
    scratch: Annotated[
        str | None,
        typer.Option(
            help="Database URL of an empty scratch store: run the whole service there "
            "(tickets, notifications) instead of the monitors in memory."
        ),
    ] = None,
    step: Annotated[str, typer.Option(help="Simulated scheduler interval.")] = "30s",
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run stored or CSV readings through the monitors with a simulated clock (backtest)."""
    import json
    import sys
    from datetime import UTC, datetime

    from forewarn.backtest import ReplayError, stored_readings
    from forewarn.backtest import replay as run_replay
    from forewarn.monitors.replay import read_csv

    loaded = load(config)
    if (csv_file is None) == (since is None):
        raise fail("give exactly one of --csv FILE or --since DURATION")
    try:
        interval = parse_duration(step)
        if csv_file is not None:
            with csv_file.open(newline="", encoding="utf-8") as source:
                readings = list(read_csv(source, str(csv_file)))
        else:
            assert since is not None
            until = datetime.now(UTC)
            readings = list(stored_readings(loaded, until - parse_duration(since), until))
        with _progress(len(readings), enabled=sys.stderr.isatty() and not json_output) as done:
            report = run_replay(loaded, readings, interval, scratch_url=scratch, progress=done)
    except (ReplayError, ValueError, OSError) as exc:
        raise fail(str(exc)) from exc
    if json_output:
        typer.echo(json.dumps(report.as_dict(), sort_keys=True))
        return
    typer.echo(f"{report.readings} readings from {report.start} to {report.end}")
    for rule, fired in sorted(report.alerts_by_rule.items()):
        typer.echo(f"  {rule}: {fired} alert(s)")
    typer.echo(
        f"{report.suppressed} held (silenced, inhibited or flapping), "
        f"{report.announced} handed to ticketing"
    )
    if report.tickets is None:
        typer.echo("tickets and notifications are not simulated in memory (use --scratch URL)")
    else:
        typer.echo(
            f"{report.tickets} ticket(s), notifications {report.notifications_by_channel or {}}, "
            f"at most {report.max_notifications_per_recipient} per recipient"
        )


@contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal (rich), else nothing."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("replaying readings", total=total)
        yield lambda done: bar.update(task, completed=done)


@app.command()
def silences(
    config: ConfigOption = Path("forewarn.yaml"),
) -> None:
    """List silences and maintenance windows: active, about to expire, matching nothing."""
    from datetime import UTC, datetime

    from forewarn.service import StartupError, build

    loaded = load(config)
    try:
        forewarn = build(loaded)
    except StartupError as exc:
        raise fail(str(exc)) from exc
    try:
        report = forewarn.monitors.silence_report(datetime.now(UTC))
    finally:
        forewarn.engine.dispose()
    for status in report:
        notes = [
            "active" if status.active else "inactive",
            *(["EXPIRED"] if status.expired else []),
            *(["expires soon"] if status.expiring else []),
            *(["MATCHES NOTHING"] if status.matches_nothing else []),
        ]
        ends = status.ends.isoformat() if status.ends else "recurring"
        typer.echo(
            f"{status.silence.id} ({status.silence.source}): {status.matched_devices} "
            f"device(s), ends {ends}: {', '.join(notes)}"
        )


@app.command("config-reference", hidden=True)
def config_reference() -> None:
    """Print the configuration reference (docs/config.md) generated from the schema."""
    from forewarn.config.reference import render_reference

    typer.echo(render_reference(), nl=False)


def main() -> None:
    app()
