"""Words that come from data but reach the customer: product kinds, in each shipped language.

A device's ``kind`` (``inverter``) is a key matched against technician skills; a Thai
customer must still read อินเวอร์เตอร์, not the key. Templates write
``{{ device.kind | term(locale) }}``; an unknown kind or language shows the key itself.
"""

from __future__ import annotations

TERMS: dict[str, dict[str, str]] = {
    "inverter": {
        "en": "inverter",
        "pt": "inversor",
        "zh-Hans": "逆变器",
        "zh-Hant": "逆變器",
        "th": "อินเวอร์เตอร์",
    },
    "battery": {
        "en": "battery",
        "pt": "bateria",
        "zh-Hans": "储能电池",
        "zh-Hant": "儲能電池",
        "th": "แบตเตอรี่",
    },
    "meter": {
        "en": "meter",
        "pt": "contador",
        "zh-Hans": "电表",
        "zh-Hant": "電錶",
        "th": "มิเตอร์",
    },
    "gateway": {
        "en": "gateway",
        "pt": "gateway",
        "zh-Hans": "网关",
        "zh-Hant": "閘道器",
        "th": "เกตเวย์",
    },
    "charger": {
        "en": "charger",
        "pt": "carregador",
        "zh-Hans": "充电桩",
        "zh-Hant": "充電樁",
        "th": "เครื่องชาร์จ",
    },
    "heat_pump": {
        "en": "heat pump",
        "pt": "bomba de calor",
        "zh-Hans": "热泵",
        "zh-Hant": "熱泵",
        "th": "ปั๊มความร้อน",
    },
}


def term(key: str, locale: str) -> str:
    """``key`` in ``locale`` (``pt-BR`` falls back to ``pt``), else ``key`` itself."""
    words = TERMS.get(key)
    if words is None:
        return key.replace("_", " ")
    return words.get(locale) or words.get(locale.split("-", 1)[0]) or key.replace("_", " ")
