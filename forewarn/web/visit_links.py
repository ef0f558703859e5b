"""The customer's page behind a visit link in an email: ``/visit/<signed token>``.

Public (the signed, expiring token is the permission; see :mod:`forewarn.ticketing.links`).
``GET`` shows the window and a button; only the button's ``POST`` books it, because mail
scanners open links. Every outcome is a short page in the customer's language that says
what happened: booked, already booked, no longer offered, expired, not ours. Mounted by
:func:`forewarn.service.web_app` when ``FOREWARN_LINK_SECRET`` is set.
"""

# ruff: noqa: RUF001 - full-width Chinese punctuation is part of the text

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session, sessionmaker

from forewarn.clock import Clock
from forewarn.notifier.glossary import term
from forewarn.notifier.locales import pick, window
from forewarn.store.appointments import SqlAppointmentStore
from forewarn.store.models import Customer, Device, Site, Technician, Ticket
from forewarn.ticketing import links
from forewarn.ticketing.visits import VisitGone, Visits

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your repair visit",
        "offer": "{tech} can visit your {kind} at {site}:",
        "button": "Book this time",
        "booked": "Booked. {tech} will visit your {kind} at {site}:",
        "remind": "We will remind you the day before. You can close this page.",
        "already": "This visit is already booked:",
        "gone": "This time can no longer be booked. Please use the times in our latest message.",
        "expired": "This link has expired. Please use the times in our latest message.",
        "forged": "This is not a visit link we sent.",
    },
    "pt": {
        "title": "A sua visita de reparação",
        "offer": "{tech} pode ir ao seu {kind} em {site}:",
        "button": "Marcar este horário",
        "booked": "Marcado. {tech} vai ao seu {kind} em {site}:",
        "remind": "Lembramos na véspera. Pode fechar esta página.",
        "already": "Esta visita já está marcada:",
        "gone": (
            "Este horário já não pode ser marcado. Use os horários da nossa mensagem mais recente."
        ),
        "expired": "Este link expirou. Use os horários da nossa mensagem mais recente.",
        "forged": "Este não é um link de visita enviado por nós.",
    },
    "zh-Hans": {
        "title": "您的上门维修",
        "offer": "{tech}可以到{site}维修您的{kind}：",
        "button": "预约此时间",
        "booked": "已预约。{tech}将到{site}维修您的{kind}：",
        "remind": "我们会在前一天提醒您。您可以关闭此页面。",
        "already": "此次上门已预约：",
        "gone": "此时间已无法预约，请使用我们最新消息中的时间。",
        "expired": "此链接已过期，请使用我们最新消息中的时间。",
        "forged": "这不是我们发送的预约链接。",
    },
    "zh-Hant": {
        "title": "您的到府維修",
        "offer": "{tech}可以到{site}維修您的{kind}：",
        "button": "預約此時間",
        "booked": "已預約。{tech}將到{site}維修您的{kind}：",
        "remind": "我們會在前一天提醒您。您可以關閉此頁面。",
        "already": "此次到府已預約：",
        "gone": "此時間已無法預約，請使用我們最新訊息中的時間。",
        "expired": "此連結已過期，請使用我們最新訊息中的時間。",
        "forged": "這不是我們寄出的預約連結。",
    },
    "th": {
        "title": "นัดช่างเข้าซ่อม",
        "offer": "ช่าง {tech} เข้าซ่อม{kind}ที่ {site} ได้ในเวลา",
        "button": "จองเวลานี้",
        "booked": "จองแล้ว ช่าง {tech} จะเข้าซ่อม{kind}ที่ {site}",
        "remind": "เราจะเตือนอีกครั้งวันก่อนนัด ปิดหน้านี้ได้เลย",
        "already": "นัดนี้จองไว้แล้ว",
        "gone": "เวลานี้จองไม่ได้แล้ว กรุณาเลือกจากเวลาในข้อความล่าสุดของเรา",
        "expired": "ลิงก์นี้หมดอายุแล้ว กรุณาเลือกจากเวลาในข้อความล่าสุดของเรา",
        "forged": "ลิงก์นี้ไม่ใช่ลิงก์นัดหมายที่เราส่งไป",
    },
}


def make_router(
    sessions: sessionmaker[Session], clock: Clock, visits: Visits, secret: str
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(links.PATH + "/{token}")
    def show(token: str, request: Request) -> HTMLResponse:
        with sessions() as session:
            return _page(session, visits, clock, secret, token, book=False)

    @router.post(links.PATH + "/{token}")
    def book(token: str, request: Request) -> HTMLResponse:
        with sessions.begin() as session:
            return _page(session, visits, clock, secret, token, book=True)

    return router


def _page(
    session: Session, visits: Visits, clock: Clock, secret: str, token: str, *, book: bool
) -> HTMLResponse:
    now = clock.now()
    try:
        appointment_id = links.verify(token, secret, now)
    except links.LinkProblem as problem:
        expired = "expired" in str(problem)
        words = WORDS["en"]
        text = escape(words["expired" if expired else "forged"])
        return _html("en", words["title"], [text], 410 if expired else 404)
    appointment = SqlAppointmentStore(session).get(appointment_id)
    if appointment is None:
        return _html("en", WORDS["en"]["title"], [escape(WORDS["en"]["forged"])], 404)
    customer = session.get(Customer, appointment.customer_id) if appointment.customer_id else None
    language = pick(customer.locale if customer else "en", frozenset(WORDS), "en")
    words = WORDS[language]
    zone = customer.timezone if customer else "UTC"
    ticket = session.get(Ticket, appointment.ticket_id)
    device = session.get(Device, ticket.device_id) if ticket and ticket.device_id else None
    site = session.get(Site, ticket.site_id) if ticket and ticket.site_id else None
    technician = session.get(Technician, appointment.technician_id)
    names = {
        "tech": technician.name if technician else "",
        "kind": term(device.kind, language) if device else "",
        "site": site.name if site else "",
    }
    when = window(appointment.start_at, appointment.end_at, zone, language)
    if appointment.status == "confirmed":
        return _html(
            language, words["title"], [escape(words["already"]), f"<strong>{escape(when)}</strong>"]
        )
    if not book:
        if appointment.status != "offered":
            return _html(language, words["title"], [escape(words["gone"])], 409)
        button = (
            f'<form method="post"><button type="submit">{escape(words["button"])}</button></form>'
        )
        return _html(
            language,
            words["title"],
            [_fill(words["offer"], names), f"<strong>{escape(when)}</strong>"],
            extra=button,
        )
    try:
        visits.confirm(session, appointment.id, now, via="link")
    except VisitGone:
        return _html(language, words["title"], [escape(words["gone"])], 409)
    return _html(
        language,
        words["title"],
        [
            _fill(words["booked"], names),
            f"<strong>{escape(when)}</strong>",
            escape(words["remind"]),
        ],
    )


def _fill(text: str, names: dict[str, str]) -> str:
    return escape(text).format(**{k: escape(v) for k, v in names.items()})


def _html(
    language: str, title: str, lines: list[str], status: int = 200, *, extra: str = ""
) -> HTMLResponse:
    """A small page; ``lines`` are HTML already escaped by the caller."""
    body = "".join(f"<p>{line}</p>" for line in lines)
    page = f"""<!doctype html>
<html lang="{language}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; color: #1d2733; max-width: 32rem; margin: 2rem auto;
  padding: 0 1rem; line-height: 1.5; }}
button {{ font-size: 1.1rem; padding: .8rem 1.4rem; border: 0; border-radius: .4rem;
  background: #1f6feb; color: #fff; width: 100%; }}
</style></head>
<body><h1>{escape(title)}</h1>{body}{extra}<p style="color:#667">forewarn</p></body></html>"""
    return HTMLResponse(page, status_code=status)
