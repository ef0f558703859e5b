"""The web application: ops console pages, JSON API, ``/metrics`` and ``/healthz``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from fastapi import APIRouter, FastAPI
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from forewarn.alerting import Monitors
from forewarn.clock import Clock
from forewarn.config.loading import Config
from forewarn.rulebook import RuleBook, provision
from forewarn.web import (
    answers,
    api,
    backtests,
    conversations,
    devices,
    follow_ups,
    forms,
    health,
    kpis,
    metrics,
    pages,
    phone,
    rule_editor,
    signin,
    technicians,
)
from forewarn.web import audit as audit_pages
from forewarn.web import rules as rules_api
from forewarn.web.auth import MIN_TOKEN_LENGTH, Role, TokenTable
from forewarn.web.console import Console, silent_after
from forewarn.web.errors import install_error_handlers
from forewarn.web.forms import Publisher
from forewarn.web.head import HeadAsGet
from forewarn.web.health import DatabaseWatch, ProcessStatus
from forewarn.web.metrics import MetricsSource, SourceReader
from forewarn.web.rendering import Pages, make_environment
from forewarn.web.throttle import FailureLimiter

log = logging.getLogger(__name__)


def create_app(
    config: Config,
    sessions: sessionmaker[Session],
    clock: Clock,
    *,
    extra_routers: Sequence[APIRouter] = (),
    tokens: Mapping[str, str] = {},
    metrics_sources: Sequence[MetricsSource] = (),
    process: ProcessStatus | None = None,
    publish: Publisher | None = None,
    monitors: Monitors | None = None,
    rules: RuleBook | None = None,
) -> FastAPI:
    """Build the web application over the store behind ``sessions``.

    ``tokens`` maps extra access tokens to their role (``ops``, ``technician`` or
    ``viewer``), e.g. from :func:`forewarn.web.auth.tokens_from_environ`; the config's
    ``FOREWARN_API_TOKEN`` is added as an ops token. With no token at all the console is
    open and says so on every page. ``extra_routers`` are mounted as they are, with no
    console authentication (webhooks verify their own signatures). ``metrics_sources``
    add in-process samples to ``/metrics``. ``publish`` sends a message to the MQTT
    broker (the quarantine page's "release" button; without it the button is not
    offered). ``monitors`` lets the device page list the silences that match a device.
    ``process`` is what ``/readyz`` and ``/metrics`` see of the rest of the process
    (roles, leader election, job states, MQTT link); without it the app reports as a
    web-only process. ``rules`` is the process's :class:`RuleBook` (the monitors' one when
    not given; without either, one is made here and the file's rules provisioned). Raises
    ``ValueError`` for an unknown role or a token shorter than 16 characters.
    """
    all_tokens = dict(tokens)
    if config.secrets.api_token:
        if len(config.secrets.api_token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"FOREWARN_API_TOKEN must be at least {MIN_TOKEN_LENGTH} characters")
        all_tokens[config.secrets.api_token] = Role.ops.name
    table = TokenTable(all_tokens)
    if rules is None and monitors is not None:
        rules = monitors.rules
    if rules is None:
        rules = RuleBook(config, sessions)
        try:
            with sessions.begin() as session:
                provision(session, config, clock.now())
            with sessions() as session:
                rules.start(session)
        except SQLAlchemyError as problem:
            # The console still starts (and says the database is down); the rules are
            # the file's until a page reads the database again.
            log.warning("rules: cannot read the rule versions: %s", type(problem).__name__)
    if monitors is not None and monitors.rules is None:
        monitors.follow(rules)
    console = Console(
        config=config,
        sessions=sessions,
        clock=clock,
        tokens=table,
        pages=Pages(make_environment(), auth_configured=table.configured),
        silent_after=silent_after(config),
        metrics=SourceReader(metrics_sources),
        database_watch=DatabaseWatch(),
        login_limiter=FailureLimiter(config.settings.web.login_failures_per_minute),
        process=process or ProcessStatus(),
        can_release=publish is not None,
        rules=rules,
        monitors=monitors,
    )
    console.backtest_runs()  # made now, not by two requests at once
    # Swagger UI would load its scripts from a CDN, which the console must not depend
    # on; the OpenAPI document itself stays available for client generators.
    app = FastAPI(
        title="forewarn",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.console = console
    install_error_handlers(app, console)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(api.router)
    app.include_router(signin.router)
    app.include_router(phone.router)
    app.include_router(devices.make_router(monitors))
    app.include_router(technicians.router)
    app.include_router(kpis.router)
    app.include_router(kpis.api)
    app.include_router(pages.router)
    app.include_router(follow_ups.api)
    app.include_router(follow_ups.pages)
    app.include_router(conversations.api)
    app.include_router(conversations.pages)
    app.include_router(answers.router)
    app.include_router(forms.make_router(publish))
    app.include_router(rules_api.router)
    app.include_router(audit_pages.router)
    app.include_router(rule_editor.router)
    app.include_router(backtests.make_router())
    for router in extra_routers:
        app.include_router(router)
    app.add_middleware(HeadAsGet)
    return app
