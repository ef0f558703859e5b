# ruff: noqa: RUF001 - the Chinese examples use full-width punctuation, as customers read them
"""The messages docs/notifications.md shows for the customer-care journeys, rendered from
the real templates (``python -m tests.notifier.journey_docs`` prints them as Markdown;
``test_journey_docs.py`` fails when the document and the templates disagree)."""

from __future__ import annotations

from typing import Any

from forewarn.notifier.examples import example_context
from forewarn.notifier.render import Renderer

LANGUAGES = ("en", "pt", "zh-Hans", "zh-Hant", "th")
PEOPLE: dict[str, tuple[str, str, str]] = {
    # locale: (customer, zone, site)
    "en": ("Emma Clarke", "Europe/London", "Clarke home"),
    "pt": ("Marta Silva", "Europe/Lisbon", "Casa Silva"),
    "zh-Hans": ("王芳", "Asia/Shanghai", "浦东公寓"),
    "zh-Hant": ("陳怡君", "Asia/Taipei", "信義住家"),
    "th": ("สมชาย", "Asia/Bangkok", "บ้านบางนา"),
}
STEPS = {
    "en": "Switch the inverter off, rinse the air filter behind the front grille, let it "
    "dry and switch it on again.",
    "pt": "Desligue o inversor, lave o filtro de ar atrás da grelha da frente, deixe secar "
    "e volte a ligar.",
    "zh-Hans": "关闭逆变器，冲洗前格栅后面的空气滤网，晾干后重新开机。",
    "zh-Hant": "關閉逆變器，沖洗前格柵後方的空氣濾網，晾乾後重新開機。",
    "th": "ปิดอินเวอร์เตอร์ ล้างแผ่นกรองอากาศหลังตะแกรงด้านหน้า รอให้แห้งแล้วเปิดใหม่",
}
REPLIES = {
    "en": "Rita here: the extra charge on your bill was our mistake; it is refunded today.",
    "pt": "Fala a Rita: o valor a mais na fatura foi um erro nosso; é devolvido hoje.",
    "zh-Hans": "我是客服小李：您账单上多收的费用是我们的失误，今天会退还给您。",
    "zh-Hant": "我是客服小林：您帳單上多收的費用是我們的疏失，今天會退還給您。",
    "th": "ริต้าจาก forewarn ค่ะ ยอดที่เรียกเก็บเกินในบิลเป็นความผิดพลาดของเรา จะคืนเงินให้วันนี้",
}
AUTHOR = {"en": "Rita", "pt": "Rita", "zh-Hans": "小李", "zh-Hant": "小林", "th": "ริต้า"}


def context(locale: str, **extra: Any) -> dict[str, Any]:
    name, zone, site = PEOPLE[locale]
    found = example_context(zone)
    found["customer"] = {**found["customer"], "name": name}
    found["recipient"] = {**found["recipient"], "name": name, "timezone": zone}
    found["site"] = {**found["site"], "name": site}
    for key, value in extra.items():
        found[key] = {**found.get(key, {}), **value} if isinstance(value, dict) else value
    return found


def messages() -> dict[str, list[tuple[str, str, str]]]:
    """Journey -> [(what, language, rendered SMS)]."""
    renderer = Renderer()

    def sms(event: str, locale: str, **extra: Any) -> str:
        return renderer.render(event, "sms", locale, context(locale, **extra)).body

    offer = {"steps": None, "outcome": None}
    shown: dict[str, list[tuple[str, str, str]]] = {
        "self-service": [],
        "maintenance": [],
        "conversation": [],
    }
    for locale in LANGUAGES:
        steps = {**offer, "steps": STEPS[locale]}
        shown["self-service"].append(
            ("first notice", locale, sms("self_service_offer", locale, self_service=steps))
        )
    for outcome in ("fixed", "checking", "still_breaching", "not_fixed", "no_answer"):
        steps = {**offer, "steps": STEPS["en"], "outcome": outcome}
        shown["self-service"].append(
            (f"outcome: {outcome}", "en", sms("self_service_result", "en", self_service=steps))
        )
    for locale in LANGUAGES[1:]:
        steps = {**offer, "steps": STEPS[locale], "outcome": "fixed"}
        shown["self-service"].append(
            ("outcome: fixed", locale, sms("self_service_result", locale, self_service=steps))
        )
    for locale in LANGUAGES:
        site = PEOPLE[locale][2]
        window = {"phase": "before", "sites": [site]}
        shown["maintenance"].append(
            ("before", locale, sms("maintenance_notice", locale, maintenance=window))
        )
    for phase in ("extended", "over"):
        window = {"phase": phase, "sites": [PEOPLE["en"][2]], "ends": "2026-11-26T05:00:00+00:00"}
        shown["maintenance"].append(
            (phase, "en", sms("maintenance_notice", "en", maintenance=window))
        )
    for locale in LANGUAGES:
        shown["conversation"].append(("reply to HUMAN", locale, sms("reply_human", locale)))
    for locale in LANGUAGES:
        said = {"body": REPLIES[locale], "author": AUTHOR[locale]}
        shown["conversation"].append(
            ("ops answer", locale, sms("conversation_reply", locale, reply=said))
        )
    shown["conversation"].append(
        (
            "late: to the supervisor",
            "en",
            renderer.render("conversation_escalated", "sms", "en", context("en")).body,
        )
    )
    return shown


def markdown() -> str:
    lines = []
    for journey, rows in messages().items():
        lines.append(f"<!-- {journey} -->")
        lines.append("| message | language | SMS as rendered |")
        lines.append("|---|---|---|")
        for what, locale, body in rows:
            cell = body.replace("|", "\\|")
            lines.append(f"| {what} | {locale} | {cell} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
