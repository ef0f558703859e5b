"""Backtests in the console and the API: run a draft rule set over stored history.

API (bearer token):

* ``POST /api/backtests`` (ops) starts a run in the background and answers 202
  ``{"id", "status", "url"}``. The body is JSON ``{"rules": DRAFT, "scope": "site:ID",
  "since": "7d" | ISO time, "until": ISO time | duration ago}`` where ``DRAFT`` is the
  monitors section as YAML/JSON text, as a list, or as ``{"monitors": [...]}``; or the
  body is the draft itself as YAML text (``Content-Type: application/yaml`` or
  ``text/plain``) with ``scope``/``since``/``until`` in the query. A bad draft is 422 with
  ``detail`` the lines ``forewarn check`` prints (``draft:4: monitors[0].above: ...``)
  and ``problems`` the same as a list; a body over ``backtest.max_draft_bytes`` is 413;
  a viewer's token is 403.
* ``GET /api/backtests/{id}`` (viewer) answers ``{"id", "status": queued|running|done|
  failed, "phase", "progress": 0..1, "scope", "started_by", "queued_at", "error",
  "result"}``; ``result`` is the JSON of :mod:`forewarn.backtest.engine` once done.

Console (signed in): ``/backtest`` (paste a draft, pick a scope and a period; ops run it),
``/backtest/{id}`` (progress while it runs, then the result with its chart),
``/backtest/{id}/progress`` (the same JSON as the API, for the page's script) and
``/backtest/{id}/result`` (the result as an HTML fragment: the ``backtest_result``
macro of ``backtest_result.html``, for other pages to embed). ``/backtest.js`` is the
page's own small script.
"""

from __future__ import annotations

import json
from datetime import timedelta
from importlib import resources
from typing import Any

import yaml
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from forewarn.backtest.command import moment
from forewarn.backtest.engine import BacktestError, Scope, run_backtest
from forewarn.backtest.engine import Request as BacktestRequest
from forewarn.backtest.pages import chart_of
from forewarn.backtest.runs import Run, Runs
from forewarn.config import ConfigError
from forewarn.config.drafts import parse_draft, validate_draft
from forewarn.config.durations import format_duration
from forewarn.config.schema import MonitorSettings
from forewarn.web.auth import Principal, Role
from forewarn.web.bodies import read_body
from forewarn.web.console import Console
from forewarn.web.dependencies import api_access, console_of, page_access
from forewarn.web.forms import caller_name
from forewarn.web.signin import form_fields

_RUN_ID = r"^[0-9a-f]{16}$"
SCRIPT = resources.files("forewarn").joinpath("templates/console/backtest.js").read_bytes()


class DraftProblem(Exception):
    """The draft, scope or period cannot be run: 422 with these lines."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def make_router() -> APIRouter:
    """The backtest routes, with this app's run registry."""
    router = APIRouter(tags=["backtests"])

    def runs(console: Console) -> Runs:
        # One registry per app, shared with the rule editor's backtests (one queue).
        return console.backtest_runs()

    def start(console: Console, principal: Principal, request: BacktestRequest) -> Run:
        engine = console.sessions.kw["bind"]
        config = console.config

        def job(tell: Any) -> Any:
            return run_backtest(config, request, progress=tell, engine=engine)

        return runs(console).start(
            job, by=caller_name(principal), scope=str(request.scope), now=console.clock.now()
        )

    def found(console: Console, run_id: str) -> Run:
        run = runs(console).get(run_id) if _valid_id(run_id) else None
        if run is None:
            raise HTTPException(404, "no such backtest (results are kept in memory for a while)")
        return run

    # -- API --------------------------------------------------------------------------

    @router.post("/api/backtests", status_code=202)
    async def api_start(request: Request) -> JSONResponse:
        """Start a backtest of a draft rule set (see the module docstring)."""
        console = console_of(request)
        principal = api_access(Role.ops)(request)
        body = await read_body(request, console.config.settings.backtest.max_draft_bytes)
        try:
            backtest = _api_request(console, request, body)
        except DraftProblem as problem:
            return JSONResponse(
                {"detail": str(problem), "problems": problem.lines}, status_code=422
            )
        run = start(console, principal, backtest)
        return JSONResponse(
            {"id": run.id, "status": run.status, "url": f"/api/backtests/{run.id}"},
            status_code=202,
            headers={"Location": f"/api/backtests/{run.id}"},
        )

    @router.get("/api/backtests/{run_id}")
    def api_get(run_id: str, request: Request) -> dict[str, Any]:
        """A backtest's progress, and its result once done."""
        console = console_of(request)
        principal = api_access(Role.viewer)(request)
        _not_personal(principal)
        return found(console, run_id).as_dict()

    # -- console ----------------------------------------------------------------------

    @router.get("/backtest", response_class=HTMLResponse)
    def page(request: Request) -> Response:
        """Paste a draft, choose scope and period, run it."""
        console = console_of(request)
        principal = page_access(Role.viewer)(request)
        return _form_page(console, request, principal, None, [], 200)

    @router.post("/backtest", response_class=HTMLResponse)
    async def page_start(request: Request) -> Response:
        console = console_of(request)
        principal = page_access(Role.ops)(request)
        form = await form_fields(request)
        text = form.get("rules", "")
        try:
            if len(text.encode()) > console.config.settings.backtest.max_draft_bytes:
                raise DraftProblem(["the draft is larger than backtest.max_draft_bytes"])
            backtest = _request(
                console,
                parse=lambda: parse_draft(console.config.settings, text, "draft"),
                scope=form.get("scope", "fleet"),
                since=form.get("since") or None,
                until=form.get("until") or None,
            )
        except DraftProblem as problem:
            return _form_page(console, request, principal, form, problem.lines, 422)
        run = start(console, principal, backtest)
        return RedirectResponse(f"/backtest/{run.id}", status_code=303)

    @router.get("/backtest/{run_id}", response_class=HTMLResponse)
    def run_page(run_id: str, request: Request) -> Response:
        """A backtest: progress while it runs, then its result."""
        console = console_of(request)
        principal = page_access(Role.viewer)(request)
        run = found(console, run_id).as_dict()
        result = run["result"]
        return console.pages.render(
            request,
            "backtest.html",
            {"run": run, "result": result, "chart": chart_of(result) if result else None},
            now=console.clock.now(),
            principal=principal,
        )

    @router.get("/backtest/{run_id}/progress")
    def run_progress(run_id: str, request: Request) -> dict[str, Any]:
        console = console_of(request)
        page_access(Role.viewer)(request)
        run = found(console, run_id).as_dict()
        run.pop("result")
        return run

    @router.get("/backtest/{run_id}/result", response_class=HTMLResponse)
    def run_fragment(run_id: str, request: Request) -> Response:
        """The finished result as an HTML fragment (for other pages to embed)."""
        console = console_of(request)
        page_access(Role.viewer)(request)
        result = found(console, run_id).as_dict()["result"]
        if result is None:
            raise HTTPException(409, "the backtest has not finished")
        template = console.pages.env.from_string(
            '{% from "backtest_result.html" import backtest_result %}'
            "{{ backtest_result(result, chart) }}"
        )
        return HTMLResponse(
            template.render(result=result, chart=chart_of(result)),
            headers={"Cache-Control": "no-store"},
        )

    @router.get("/backtest.js")
    def script() -> Response:
        """The backtest page's script: shows progress while a run goes."""
        return Response(
            SCRIPT,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    return router


def _valid_id(run_id: str) -> bool:
    return len(run_id) == 16 and all(c in "0123456789abcdef" for c in run_id)


def _not_personal(principal: Principal) -> None:
    if principal.technician is not None:
        raise HTTPException(403, "a technician's personal token reads only its own jobs")


def _api_request(console: Console, request: Request, body: bytes) -> BacktestRequest:
    """A backtest request from an API body (JSON, or the draft as YAML text)."""
    settings = console.config.settings
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    query = request.query_params
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DraftProblem(["the body is not UTF-8 text"]) from exc
    if kind in ("application/json", ""):
        try:
            data = json.loads(text) if text.strip() else None
        except ValueError as exc:
            raise DraftProblem([f"the body is not valid JSON: {exc}"]) from exc
        if not isinstance(data, dict) or "rules" not in data:
            raise DraftProblem(['give {"rules": ..., "scope": ..., "since": ..., "until": ...}'])
        rules = data["rules"]
        extra = sorted(set(data) - {"rules", "scope", "since", "until"})
        if extra:
            raise DraftProblem([f"{extra[0]}: unknown field"])
        fields = {k: data.get(k) for k in ("scope", "since", "until")}
        if any(v is not None and not isinstance(v, str) for v in fields.values()):
            raise DraftProblem(["scope, since and until are strings"])
        return _request(
            console,
            parse=(
                (lambda: parse_draft(settings, rules, "draft"))
                if isinstance(rules, str)
                else (lambda: validate_draft(settings, rules, "draft"))
            ),
            scope=fields["scope"] or "fleet",
            since=fields["since"],
            until=fields["until"],
        )
    if kind in ("application/yaml", "application/x-yaml", "text/yaml", "text/plain"):
        return _request(
            console,
            parse=lambda: parse_draft(settings, text, "draft"),
            scope=query.get("scope", "fleet"),
            since=query.get("since"),
            until=query.get("until"),
        )
    raise DraftProblem([f"send application/json or application/yaml, not {kind!r}"])


def _request(
    console: Console,
    *,
    parse: Any,
    scope: str,
    since: str | None,
    until: str | None,
) -> BacktestRequest:
    """Check everything a run needs before it is queued; :class:`DraftProblem` if not."""
    settings = console.config.settings
    try:
        draft: tuple[MonitorSettings, ...] = parse()
    except ConfigError as exc:
        raise DraftProblem(str(exc).splitlines()) from exc
    try:
        now = console.clock.now()
        end = moment(until, now) if until else now
        start = moment(since, end) if since else end - settings.backtest.period
        parsed = Scope.parse(scope)
        parsed.devices(settings)
    except (BacktestError, ValueError) as exc:
        raise DraftProblem([str(exc)]) from exc
    if end <= start:
        raise DraftProblem(["the period is empty: until must be after since"])
    if end - start > timedelta(days=92):
        raise DraftProblem(["a backtest covers at most 92 days"])
    return BacktestRequest(draft, start, end, parsed)


def current_yaml(monitors: tuple[MonitorSettings, ...]) -> str:
    """The rules as the file writes them: the form's starting draft."""
    ordered = []
    for rule in monitors:
        data = _plain(rule.model_dump(by_alias=True, exclude_defaults=True))
        data.pop("kind", None)
        ordered.append({"id": rule.id, "kind": rule.kind, **data})
    return yaml.safe_dump({"monitors": ordered}, sort_keys=False, allow_unicode=True, width=100)


def _plain(value: Any) -> Any:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _form_page(
    console: Console,
    request: Request,
    principal: Principal,
    form: dict[str, str] | None,
    problems: list[str],
    status: int,
) -> HTMLResponse:
    settings = console.config.settings
    scopes = [("fleet", f"the fleet ({len(settings.devices)} devices)")]
    scopes += [(f"site:{s.id}", f"site {s.name} ({s.id})") for s in settings.sites]
    scopes += [(f"model:{m}", f"model {m}") for m in sorted({d.model for d in settings.devices})]
    defaults = {"scope": "fleet", "since": format_duration(settings.backtest.period), "until": ""}
    values = {**defaults, "rules": current_yaml(settings.monitors), **(form or {})}
    return console.pages.render(
        request,
        "backtest_form.html",
        {
            "values": values,
            "problems": problems,
            "scopes": scopes,
            "period": format_duration(settings.backtest.period),
        },
        now=console.clock.now(),
        principal=principal,
        status_code=status,
    )
