"""Words that come from data but reach the customer: product kinds, in each shipped language.

A device's ``kind`` (``inverter``) is a key matched against technician skills; a Thai
customer must still read อินเวอร์เตอร์, not the key. Templates write
``{{ device.kind | term(locale) }}``; an unknown kind or language shows the key itself.
"""

from __future__ import annotations

from forewarn.notifier.locales import candidates

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
    """``key`` in ``locale`` (``pt-BR`` falls back to ``pt``, ``zh-TW`` to ``zh-Hant``),
    else ``key`` itself."""
    words = TERMS.get(key)
    fallback = key.replace("_", " ")
    if words is None:
        return fallback
    return next((words[c] for c in candidates(locale, "") if c in words), fallback)


CLOSURES: dict[str, dict[str, str]] = {
    "fixed": {
        "en": "fixed",
        "pt": "reparado",
        "zh-Hans": "已修复",
        "zh-Hant": "已修復",
        "th": "ซ่อมเสร็จ",
    },
    "no_fault_found": {
        "en": "no fault found",
        "pt": "sem avaria encontrada",
        "zh-Hans": "未发现故障",
        "zh-Hant": "未發現故障",
        "th": "ไม่พบปัญหา",
    },
    "customer_cause": {
        "en": "caused on the customer's side",
        "pt": "causa do lado do cliente",
        "zh-Hans": "客户侧原因",
        "zh-Hant": "客戶端原因",
        "th": "สาเหตุจากฝั่งลูกค้า",
    },
    "parts_needed": {
        "en": "parts needed",
        "pt": "peças necessárias",
        "zh-Hans": "需要零件",
        "zh-Hant": "需要零件",
        "th": "ต้องรออะไหล่",
    },
    "cleared_before_visit": {
        "en": "cleared before the visit",
        "pt": "resolvido antes da visita",
        "zh-Hans": "上门前已恢复",
        "zh-Hant": "到場前已恢復",
        "th": "หายเองก่อนเข้าซ่อม",
    },
    "cancelled": {
        "en": "cancelled",
        "pt": "cancelado",
        "zh-Hans": "已取消",
        "zh-Hant": "已取消",
        "th": "ยกเลิก",
    },
}
"""How a closure code reads in each language (the previous visit on a work order)."""


def closure(code: str | None, locale: str) -> str:
    """A closure code in ``locale``; an unknown code as words."""
    if not code:
        return ""
    words = CLOSURES.get(code)
    if words is None:
        return code.replace("_", " ")
    return next((words[c] for c in candidates(locale, "en") if c in words), code)
