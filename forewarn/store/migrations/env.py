"""Alembic environment: forewarn passes the engine's connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from forewarn.store import (
    alerting,  # noqa: F401 - registers the alerting tables
    audit,  # noqa: F401 - registers audit_log
    care,  # noqa: F401 - registers the customer-care tables
    console,  # noqa: F401 - registers the console's tables
    contacts,  # noqa: F401 - registers the notifier's tables
    jobs,  # noqa: F401 - registers job_runs
    orders,  # noqa: F401 - registers the order and delay tables
    rulesets,  # noqa: F401 - registers rule_versions and rule_set
    send_rates,  # noqa: F401 - registers sender_buckets
)
from forewarn.store.models import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through 'forewarn db upgrade'")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
