"""Which of our languages a recipient's locale tag means, and dates as they read them.

One place for locale resolution: the template tree (``templates/messages/<event>/<locale>``)
and the glossary both ask :func:`candidates`. Tags arrive as customers and feeds write
them (``zh_TW``, ``ZH-hk``, ``pt-br``, ``th-TH``); Chinese is chosen by script, not by
language: ``zh-TW``, ``zh-HK`` and ``zh-MO`` read Traditional characters (``zh-Hant``),
``zh-CN``, ``zh-SG``, ``zh-MY`` and a bare ``zh`` read Simplified (``zh-Hans``). An explicit
script subtag (``zh-Hant-CN``) wins over the region.

Dates are formatted here too (pure; no locale data from the operating system, which a
container may not have): a day with its weekday, a clock time, a window, and the zone
named, in each shipped language.
"""

# ruff: noqa: RUF001, RUF002 - full-width Chinese punctuation is part of the text

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

TRADITIONAL_REGIONS = frozenset({"TW", "HK", "MO"})
"""Chinese regions that read Traditional characters; every other region reads Simplified."""


def canonical(tag: str) -> str:
    """``tag`` in BCP 47 case with hyphens: ``zh_tw`` -> ``zh-TW``, ``zh-hant`` ->
    ``zh-Hant``, ``PT-br`` -> ``pt-BR``. Empty or blank gives ``""``."""
    parts = [p for p in tag.strip().replace("_", "-").split("-") if p]
    if not parts:
        return ""
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())  # a script
        elif len(part) in (2, 3):
            out.append(part.upper())  # a region (or UN M.49 digits)
        else:
            out.append(part.lower())  # a variant
    return "-".join(out)


def candidates(tag: str, default: str) -> list[str]:
    """The locales to try for ``tag``, most specific first, ending with ``default``.

    ``pt-BR`` -> ``[pt-BR, pt, default]``; ``zh-TW`` -> ``[zh-TW, zh-Hant, default]``;
    ``zh-SG`` -> ``[zh-SG, zh-Hans, default]``; ``sr-Latn-RS`` -> ``[sr-Latn-RS, sr-Latn,
    sr, default]``.
    """
    tag = canonical(tag)
    if not tag:
        return [default]
    parts = tag.split("-")
    chain = [tag]
    if parts[0] == "zh":
        script = next((p for p in parts[1:] if p in ("Hans", "Hant")), None)
        if script is None:
            region = next((p for p in parts[1:] if len(p) in (2, 3) and p.isupper()), "")
            script = "Hant" if region in TRADITIONAL_REGIONS else "Hans"
        chain.append(f"zh-{script}")
    else:
        chain += ["-".join(parts[:n]) for n in range(len(parts) - 1, 0, -1)]
    chain.append(default)
    return list(dict.fromkeys(chain))


def pick(tag: str, available: set[str] | frozenset[str], default: str) -> str:
    """The first of :func:`candidates` found in ``available`` (else ``default``)."""
    return next((c for c in candidates(tag, default) if c in available), default)


# -- dates as the recipient reads them -------------------------------------------------------

WEEKDAYS: dict[str, tuple[str, ...]] = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "pt": ("seg", "ter", "qua", "qui", "sex", "sáb", "dom"),
    "zh-Hans": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    "zh-Hant": ("週一", "週二", "週三", "週四", "週五", "週六", "週日"),
    "th": ("จันทร์", "อังคาร", "พุธ", "พฤหัสบดี", "ศุกร์", "เสาร์", "อาทิตย์"),
}
MONTHS: dict[str, tuple[str, ...]] = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "pt": ("jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"),
    "th": (
        "ม.ค.",
        "ก.พ.",
        "มี.ค.",
        "เม.ย.",
        "พ.ค.",
        "มิ.ย.",
        "ก.ค.",
        "ส.ค.",
        "ก.ย.",
        "ต.ค.",
        "พ.ย.",
        "ธ.ค.",
    ),
}
ZONE_LABEL = {
    "en": "{zone} time",
    "pt": "hora de {zone}",
    "zh-Hans": "{zone} 时间",
    "zh-Hant": "{zone} 時間",
    "th": "เวลา {zone}",
}


def _language(locale: str) -> str:
    return pick(locale, frozenset(WEEKDAYS), "en")


def _at(value: Any, timezone: str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        # str() of a template's undefined value raises the error that names it.
        raise TypeError(f"not a date and time: {str(value)!r}")
    return value.astimezone(ZoneInfo(timezone))


def day(value: Any, timezone: str, locale: str) -> str:
    """The local date with its weekday: ``Tue 1 Dec``, ``ter, 1 dez``, ``12月1日（周二）``,
    ``วันอังคารที่ 1 ธ.ค.``."""
    local, language = _at(value, timezone), _language(locale)
    weekday = WEEKDAYS[language][local.weekday()]
    if language.startswith("zh"):
        return f"{local.month}月{local.day}日（{weekday}）"
    if language == "th":
        return f"วัน{weekday}ที่ {local.day} {MONTHS['th'][local.month - 1]}"
    month = MONTHS[language][local.month - 1]
    return (
        f"{weekday}, {local.day} {month}" if language == "pt" else f"{weekday} {local.day} {month}"
    )


def clock(value: Any, timezone: str) -> str:
    """The local wall-clock time, 24-hour: ``09:00``."""
    return _at(value, timezone).strftime("%H:%M")


def when(value: Any, timezone: str, locale: str) -> str:
    """A local moment with its zone named: ``Tue 1 Dec 09:00 (Europe/Lisbon time)``."""
    at = f"{clock(value, timezone)}{_hours_word(locale)}"
    return f"{day(value, timezone, locale)} {at}{_suffix(timezone, locale)}"


def window(start: Any, end: Any, timezone: str, locale: str, named: bool = True) -> str:
    """A visit window with its zone named: ``Tue 1 Dec 09:00-11:00 (Europe/Lisbon time)``;
    a window that ends on a later day names both days. ``named=False`` leaves the zone out
    (a list of windows names it once)."""
    first, last = _at(start, timezone), _at(end, timezone)
    span = f"{day(first, timezone, locale)} {clock(first, timezone)}-"
    if last.date() != first.date() and not (last.hour == 0 and last.minute == 0):
        span += f"{day(last, timezone, locale)} "
    span += clock(last, timezone) if (last.hour, last.minute) != (0, 0) else "24:00"
    return span + _hours_word(locale) + (_suffix(timezone, locale) if named else "")


def zone(timezone: str, locale: str) -> str:
    """The zone named in the recipient's language: ``Europe/Lisbon time``."""
    return ZONE_LABEL[_language(locale)].format(zone=timezone)


def _hours_word(locale: str) -> str:
    # Thai writes the clock with น. (นาฬิกา) after it: 09:00-11:00 น.
    return " น." if _language(locale) == "th" else ""


def _suffix(timezone: str, locale: str) -> str:
    label = zone(timezone, locale)
    return f"（{label}）" if _language(locale).startswith("zh") else f" ({label})"
