"""What every ``forewarn`` subcommand shares: one clear error line and exit status 2."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from forewarn.config import Config, ConfigError, load_config


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the returned Exit (status 2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def load(path: Path) -> Config:
    """The config at ``path`` with secrets from the environment, or exit 2 saying why."""
    try:
        return load_config(path, os.environ)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
