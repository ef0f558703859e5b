"""The console's Jinja2 environment: autoescaped HTML, StrictUndefined, our filters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from forewarn.web import formatting
from forewarn.web.auth import Principal


@pass_context
def _age(context: Context, moment: datetime | None) -> str:
    return formatting.age(moment, context["now"])


@pass_context
def _when(context: Context, moment: datetime | None) -> Markup:
    """The UTC time with its age beside it; the exact second in the tooltip."""
    if moment is None:
        return Markup('<span class="muted">—</span>')
    return Markup(
        '<time datetime="{iso}" title="{exact}">{shown}</time> <span class="age">{age}</span>'
    ).format(
        iso=moment.isoformat(),
        exact=formatting.utc(moment, seconds=True),
        shown=formatting.utc(moment),
        age=formatting.age(moment, context["now"]),
    )


def make_environment() -> Environment:
    """Templates from ``forewarn/templates/console``; every value is escaped on output."""
    env = Environment(
        loader=PackageLoader("forewarn", "templates/console"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["age"] = _age
    env.filters["when"] = _when
    env.filters["utc"] = formatting.utc
    env.filters["local"] = formatting.local
    env.filters["tone"] = formatting.tone
    env.filters["scalar"] = formatting.scalar
    env.filters["label"] = formatting.label
    env.filters["duration"] = formatting.duration
    return env


def _here(request: Request) -> str:
    """This page's path and query, without a ``token``: where to come back after sign-in."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    return request.url.path + (f"?{urlencode(kept)}" if kept else "")


class Pages:
    """Renders a console template into a response, with what every page shows."""

    def __init__(self, env: Environment, *, auth_configured: bool) -> None:
        self.env = env
        self.auth_configured = auth_configured

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        now: datetime,
        principal: Principal | None,
        status_code: int = 200,
    ) -> HTMLResponse:
        """Render ``template`` with ``context`` plus the clock, caller and auth banner."""
        from forewarn.web.signin import csrf_token  # signin -> console -> rendering

        html = self.env.get_template(template).render(
            {
                "now": now,
                "csrf": lambda: csrf_token(request),
                "path": request.url.path,
                "here": _here(request),
                "principal": principal,
                "auth_configured": self.auth_configured,
                **context,
            }
        )
        return HTMLResponse(
            html,
            status_code=status_code,
            # Pages show customer data: keep them out of shared caches and other sites' frames.
            headers={
                "Cache-Control": "no-store",
                "X-Frame-Options": "DENY",
                # Scripts only from our own files (the backtest page's and the rule
                # editor's), never inline; they may talk to this console only.
                "Content-Security-Policy": (
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                    "script-src 'self'; connect-src 'self'; "
                    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                ),
                "Referrer-Policy": "no-referrer",
            },
        )
