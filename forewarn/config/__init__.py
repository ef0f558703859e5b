"""Settings: the schema, and loading it from YAML plus the environment."""

from __future__ import annotations

from forewarn.config.loading import Config, ConfigError, Secrets, load_config, parse_config
from forewarn.config.schema import Settings

__all__ = ["Config", "ConfigError", "Secrets", "Settings", "load_config", "parse_config"]
