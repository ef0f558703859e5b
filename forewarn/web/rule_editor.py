"""The rule editor in the console: ``/rules`` (the current rules and every version),
``/rules/{id}`` (one rule: its settings, overrides and the inheritance a device really
gets), saving and rolling back.

The form is generic over rule kinds: every plain setting of the rule's kind (levels,
``for``, the clear level, severity, windows...) is a field built from the schema, with the
schema's description as its help; threshold rules add their model / site / device
overrides. What the form posts becomes the rule's data, validated by the same code as
``forewarn check`` (:func:`forewarn.config.loading.validate_monitors`), each problem shown
next to its field.

Viewers and technicians see the same page read-only; every POST needs the ops role and
the session's CSRF field. Saving goes through :func:`forewarn.web.rules.commit`, the
API's own path (a version, its audit row, the reload and the re-judging of open alerts).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import types
import typing
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic.fields import FieldInfo

from forewarn.config.loading import Problem, RulesInvalid, validate_monitors
from forewarn.config.rules import describe_diff, override_target, rule_data, rules_data
from forewarn.config.schema import DeviceSettings, MonitorSettings, ThresholdMonitor
from forewarn.monitors.rules import Inherited, level_trace, selects
from forewarn.store import rulesets
from forewarn.web.auth import Principal, Role, actor
from forewarn.web.console import MAX_ID, Console
from forewarn.web.dependencies import ConsoleDep, Db, PageViewer, page_access
from forewarn.web.pages import CONSOLE_TAG, PageNotFound
from forewarn.web.rules import Override, commit, rollback_to
from forewarn.web.signin import form_fields

router = APIRouter(tags=[CONSOLE_TAG], include_in_schema=False)
PageOps = Annotated[Principal, Depends(page_access(Role.ops))]
Form = Annotated[dict[str, str], Depends(form_fields)]

SKIPPED = {"id", "kind", "overrides", "applies_to", "codes"}
"""Settings the form does not offer as plain fields (shown read-only, edited in the file
or through the API)."""
OVERRIDE_KEYS = ("model", "site", "device", "above", "below", "clear", "for")
SPARE_OVERRIDES = 2
"""Empty override rows offered for adding one."""
HISTORY_SHOWN = 30
MAX_BACKTEST = timedelta(days=31)
SCRIPT = Path(__file__).parents[1] / "templates" / "console" / "rule_editor.js"


@dataclass(frozen=True)
class Field:
    """One input of the form."""

    name: str
    """The key as the file writes it (``for``, ``above``)."""
    label: str
    input: Literal["text", "number", "select", "checkbox", "textarea"]
    value: str
    default: str
    help: str
    options: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class Draft:
    """The form as posted: the rule's data and what the person typed, to show it back."""

    data: dict[str, Any]
    typed: dict[str, str] = field(default_factory=dict)


def _plain_type(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``None`` and ``Annotated``; whether None was allowed."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                return annotation, optional
            annotation = args[0]
        else:
            return annotation, optional


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


def _default_text(info: FieldInfo) -> str:
    default = info.get_default(call_default_factory=True)
    if isinstance(default, timedelta):
        from forewarn.config.rules import duration_text

        return duration_text(default)
    return _show(default)


def form_fields_of(
    rule: MonitorSettings, data: dict[str, Any], typed: dict[str, str], errors: dict[str, str]
) -> list[Field]:
    """The plain settings of ``rule``'s kind as inputs, in the schema's order."""
    found = []
    for name, info in type(rule).model_fields.items():
        key = info.alias or name
        if key in SKIPPED:
            continue
        annotation, _ = _plain_type(info.annotation)
        origin = typing.get_origin(annotation)
        options: tuple[str, ...] = ()
        kind: Literal["text", "number", "select", "checkbox", "textarea"]
        if origin is Literal:
            kind, options = "select", tuple(str(a) for a in typing.get_args(annotation))
        elif annotation is bool:
            kind = "checkbox"
        elif annotation in (int, float):
            kind = "number"
        elif annotation is str and key in ("description", "suggested_fix"):
            kind = "textarea"
        elif annotation in (str, timedelta) or origin is tuple:
            kind = "text"
        else:
            continue  # a nested structure: not a plain field
        value = typed[key] if key in typed else _show(data.get(key))
        found.append(
            Field(
                name=key,
                label=key.replace("_", " "),
                input=kind,
                value=value,
                default=_default_text(info),
                help=(info.description or "").strip(),
                options=options,
                error=errors.get(key),
            )
        )
    return found


def draft_from_form(rule: MonitorSettings, form: dict[str, str]) -> Draft:
    """The rule's data with the form's values: an empty field falls back to the default."""
    data = rule_data(rule)
    typed: dict[str, str] = {}
    for name, info in type(rule).model_fields.items():
        key = info.alias or name
        if key in SKIPPED:
            continue
        annotation, _ = _plain_type(info.annotation)
        if annotation is bool:
            if f"{key}.shown" in form:  # an unticked box posts nothing at all
                data[key] = form.get(key) == "yes"
            continue
        if key not in form:
            continue
        text = form[key].strip()
        typed[key] = text
        if not text:
            data.pop(key, None)
        elif typing.get_origin(annotation) is tuple:
            data[key] = [part.strip() for part in text.split(",") if part.strip()]
        else:
            data[key] = text
    if "overrides" in type(rule).model_fields:
        overrides = []
        for n in range(int(form.get("overrides", "0") or 0) + SPARE_OVERRIDES):
            row = {k: form.get(f"ov{n}.{k}", "").strip() for k in OVERRIDE_KEYS}
            for k, v in row.items():
                typed[f"ov{n}.{k}"] = v
            if any(row.values()):
                overrides.append({k: v for k, v in row.items() if v})
        if overrides:
            data["overrides"] = overrides
        else:
            data.pop("overrides", None)
    return Draft(data, typed)


_MONITOR = re.compile(r"^monitors\[(\d+)\](?:\.(.*))?$")
_OVERRIDE = re.compile(r"^overrides\[(\d+)\](?:\.(.*))?$")


def problems_by_field(found: list[Problem], index: int) -> tuple[dict[str, str], list[str]]:
    """Problems of the rule at ``index`` by form field (``above``, ``ov1.for``), and the
    rest (the rule as a whole, another section) as lines."""
    by_field: dict[str, str] = {}
    general: list[str] = []
    for problem in found:
        matched = _MONITOR.match(problem.path)
        if matched is None or int(matched.group(1)) != index:
            general.append(f"{problem.path}: {problem.message}")
            continue
        inner = matched.group(2) or ""
        over = _OVERRIDE.match(inner)
        if over is not None:
            key = f"ov{over.group(1)}.{(over.group(2) or '').split('.')[0]}".rstrip(".")
        else:
            key = inner.split(".")[0].split("[")[0]
        if key and not key.endswith("."):
            by_field.setdefault(key, problem.message)
        else:
            general.append(problem.message)
    return by_field, general


@dataclass(frozen=True)
class Watched:
    """A device the rule watches, with the level it really gets and where from."""

    device: DeviceSettings
    level: str
    source: str


def _rule(console: Console, rule_id: str) -> tuple[int, MonitorSettings]:
    for index, rule in enumerate(console.current_monitors()):
        if rule.id == rule_id:
            return index, rule
    raise PageNotFound(f"rule {rule_id}")


def _render_editor(
    request: Request,
    console: Console,
    principal: Principal,
    rule: MonitorSettings,
    *,
    draft: Draft | None = None,
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
    budget: list[str] | None = None,
    saved: int | None = None,
    comment: str = "",
    backtest: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    errors = errors or {}
    data = draft.data if draft is not None else rule_data(rule)
    typed = draft.typed if draft is not None else {}
    settings = console.config.settings
    devices = [d for d in settings.devices if selects(rule.applies_to, d)]
    chosen_id = request.query_params.get("device", "")
    chosen = next((d for d in settings.devices if d.id == chosen_id), None)
    trace: list[Inherited] = []
    watched: list[Watched] = []
    if isinstance(rule, ThresholdMonitor):
        if chosen is not None and selects(rule.applies_to, chosen):
            trace = level_trace(rule, chosen)
        for device in devices[:200]:
            first = level_trace(rule, device)[0]
            watched.append(Watched(device, f"{first.key} {first.value}", first.source))
    overrides: list[dict[str, str]] = []
    if "overrides" in type(rule).model_fields:
        rows = list(data.get("overrides") or [])
        count = len(rows) + SPARE_OVERRIDES
        if draft is not None:
            count = max(count, int(request.scope.get("form_overrides", 0)))
        for n in range(count):
            row = rows[n] if n < len(rows) else {}
            overrides.append(
                {
                    k: typed.get(f"ov{n}.{k}", _show(row.get(k)) if isinstance(row, dict) else "")
                    for k in OVERRIDE_KEYS
                }
            )
    with console.sessions() as session:
        current = rulesets.current_number(session)
    return console.pages.render(
        request,
        "rule_edit.html",
        {
            "rule": rule,
            "data": data,
            "fields": form_fields_of(rule, data, typed, errors),
            "overrides": overrides,
            "override_count": len([o for o in overrides if any(o.values())]),
            "override_keys": OVERRIDE_KEYS,
            "errors": errors,
            "general": general or [],
            "budget": budget or [],
            "read_only": {
                k: v for k, v in data.items() if k in SKIPPED - {"id", "kind", "overrides"}
            },
            "devices": devices,
            "chosen": chosen,
            "chosen_watched": chosen is not None and selects(rule.applies_to, chosen),
            "trace": trace,
            "watched": watched,
            "version": current,
            "running": console.rules.number if console.rules is not None else 0,
            "saved": saved,
            "comment": comment,
            "backtest": backtest,
            "limits": settings.rules.budget,
        },
        now=console.clock.now(),
        principal=principal,
        status_code=status_code,
    )


def budget_exceeded(result: dict[str, Any], console: Console) -> list[str]:
    """What a draft's backtest result exceeds of ``rules.budget``, one line each."""
    limits = console.config.settings.rules.budget
    draft = result.get("draft") or {}
    found = []
    per_day = int((draft.get("max_per_customer_day") or {}).get("messages") or 0)
    if limits.messages_per_customer_per_day is not None and per_day > (
        limits.messages_per_customer_per_day
    ):
        customer = (draft.get("max_per_customer_day") or {}).get("customer")
        found.append(
            f"{per_day} messages to one customer in a day"
            + (f" ({customer})" if customer else "")
            + f": the limit is {limits.messages_per_customer_per_day}"
        )
    tickets = int(draft.get("max_tickets_per_day") or 0)
    if limits.tickets_per_day is not None and tickets > limits.tickets_per_day:
        found.append(f"{tickets} tickets on one day: the limit is {limits.tickets_per_day}")
    return found


@router.get("/rule-editor.js")
def script() -> Response:
    """The editor's own small script (validation and the backtest, without a reload)."""
    return Response(
        SCRIPT.read_text(encoding="utf-8"),
        media_type="text/javascript",
        headers={"cache-control": "no-cache"},
    )


@router.get("/rules", response_class=HTMLResponse)
def rules_page(
    request: Request, console: ConsoleDep, principal: PageViewer, db: Db
) -> HTMLResponse:
    """The current rules (each links to its editor) and the history of versions."""
    current = rulesets.current_number(db)
    total, rows = rulesets.history(db, limit=HISTORY_SHOWN)
    monitors = console.current_monitors()
    return console.pages.render(
        request,
        "rules.html",
        {
            "rules": [(m, _summary(m)) for m in monitors],
            "versions": [(r, describe_diff(r.diff)) for r in rows],
            "total": total,
            "current": current,
            "running": console.rules.number if console.rules is not None else 0,
            "saved": request.query_params.get("saved", "")[:12],
        },
        now=console.clock.now(),
        principal=principal,
    )


def _summary(rule: MonitorSettings) -> str:
    """The rule's levels in a few words."""
    if isinstance(rule, ThresholdMonitor):
        level = f"> {rule.above:g}" if rule.above is not None else f"< {rule.below:g}"
        parts = [f"{rule.metric} {level}"]
        if rule.clear is not None:
            parts.append(f"clears at {rule.clear:g}")
        if rule.for_:
            from forewarn.config.rules import duration_text

            parts.append(f"for {duration_text(rule.for_)}")
        if rule.overrides:
            parts.append(", ".join(override_target(o.model_dump()) for o in rule.overrides))
        return "; ".join(parts)
    data = rule_data(rule)
    shown = [
        f"{k} {_show(v)}"
        for k, v in data.items()
        if k not in ("id", "kind", "severity", "description", "suggested_fix", "codes")
        and not isinstance(v, dict | list)
    ]
    if "codes" in data:
        shown.append("codes " + ", ".join(data["codes"]))
    return "; ".join(shown)


@router.get("/rules/versions/{number}", response_class=HTMLResponse)
def version_page(
    request: Request, number: int, console: ConsoleDep, principal: PageViewer, db: Db
) -> HTMLResponse:
    """One version: who, when, why, its diff and its rules as the file writes them."""
    row = rulesets.version(db, number) if 0 < number <= MAX_ID else None
    if row is None:
        raise PageNotFound(f"rule version {number}")
    import yaml

    return console.pages.render(
        request,
        "rule_version.html",
        {
            "v": row,
            "changes": describe_diff(row.diff),
            "current": rulesets.current_number(db),
            "yaml": yaml.safe_dump(
                {"monitors": list(row.rules)}, sort_keys=False, allow_unicode=True
            ),
        },
        now=console.clock.now(),
        principal=principal,
    )


@router.post("/rules/versions/{number}/rollback")
def rollback_from_page(
    number: int, console: ConsoleDep, principal: PageOps, form: Form
) -> Response:
    """Make an old version current again (a new version), with a confirmation and why."""
    if form.get("confirm") != "yes":
        raise HTTPException(422, "tick the box to confirm the rollback")
    comment = form.get("comment", "").strip()[:500]
    if not comment:
        raise HTTPException(422, "say why you roll back (it goes into the audit)")
    answer = rollback_to(console, number, actor(principal, "console"), comment)
    if isinstance(answer, JSONResponse):
        import json

        problems = json.loads(bytes(answer.body))["problems"]
        lines = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:3])
        raise HTTPException(422, f"version {number} is not valid here any more: {lines}")
    return RedirectResponse(f"/rules?saved={answer.version}", status_code=303)


@router.get("/rules/{rule_id}", response_class=HTMLResponse)
def editor(
    request: Request, rule_id: str, console: ConsoleDep, principal: PageViewer
) -> HTMLResponse:
    """One rule's settings and overrides, with the inheritance a device really gets."""
    _, rule = _rule(console, rule_id)
    saved = request.query_params.get("saved")
    return _render_editor(
        request, console, principal, rule, saved=int(saved) if saved and saved.isdigit() else None
    )


@router.post("/rules/{rule_id}/backtest")
def backtest_draft(
    request: Request, rule_id: str, console: ConsoleDep, principal: PageOps, form: Form
) -> JSONResponse:
    """Validate the form as a draft and start its backtest (the editor's script): 422
    with the problems by field, or where to poll for the result."""
    index, rule = _rule(console, rule_id)
    draft = draft_from_form(rule, form)
    monitors = _with_rule(console, index, draft.data)
    assert console.rules is not None
    try:
        validated = validate_monitors(console.rules.config.settings, monitors, "draft")
    except RulesInvalid as invalid:
        by_field, general = problems_by_field(invalid.problems, index)
        return JSONResponse({"ok": False, "errors": by_field, "general": general}, status_code=422)
    try:
        started = start_backtest(
            console,
            validated,
            form.get("since", "7d"),
            form.get("scope", "fleet"),
            actor(principal, "console"),
        )
    except ValueError as problem:
        return JSONResponse({"ok": False, "detail": str(problem)}, status_code=422)
    return JSONResponse({"ok": True, "id": started, "poll": f"/rules/backtests/{started}"})


@router.get("/rules/backtests/{backtest_id}")
def backtest_progress(
    request: Request, backtest_id: str, console: ConsoleDep, principal: PageOps
) -> JSONResponse:
    """How a draft's backtest is doing; when done, its result as the console's fragment."""
    found = backtest_state(request, console, backtest_id)
    if found is None:
        raise HTTPException(404, f"backtest {backtest_id} not found")
    return JSONResponse(found)


def _with_rule(console: Console, index: int, data: dict[str, Any]) -> list[dict[str, Any]]:
    monitors = rules_data(console.current_monitors())
    monitors[index] = data
    return monitors


@router.post("/rules/{rule_id}", response_model=None)
def save_from_page(
    request: Request, rule_id: str, console: ConsoleDep, principal: PageOps, form: Form
) -> Response:
    """Save the form as a new version, or show it again with each problem by its field,
    or with the budget guard's warning until "save anyway" is ticked."""
    index, rule = _rule(console, rule_id)
    draft = draft_from_form(rule, form)
    request.scope["form_overrides"] = int(form.get("overrides", "0") or 0) + SPARE_OVERRIDES
    comment = form.get("comment", "").strip()[:500]
    backtest = form.get("backtest", "").strip()
    base = form.get("base_version", "")

    def again(status: int, **shown: Any) -> HTMLResponse:
        return _render_editor(
            request,
            console,
            principal,
            rule,
            draft=draft,
            comment=comment,
            backtest=backtest,
            status_code=status,
            **shown,
        )

    if not comment:
        return again(422, general=["say why you change the rule (it goes into the audit)"])
    monitors = _with_rule(console, index, draft.data)
    override: Override | None = None
    assert console.rules is not None
    try:
        checked = validate_monitors(console.rules.config.settings, monitors, "draft")
    except RulesInvalid as invalid:
        by_field, general = problems_by_field(invalid.problems, index)
        return again(422, errors=by_field, general=general)
    exceeded = _exceeded(console, backtest, checked)
    if exceeded:
        if form.get("over_budget") != "yes":
            return again(409, budget=exceeded)
        override = Override(exceeded=exceeded, backtest={"backtest": backtest})
    try:
        saved = commit(
            console,
            monitors,
            who=actor(principal, "console"),
            source="console",
            comment=comment,
            base=int(base) if base.isdigit() else None,
            override=override,
        )
    except RulesInvalid as invalid:
        by_field, general = problems_by_field(invalid.problems, index)
        return again(422, errors=by_field, general=general)
    except (rulesets.StaleBase, rulesets.NothingChanged) as refused:
        return again(409, general=[str(refused)])
    device = request.query_params.get("device") or form.get("device", "")
    where = f"/rules/{rule_id}?saved={saved.version}"
    if device:
        where += f"&device={device}"
    return RedirectResponse(where, status_code=303)


def _exceeded(console: Console, backtest: str, draft: tuple[MonitorSettings, ...]) -> list[str]:
    """The budget guard on the backtest the form names (none named: nothing to check)."""
    if not backtest:
        return []
    found = backtest_result(console, backtest)
    if found is None:
        return ["the draft's backtest has not finished (or is no longer kept): run it again"]
    digest, result = found
    if digest != draft_digest(draft):
        return ["the draft changed after its backtest: run the backtest again"]
    return budget_exceeded(result, console)


# -- the backtest engine (forewarn.backtest), through the console's backtest runs --------

_DRAFTS: OrderedDict[str, str] = OrderedDict()
"""Backtest run id -> the digest of the draft it judged (the budget guard checks a save
against the backtest of exactly that draft)."""
_DRAFTS_LOCK = threading.Lock()


def draft_digest(monitors: tuple[MonitorSettings, ...]) -> str:
    text = json.dumps(rules_data(monitors), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def start_backtest(
    console: Console,
    draft: tuple[MonitorSettings, ...],
    since: str,
    scope: str,
    who: str,
) -> str:
    """Queue a backtest of ``draft`` against the current rules over the last ``since``
    (the same runs as ``/backtest`` and ``POST /api/backtests``); its id. Raises
    ``ValueError`` with the reason it cannot start."""
    from forewarn.backtest.engine import Request as BacktestRequest
    from forewarn.backtest.engine import Scope, run_backtest
    from forewarn.config.durations import parse_duration

    span = parse_duration(since)
    if not timedelta(hours=1) <= span <= MAX_BACKTEST:
        raise ValueError(f"choose a period between 1h and {MAX_BACKTEST.days}d")
    assert console.rules is not None
    config = console.rules.config
    until = console.clock.now()
    request = BacktestRequest(
        draft=draft,
        since=until - span,
        until=until,
        scope=Scope.parse(scope),
        current=console.current_monitors(),
    )
    request.scope.devices(config.settings)  # a scope naming nothing is refused now
    engine = console.sessions.kw["bind"]
    run = console.backtest_runs().start(
        lambda tell: run_backtest(config, request, progress=tell, engine=engine),
        by=who,
        scope=str(request.scope),
        now=until,
    )
    with _DRAFTS_LOCK:
        _DRAFTS[run.id] = draft_digest(draft)
        while len(_DRAFTS) > 200:
            _DRAFTS.popitem(last=False)
    return run.id


def backtest_state(request: Request, console: Console, backtest: str) -> dict[str, Any] | None:
    """The run's ``{"status", "progress", "phase", "id", "error"}``, plus ``html`` (the
    result fragment) and ``exceeded`` (the budget guard's lines) once done."""
    run = console.backtest_runs().get(backtest) if re.match(r"^[0-9a-f]{16}$", backtest) else None
    if run is None:
        return None
    found = run.as_dict()
    result = found.pop("result")
    state: dict[str, Any] = {k: found[k] for k in ("id", "status", "phase", "progress", "error")}
    if result is not None:
        from forewarn.backtest.pages import chart_of

        exceeded = budget_exceeded(result, console)
        template = console.pages.env.get_template("backtest_fragment.html")
        state["html"] = template.render(result=result, chart=chart_of(result), exceeded=exceeded)
        state["exceeded"] = exceeded
    return state


def backtest_result(console: Console, backtest: str) -> tuple[str, dict[str, Any]] | None:
    """The draft digest and result JSON of finished backtest ``backtest`` (None: unknown,
    not finished, or not the editor's)."""
    run = console.backtest_runs().get(backtest) if re.match(r"^[0-9a-f]{16}$", backtest) else None
    with _DRAFTS_LOCK:
        digest = _DRAFTS.get(backtest)
    if run is None or digest is None:
        return None
    result = run.as_dict()["result"]
    return (digest, result) if isinstance(result, dict) else None
