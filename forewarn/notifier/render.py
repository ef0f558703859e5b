"""Rendering messages from Jinja2 templates, per event, channel and locale.

Layout: ``templates/messages/<event>/<locale>/`` holding ``sms.txt``, ``email_subject.txt``,
``email.txt`` and ``email.html``. Locales fall back ``pt-BR -> pt -> default``. SMS and
plain-text templates are not escaped; HTML is autoescaped. Undefined variables are errors
(StrictUndefined), found by ``forewarn check`` rather than when a customer is waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from forewarn.notifier import locales
from forewarn.notifier.evidence import evidence_lines
from forewarn.notifier.examples import example_context
from forewarn.notifier.glossary import closure, term

MESSAGES = Path(__file__).resolve().parent.parent / "templates" / "messages"
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
# The GSM-7 extension table: each of these is sent as an escape plus the character, so it
# costs two of the 160 septets.
GSM7_EXTENSION = set("^{}\\[~]|€")


class TemplateProblem(Exception):
    """A template is missing or fails to render."""


@dataclass(frozen=True)
class Rendered:
    body: str
    subject: str | None = None
    html: str | None = None

    @property
    def sms_segments(self) -> int:
        """How many SMS segments the body costs (GSM-7: 160/153, else UCS-2: 70/67)."""
        return sms_segments(self.body)


def sms_segments(text: str) -> int:
    # One character outside GSM-7 (an emoji, a curly quote, a non-breaking space) switches
    # the whole message to UCS-2 and cuts a segment from 160 to 70 characters.
    if all(c in GSM7 for c in text):
        units = len(text) + sum(c in GSM7_EXTENSION for c in text)
        single, multi = 160, 153
    else:
        # UCS-2 goes out as UTF-16: a character outside the BMP (most emoji) takes two units.
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else -(-units // multi)


def locale_chain(locale: str, default: str) -> list[str]:
    """``pt-BR`` -> ``["pt-BR", "pt", default]``, ``zh-TW`` -> ``["zh-TW", "zh-Hant",
    default]`` (see :mod:`forewarn.notifier.locales`)."""
    return locales.candidates(locale, default)


def _local_time(value: Any, timezone: str = "UTC", fmt: str = "%Y-%m-%d %H:%M") -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return str(value)
    return value.astimezone(ZoneInfo(timezone)).strftime(fmt)


class Renderer:
    """Renders one event for one channel and locale."""

    def __init__(self, root: Path = MESSAGES, default_locale: str = "en") -> None:
        self.root = root
        self.default_locale = default_locale
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(root)),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["local_time"] = _local_time
        self._env.filters["term"] = term
        self._env.filters["closure"] = closure
        self._env.filters["evidence_lines"] = evidence_lines
        # Dates as the recipient reads them, with the zone named:
        # {{ visit.start | when(recipient.timezone, locale) }}.
        self._env.filters["when"] = locales.when
        self._env.filters["day"] = locales.day
        self._env.filters["clock"] = locales.clock
        self._env.globals["window"] = locales.window
        self._env.globals["zone"] = locales.zone

    def events(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def locales(self, event: str) -> list[str]:
        return sorted(p.name for p in (self.root / event).iterdir() if p.is_dir())

    def resolve_locale(self, event: str, locale: str) -> str:
        for candidate in locale_chain(locale, self.default_locale):
            if (self.root / event / candidate).is_dir():
                return candidate
        raise TemplateProblem(f"no templates for event {event!r} in {locale!r} or the default")

    def render(self, event: str, channel: str, locale: str, context: Mapping[str, Any]) -> Rendered:
        chosen = self.resolve_locale(event, locale)
        base = f"{event}/{chosen}"
        # ``locale`` is the language actually rendered, for filters such as ``term``.
        context = {**context, "locale": chosen}
        recipient = context.get("recipient")
        if isinstance(recipient, Mapping) and "by_sms" not in recipient:
            # Queued before recipients said whether they text (a held row across an
            # upgrade): as it was then.
            context["recipient"] = {**recipient, "by_sms": True}
        try:
            if channel == "sms":
                return Rendered(body=self._render(f"{base}/sms.txt", context).strip())
            subject = self._render(f"{base}/email_subject.txt", context).strip()
            text = self._render(f"{base}/email.txt", context).strip() + "\n"
            html = self._render(f"{base}/email.html", context)
            return Rendered(body=text, subject=subject, html=html)
        except jinja2.TemplateNotFound as exc:
            raise TemplateProblem(f"template {exc.name} is missing") from exc
        except jinja2.TemplateError as exc:
            raise TemplateProblem(f"{base} ({channel}): {exc}") from exc
        except (ValueError, TypeError, ArithmeticError, LookupError) as exc:
            # A filter choked on a value (``local_time`` on a date that is not one): the
            # same context fails the same way every time, so it is a template problem too.
            raise TemplateProblem(f"{base} ({channel}): {exc}") from exc

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        return self._env.get_template(name).render(**context)


def channels_of(renderer: Renderer, event: str) -> tuple[str, ...]:
    """``("sms", "email")``, or ``("sms",)`` for an SMS-only event (the replies to inbound
    SMS), which is one whose default locale has no email subject."""
    default = renderer.root / event / renderer.default_locale
    return ("sms", "email") if (default / "email_subject.txt").exists() else ("sms",)


def check_templates(renderer: Renderer) -> list[str]:
    """Render every event, locale and channel with an example context; returns problems.

    Besides rendering errors, an SMS that would carry the street address or the device
    serial is a problem: SMS bodies are read on lock screens.
    """
    problems = []
    context = example_context()
    private = [
        ("street address", str(context["site"]["address"])),
        ("device serial", str(context["device"]["serial"])),
    ]
    for event in renderer.events():
        locales = renderer.locales(event)
        if renderer.default_locale not in locales:
            # Every other locale falls back to the default: without it, a recipient in a
            # language the event lacks would only fail when the message is sent.
            problems.append(
                f"{event}: no templates in the default locale {renderer.default_locale!r}"
            )
        for locale in locales:
            for channel in channels_of(renderer, event):
                try:
                    rendered = renderer.render(event, channel, locale, context)
                except TemplateProblem as exc:
                    problems.append(str(exc))
                    continue
                if channel == "sms":
                    problems += [
                        f"{event}/{locale}/sms.txt: the SMS shows the {what}"
                        for what, value in private
                        if value and value in rendered.body
                    ]
    return problems


@dataclass(frozen=True)
class SmsCost:
    event: str
    locale: str
    characters: int
    encoding: str
    """``GSM-7`` (160 per segment) or ``UCS-2`` (70 per segment)."""
    segments: int


def sms_costs(renderer: Renderer) -> list[SmsCost]:
    """What each SMS template costs with the example context, for ``forewarn check``.

    Chinese and Thai are always UCS-2: 70 characters per single segment, 67 per part.
    """
    context = example_context()
    costs = []
    for event in renderer.events():
        for locale in renderer.locales(event):
            try:
                body = renderer.render(event, "sms", locale, context).body
            except TemplateProblem:
                continue  # reported by check_templates
            costs.append(
                SmsCost(
                    event,
                    locale,
                    len(body),
                    "GSM-7" if all(c in GSM7 for c in body) else "UCS-2",
                    sms_segments(body),
                )
            )
    return costs
