"""Customer care: self-service steps, conversations with a person, routing of free text,
planned-maintenance notices."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import field_validator

from forewarn.config.schema.base import Duration, Identifier, Model
from forewarn.config.schema.ticketing import ContactSettings

LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


class SelfServiceSteps(Model):
    """Customer-safe steps from the knowledge base, offered in the first notice: the
    customer may fix the fault and reply FIXED (by SMS, or through the signed link in the
    email). FIXED closes the ticket without a visit only when the telemetry is back to
    normal; anything else keeps the visit."""

    steps: dict[str, str]
    """The steps per language (``en``, ``pt``, ``zh-Hans``, ``zh-Hant``, ``th``...); the
    default language (``notifications.default_locale``) is required. Plain words, one
    short paragraph: they go into an SMS. Never a step that needs tools or opens a cover."""
    answer_within: Duration = timedelta(hours=2)
    """Without FIXED (or NOT FIXED) by then, the visit goes ahead and the customer is told."""
    settle_within: Duration = timedelta(minutes=30)
    """After FIXED the telemetry must be back to normal within this (a filter cleaned at
    noon needs a few minutes to cool the unit); still breaching then keeps the visit."""

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("give the steps in at least the default language")
        for locale, text in value.items():
            if not re.fullmatch(LOCALE_PATTERN, locale):
                raise ValueError(f"{locale!r} is not a language tag such as 'en' or 'zh-Hant'")
            if not text.strip():
                raise ValueError(f"the {locale} steps are empty")
            if len(text) > 320:
                raise ValueError(
                    f"the {locale} steps are {len(text)} characters; keep them under 320 "
                    "(they go into an SMS)"
                )
        return value

    @field_validator("answer_within", "settle_within")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value


class QueueSettings(Model):
    """A queue of conversations that a team answers."""

    id: Identifier
    name: str = ""
    """How the console shows it; default: the id."""
    owner: str | None = None
    """Who owns new conversations in this queue (an ops user name); empty: the queue."""
    respond_within: Duration | None = None
    """The response SLA of this queue; default ``notifications.human_response_sla``."""
    escalate_to: ContactSettings | None = None
    """Told when a conversation of this queue is late; default ``care.escalate_to``."""


class RoutingRule(Model):
    """Keywords per language that send a customer's free text to a queue."""

    queue: Identifier
    keywords: dict[str, tuple[str, ...]]
    """Language -> words or phrases. Latin-script words match whole words, case and
    accents as written; Chinese and Thai match anywhere in the text."""


DEFAULT_QUEUES = (
    QueueSettings(id="general", name="General"),
    QueueSettings(id="appointment", name="Appointments"),
    QueueSettings(id="billing", name="Billing"),
    QueueSettings(id="complaint", name="Complaints"),
    QueueSettings(id="technical", name="Technical"),
    QueueSettings(id="delivery", name="Delivery"),
)

DEFAULT_ROUTING = (
    RoutingRule(
        queue="complaint",
        keywords={
            "en": ("complaint", "complain", "unacceptable", "disgrace", "terrible", "manager"),
            "pt": ("reclamação", "reclamacao", "queixa", "inaceitável", "péssimo", "vergonha"),
            "zh-Hans": ("投诉", "不满", "太差", "差评"),
            "zh-Hant": ("投訴", "客訴", "不滿", "太差"),
            "th": ("ร้องเรียน", "ไม่พอใจ", "แย่มาก"),
        },
    ),
    RoutingRule(
        queue="billing",
        keywords={
            "en": ("bill", "billing", "invoice", "charge", "charged", "payment", "refund", "price"),
            "pt": ("fatura", "factura", "pagamento", "cobrança", "cobranca", "reembolso", "preço"),
            "zh-Hans": ("账单", "发票", "付款", "扣费", "退款", "收费"),
            "zh-Hant": ("帳單", "發票", "付款", "扣款", "退款", "收費"),
            "th": ("บิล", "ใบแจ้งหนี้", "ค่าบริการ", "ชำระเงิน", "คืนเงิน", "เก็บเงิน"),
        },
    ),
    RoutingRule(
        queue="delivery",
        keywords={
            "en": ("delivery", "deliver", "order", "parcel", "package", "courier", "tracking"),
            "pt": ("entrega", "encomenda", "pedido", "transportadora", "estafeta"),
            "zh-Hans": ("快递", "送货", "订单", "包裹", "物流"),
            "zh-Hant": ("快遞", "送貨", "訂單", "包裹", "物流"),
            "th": ("จัดส่ง", "พัสดุ", "คำสั่งซื้อ", "ขนส่ง"),
        },
    ),
    RoutingRule(
        queue="appointment",
        keywords={
            "en": ("appointment", "reschedule", "visit", "technician", "schedule"),
            "pt": ("marcação", "marcacao", "agendar", "remarcar", "visita", "técnico", "tecnico"),
            "zh-Hans": ("预约", "改期", "上门", "师傅"),
            "zh-Hant": ("預約", "改期", "到府", "師傅", "技師"),
            "th": ("นัด", "เลื่อนนัด", "ช่าง"),
        },
    ),
    RoutingRule(
        queue="technical",
        keywords={
            "en": ("broken", "error", "fault", "beeping", "noise", "alarm", "working", "power"),
            "pt": ("avaria", "avariado", "erro", "barulho", "alarme", "funciona", "desligado"),
            "zh-Hans": ("故障", "坏了", "不工作", "报错", "异响", "停电"),
            "zh-Hant": ("故障", "壞了", "不運作", "錯誤", "異音", "停電"),
            "th": ("เสีย", "ไม่ทำงาน", "ขัดข้อง", "มีเสียง", "ไฟดับ"),
        },
    ),
)


class CareSettings(Model):
    """Conversations with a person, routing of free text and maintenance notices
    (docs/notifications.md)."""

    queues: tuple[QueueSettings, ...] = DEFAULT_QUEUES
    """The conversation queues; routing rules and ``default_queue`` name them."""
    default_queue: Identifier = "general"
    """Where HUMAN and text no keyword reads go."""
    routing: tuple[RoutingRule, ...] = DEFAULT_ROUTING
    """Keyword rules, first match wins, tried in the customer's language first, then in
    every language. The defaults cover complaint, billing, appointment, delivery and
    technical in en, pt, zh-Hans, zh-Hant and th."""
    escalate_to: ContactSettings | None = None
    """Told when a conversation is not answered within its SLA; default: the ticketing
    supervisor, else the dispatcher."""
    reply_awake_within: Duration = timedelta(minutes=15)
    """An ops reply to a customer who wrote less than this long ago ignores their quiet
    hours (they are evidently awake and waiting); later replies respect them."""
    maintenance_notice_before: Duration = timedelta(hours=24)
    """Default lead time of a planned-maintenance notice (``notice_before`` on a silence
    overrides it)."""

    @field_validator("queues")
    @classmethod
    def _queues(cls, value: tuple[QueueSettings, ...]) -> tuple[QueueSettings, ...]:
        seen: set[str] = set()
        for queue in value:
            if queue.id in seen:
                raise ValueError(f"duplicate queue {queue.id!r}")
            seen.add(queue.id)
        if not value:
            raise ValueError("give at least one queue")
        return value

    def queue(self, queue_id: str) -> QueueSettings:
        for queue in self.queues:
            if queue.id == queue_id:
                return queue
        return QueueSettings(id=queue_id)
