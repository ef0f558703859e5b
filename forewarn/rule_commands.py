"""``forewarn rules ...``: the versioned rule set from the command line.

* ``forewarn rules export -c FILE [-o OUT]``: the config file with its ``monitors`` section
  replaced by the database's current version (every other line, comments included, as
  it was), for teams that keep their configuration in git. ``forewarn check`` accepts it,
  and starting forewarn on it changes nothing (see docs/rules.md);
* ``forewarn rules history -c FILE``: the versions, newest first, with their diffs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forewarn.commandline import fail, load

rules_app = typer.Typer(help="Rule-set versions (console and API edits).", no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The forewarn.yaml to use.")]


def _read(config: Path, what: str) -> tuple[str, list[tuple[int, str, str, str, list[str]]], int]:
    """The file's text, the versions (newest first) and the current version number."""
    from sqlalchemy.exc import SQLAlchemyError

    from forewarn.config.rules import describe_diff
    from forewarn.service import database_problem
    from forewarn.store import rulesets
    from forewarn.store.engine import make_engine, make_sessionmaker
    from forewarn.store.schema import current_revision, head_revision

    loaded = load(config)
    engine = make_engine(loaded.database_url)
    try:
        if current_revision(engine) != head_revision():
            raise fail("the database schema is not up to date: run 'forewarn db upgrade'")
        with make_sessionmaker(engine)() as session:
            current = rulesets.current(session)
            if current is None:
                raise fail(f"the database holds no rule version yet: nothing to {what}")
            _, rows = rulesets.history(session, limit=10_000 if what == "list" else 1)
            versions = [
                (
                    r.id,
                    f"{r.created_at:%Y-%m-%d %H:%M} UTC",
                    r.author,
                    r.comment,
                    describe_diff(r.diff),
                )
                for r in rows
            ]
            text = ""
            if what == "export":
                from forewarn.config.rules import export_yaml

                text = export_yaml(config.read_text(encoding="utf-8"), list(current.rules))
            return text, versions, current.id
    except SQLAlchemyError as exc:
        raise fail(f"cannot read the rules from the database: {database_problem(exc)}") from exc
    finally:
        engine.dispose()


@rules_app.command("export")
def export(
    config: ConfigOption = Path("forewarn.yaml"),
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here instead of standard output."),
    ] = None,
) -> None:
    """Write the config file with the current rule version as its ``monitors`` section."""
    text, _, current = _read(config, "export")
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from exc
    typer.echo(f"wrote rule version {current} into {output}", err=True)


@rules_app.command("history")
def history(config: ConfigOption = Path("forewarn.yaml")) -> None:
    """Every rule version, newest first: who, when, why and what changed."""
    _, versions, current = _read(config, "list")
    for number, when, author, comment, changes in versions:
        mark = " (current)" if number == current else ""
        typer.echo(f"version {number}{mark}: {when} by {author}: {comment}")
        for line in changes:
            typer.echo(f"    {line}")
