# ruff: noqa: RUF001 - the Chinese texts use full-width punctuation on purpose
"""The customer's answer links from emails (``/answer/...``): public, signed, two steps.

Opening a link shows what it answers and one button; only the button's POST acts. Mail
scanners and link previews open every link in an email: a GET that acted would answer
FIXED for the customer. The page is in the customer's language, needs no sign-in and runs
no script. A forged, altered or expired link gets a 403 page that says so and changes
nothing; without ``FOREWARN_LINK_SECRET`` every link is refused (404).
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from forewarn.notifier.links import LINK_PATH, BadLink, LinkSigner
from forewarn.notifier.render import locale_chain
from forewarn.store.care import SelfServiceOffer
from forewarn.store.models import Customer
from forewarn.ticketing import self_service
from forewarn.web.dependencies import ConsoleDep

router = APIRouter(include_in_schema=False)

ANSWERS = ("fixed", "not_fixed")
TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your answer to forewarn",
        "fixed": "Yes, it works again (FIXED)",
        "not_fixed": "No, the problem is still there (NOT FIXED)",
        "ask": "Please confirm your answer about ticket #{ticket}:",
        "button": "Send my answer",
        "done": "Thank you: your answer was received. We will send you the outcome shortly.",
        "late": "This question was already settled: {outcome}. Nothing was changed.",
        "bad": "This link cannot be used: {why}.",
    },
    "pt": {
        "title": "A sua resposta à forewarn",
        "fixed": "Sim, já funciona (FIXED)",
        "not_fixed": "Não, o problema continua (NOT FIXED)",
        "ask": "Confirme a sua resposta sobre o pedido #{ticket}:",
        "button": "Enviar a resposta",
        "done": "Obrigado: recebemos a sua resposta. Enviamos-lhe o resultado em breve.",
        "late": "Esta questão já estava resolvida: {outcome}. Nada foi alterado.",
        "bad": "Esta ligação não pode ser usada: {why}.",
    },
    "zh-Hans": {
        "title": "您给 forewarn 的回复",
        "fixed": "是的，已恢复正常（FIXED）",
        "not_fixed": "没有，问题仍然存在（NOT FIXED）",
        "ask": "请确认您关于工单 #{ticket} 的回复：",
        "button": "提交回复",
        "done": "谢谢，我们已收到您的回复，稍后会把结果发送给您。",
        "late": "此事项已有结果：{outcome}。没有做任何更改。",
        "bad": "此链接无法使用：{why}。",
    },
    "zh-Hant": {
        "title": "您給 forewarn 的回覆",
        "fixed": "是的，已恢復正常（FIXED）",
        "not_fixed": "沒有，問題仍然存在（NOT FIXED）",
        "ask": "請確認您關於工單 #{ticket} 的回覆：",
        "button": "送出回覆",
        "done": "謝謝，我們已收到您的回覆，稍後會將結果傳送給您。",
        "late": "此事項已有結果：{outcome}。沒有做任何變更。",
        "bad": "此連結無法使用：{why}。",
    },
    "th": {
        "title": "คำตอบของคุณถึง forewarn",
        "fixed": "ใช่ ใช้งานได้แล้ว (FIXED)",
        "not_fixed": "ไม่ ปัญหายังอยู่ (NOT FIXED)",
        "ask": "กรุณายืนยันคำตอบของคุณเกี่ยวกับใบงาน #{ticket}:",
        "button": "ส่งคำตอบ",
        "done": "ขอบคุณ เราได้รับคำตอบของคุณแล้ว และจะแจ้งผลให้ทราบในไม่ช้า",
        "late": "เรื่องนี้มีผลแล้ว: {outcome} ไม่มีการเปลี่ยนแปลงใดๆ",
        "bad": "ลิงก์นี้ใช้ไม่ได้: {why}",
    },
}


def _page(locale: str, body: str, status: int = 200) -> HTMLResponse:
    text = TEXT[locale]
    html = (
        f'<!doctype html><html lang="{locale}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(text['title'])}</title>"
        "<style>body{font-family:sans-serif;color:#1d2733;max-width:34rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.5}button{font-size:1.1rem;padding:.7rem 1.2rem}</style>"
        f"</head><body><h1>{escape(text['title'])}</h1>{body}</body></html>"
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def _signer(console: ConsoleDep) -> LinkSigner | None:
    settings, secret = console.config.settings, console.config.secrets.link_secret
    if not secret or not settings.web.public_url:
        return None
    return LinkSigner(settings.web.public_url, secret)


def _check(
    console: ConsoleDep, offer_id: int, answer: str, until: str, sig: str
) -> tuple[SelfServiceOffer, str] | HTMLResponse:
    signer = _signer(console)
    with console.sessions() as session:
        offer = session.get(SelfServiceOffer, offer_id) if 0 < offer_id < 2**31 else None
        customer = session.get(Customer, offer.customer_id) if offer else None
    locale = _language(customer.locale if customer else "en")
    if signer is None or offer is None or answer not in ANSWERS or not until.isdigit():
        return _page(locale, "<p>404</p>", 404)
    try:
        signer.verify(
            self_service.PURPOSE, offer_id, answer, int(until), sig[:64], console.clock.now()
        )
    except BadLink as bad:
        return _page(locale, f"<p>{escape(TEXT[locale]['bad'].format(why=bad))}</p>", 403)
    return offer, locale


@router.get(LINK_PATH + "/self-service/{offer_id}/{answer}", response_class=HTMLResponse)
def show(
    offer_id: int, answer: str, console: ConsoleDep, until: str = "", sig: str = ""
) -> HTMLResponse:
    checked = _check(console, offer_id, answer, until, sig)
    if isinstance(checked, HTMLResponse):
        return checked
    offer, locale = checked
    text = TEXT[locale]
    return _page(
        locale,
        f"<p>{escape(text['ask'].format(ticket=offer.ticket_id))}</p>"
        f"<p><strong>{escape(text[answer])}</strong></p>"
        f'<form method="post"><button type="submit">{escape(text["button"])}</button></form>',
    )


@router.post(LINK_PATH + "/self-service/{offer_id}/{answer}", response_class=HTMLResponse)
async def act(
    offer_id: int,
    answer: str,
    request: Request,
    console: ConsoleDep,
    until: str = "",
    sig: str = "",
) -> HTMLResponse:
    await _drain(request)
    checked = _check(console, offer_id, answer, until, sig)
    if isinstance(checked, HTMLResponse):
        return checked
    offer, locale = checked
    given: self_service.Answer = "fixed" if answer == "fixed" else "not_fixed"
    with console.sessions.begin() as session:
        outcome = self_service.answer(
            session,
            offer.id,
            given,
            console.clock.now(),
            via="email",
            default_locale=console.config.settings.notifications.default_locale,
        )
        settled = session.get(SelfServiceOffer, offer.id)
    text = TEXT[locale]
    if outcome is None:
        why = (settled.outcome or settled.status) if settled else "?"
        return _page(locale, f"<p>{escape(text['late'].format(outcome=why))}</p>", 409)
    return _page(locale, f"<p>{escape(text['done'])}</p>")


async def _drain(request: Request) -> None:
    # The button posts an empty form; read (at most a little of) it all the same.
    async for _ in request.stream():
        break


def _language(locale: str) -> str:
    return next((c for c in locale_chain(locale, "en") if c in TEXT), "en")
