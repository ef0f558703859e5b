"""``forewarn backtest``: the draft's outcome and cost over stored history, from the shell."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from forewarn.commandline import fail, load
from forewarn.config import ConfigError
from forewarn.config.durations import parse_duration


def backtest(
    rules: Annotated[
        Path,
        typer.Option(
            "--rules",
            help="The draft: YAML shaped like the config's monitors section "
            "(monitors: [...] or the list).",
        ),
    ],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The forewarn.yaml to use.")
    ] = Path("forewarn.yaml"),
    since: Annotated[
        str | None,
        typer.Option(
            help="Start of the period: a duration before --until (7d) or an ISO time "
            "(default: backtest.period)."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="End of the period: an ISO time or a duration ago (default: now)."),
    ] = None,
    scope: Annotated[str, typer.Option(help="fleet, device:ID, site:ID or model:NAME.")] = "fleet",
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write a self-contained HTML report with the chart."),
    ] = None,
) -> None:
    """What a draft rule set would have done over stored history, against the current
    rules: alerts, tickets, technician hours, messages and their cost (nothing is sent)."""
    from forewarn.backtest.engine import BacktestError, Request, Scope, run_backtest
    from forewarn.backtest.text import describe
    from forewarn.config.drafts import parse_draft

    loaded = load(config)
    try:
        text = rules.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise fail(f"{rules}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{rules}: cannot be read ({exc})") from exc
    try:
        draft = parse_draft(loaded.settings, text, str(rules))
        now = datetime.now(UTC)
        end = moment(until, now) if until else now
        start = moment(since, end) if since else end - loaded.settings.backtest.period
        request = Request(draft, start, end, Scope.parse(scope))
        with _progress(enabled=sys.stderr.isatty()) as tell:
            result = run_backtest(loaded, request, progress=tell)
        if html is not None:
            from forewarn.backtest.pages import report_html

            html.write_text(report_html(result, str(rules)), encoding="utf-8")
    except (ConfigError, BacktestError, ValueError, OSError) as exc:
        raise fail(str(exc)) from exc
    if json_output:
        typer.echo(json.dumps(result.as_dict(), sort_keys=True))
        return
    for line in describe(result, str(rules)):
        typer.echo(line)
    if html is not None:
        typer.echo(f"report written to {html}")


def moment(text: str, before: datetime) -> datetime:
    """``text`` as a time: an ISO time (UTC when it names no zone) or a duration before
    ``before``."""
    try:
        return before - parse_duration(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither a duration (7d) nor an ISO time") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[str, float], None] | None]:
    """A progress bar on stderr when it is a terminal (rich), else nothing."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    names = {
        "history": "reading history",
        "current": "current rules",
        "draft": "draft",
        "report": "comparing",
    }
    # Refreshed by our own calls, not by rich's thread: with no other thread running, the
    # backtest may fork to replay the current rules on the other core.
    with Progress(transient=True, auto_refresh=False) as bar:
        task = bar.add_task("reading history", total=1.0)

        def tell(phase: str, share: float) -> None:
            bar.update(task, completed=share, description=names.get(phase, phase))
            bar.refresh()

        yield tell
