"""An alert's evidence as a technician reads it: words and units, never Python values.

The monitors keep evidence as data (``{"levels": {"above": 75.0, "below": None}, ...}``)
for the console and the audit trail; a work order shows it as short lines in the
technician's language and zone: ``temperature 81.5 °C``, ``fires above 75 °C, clears at
70 °C``, ``held for 10 min``. Keys this module does not know are shown as words with their
value, so a new rule kind degrades to plain text rather than to ``{'k': None}``.
"""

# ruff: noqa: RUF001 - full-width Chinese punctuation is part of the text

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from forewarn.notifier.locales import pick, when

UNITS = {
    "temperature": "°C",
    "power": "W",
    "energy": "kWh",
    "voltage": "V",
    "current": "A",
    "frequency": "Hz",
    "soc": "%",
    "state_of_charge": "%",
    "humidity": "%",
    "pressure": "bar",
}
"""Units of the metrics the simulator and the example config use (by metric name)."""

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "above": "fires above {v}",
        "below": "fires below {v}",
        "clear": "clears at {v}",
        "held": "held for {v}",
        "silent": "silent for {v}",
        "code": "status code {v}",
        "timer": "fired when the hold time ran out (no new reading needed)",
        "in_a_row": "{v} readings in a row",
        "since": "beyond its level since {v}",
        "last_seen": "last reading {v}",
        "at": "reading taken {v}",
        "raised_from": "raised from {v}",
        "min": "{v} min",
        "h": "{v} h",
        "s": "{v} s",
    },
    "pt": {
        "above": "dispara acima de {v}",
        "below": "dispara abaixo de {v}",
        "clear": "normaliza em {v}",
        "held": "mantido durante {v}",
        "silent": "sem dados há {v}",
        "code": "código de estado {v}",
        "timer": "disparou ao fim do tempo de espera (sem nova leitura)",
        "in_a_row": "{v} leituras seguidas",
        "since": "fora do nível desde {v}",
        "last_seen": "última leitura {v}",
        "at": "leitura de {v}",
        "raised_from": "subiu de {v}",
        "min": "{v} min",
        "h": "{v} h",
        "s": "{v} s",
    },
    "zh-Hans": {
        "above": "高于 {v} 时触发",
        "below": "低于 {v} 时触发",
        "clear": "回到 {v} 时解除",
        "held": "持续 {v}",
        "silent": "已 {v} 无数据",
        "code": "状态码 {v}",
        "timer": "持续时间届满时触发（无需新读数）",
        "in_a_row": "连续 {v} 个读数",
        "since": "自 {v} 起超出限值",
        "last_seen": "最后读数 {v}",
        "at": "读数时间 {v}",
        "raised_from": "由 {v} 升级",
        "min": "{v} 分钟",
        "h": "{v} 小时",
        "s": "{v} 秒",
    },
    "zh-Hant": {
        "above": "高於 {v} 時觸發",
        "below": "低於 {v} 時觸發",
        "clear": "回到 {v} 時解除",
        "held": "持續 {v}",
        "silent": "已 {v} 無資料",
        "code": "狀態碼 {v}",
        "timer": "持續時間屆滿時觸發（無需新讀數）",
        "in_a_row": "連續 {v} 筆讀數",
        "since": "自 {v} 起超出限值",
        "last_seen": "最後讀數 {v}",
        "at": "讀數時間 {v}",
        "raised_from": "由 {v} 升級",
        "min": "{v} 分鐘",
        "h": "{v} 小時",
        "s": "{v} 秒",
    },
    "th": {
        "above": "แจ้งเตือนเมื่อสูงกว่า {v}",
        "below": "แจ้งเตือนเมื่อต่ำกว่า {v}",
        "clear": "กลับเป็นปกติที่ {v}",
        "held": "ต่อเนื่อง {v}",
        "silent": "ไม่มีข้อมูลมา {v}",
        "code": "รหัสสถานะ {v}",
        "timer": "แจ้งเตือนเมื่อครบเวลาที่กำหนด (ไม่ต้องรอค่าใหม่)",
        "in_a_row": "ค่าเกิน {v} ครั้งติดกัน",
        "since": "เกินเกณฑ์ตั้งแต่ {v}",
        "last_seen": "ค่าล่าสุดเมื่อ {v}",
        "at": "อ่านค่าเมื่อ {v}",
        "raised_from": "ยกระดับจาก {v}",
        "min": "{v} นาที",
        "h": "{v} ชั่วโมง",
        "s": "{v} วินาที",
    },
}

_TIMES = {"ts": "at", "held_since": "since", "last_seen": "last_seen", "last_reading": "at"}
_SKIP = {"metric", "value", "summary", "decided_at", "fired_by", "levels", "for_seconds"}


def number(value: float, unit: str = "") -> str:
    """``75.0`` -> ``75``, ``81.49`` -> ``81.49``, with the unit after a space."""
    text = f"{value:g}" if abs(value) < 1e6 else f"{value:.0f}"
    return f"{text} {unit}".strip() if unit and unit != "%" else f"{text}{unit}"


def duration(seconds: float, language: str) -> str:
    phrases = PHRASES[language]
    if seconds >= 3600 and seconds % 3600 == 0:
        return phrases["h"].format(v=f"{seconds / 3600:g}")
    if seconds >= 60:
        return phrases["min"].format(v=f"{seconds / 60:g}")
    return phrases["s"].format(v=f"{seconds:g}")


def evidence_lines(evidence: Mapping[str, Any], timezone: str, locale: str) -> list[str]:
    """``evidence`` as short lines for a work order, in ``locale`` and ``timezone``."""
    language = pick(locale, frozenset(PHRASES), "en")
    say = PHRASES[language]
    metric = str(evidence.get("metric") or "")
    unit = UNITS.get(metric, "")
    lines: list[str] = []
    value = evidence.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        lines.append(f"{metric} {number(value, unit)}".strip())
    levels = evidence.get("levels")
    if isinstance(levels, Mapping):
        parts = [
            say[name].format(v=number(float(levels[name]), unit))
            for name in ("above", "below", "clear")
            if isinstance(levels.get(name), int | float)
        ]
        if parts:
            lines.append(", ".join(parts))
    held = evidence.get("for_seconds")
    if isinstance(held, int | float) and held > 0:
        lines.append(say["held"].format(v=duration(float(held), language)))
    if evidence.get("fired_by") == "timer":
        lines.append(say["timer"])
    for key, raw in evidence.items():
        if key in _SKIP or raw is None or raw == "":
            continue
        if key in _TIMES and isinstance(raw, str):
            lines.append(say[_TIMES[key]].format(v=_moment(raw, timezone, locale)))
        elif key == "after_seconds" and isinstance(raw, int | float):
            lines.append(say["silent"].format(v=duration(float(raw), language)))
        elif key == "code":
            lines.append(say["code"].format(v=raw))
        elif key == "in_a_row":
            lines.append(say["in_a_row"].format(v=raw))
        elif key == "raised_from":
            lines.append(say["raised_from"].format(v=raw))
        else:
            lines.append(f"{key.replace('_', ' ')}: {_plain(raw)}")
    return lines


def _moment(raw: str, timezone: str, locale: str) -> str:
    try:
        return when(datetime.fromisoformat(raw), timezone, locale)
    except ValueError:
        return raw


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(
            f"{k.replace('_', ' ')} {_plain(v)}" for k, v in value.items() if v is not None
        )
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, float):
        return number(value)
    return str(value)
