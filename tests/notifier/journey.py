# ruff: noqa: RUF001 - the Chinese steps use full-width punctuation, as customers read them
"""A whole forewarn for the customer-journey tests: built from a config by ``build()`` as
``forewarn run`` builds it, the real Twilio SDK pointed at the local fake, the web app
(console, API, signed webhooks) as ``forewarn run`` serves it, and a stepping clock.

Telemetry enters as the ingester hands it over (readings stored and the monitors called
in one transaction); customers answer by signed inbound SMS through the fake; the leader
jobs run through ``care_jobs`` and ``sweep_tickets``; messages leave through the sender.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from forewarn.config import parse_config
from forewarn.notifier.webhooks import TWILIO_INBOUND_PATH
from forewarn.service import Forewarn, build, care_jobs, sweep_tickets, web_app
from forewarn.store.engine import make_engine
from forewarn.store.models import Notification, Reading, Ticket
from forewarn.store.schema import upgrade
from forewarn.telemetry.sample import STATUS_METRIC, Sample
from tests.fakes.providers import TWILIO_SIGNATURE_HEADER, FakeTwilio
from tests.notifier.conftest import TWILIO_SENDER

PUBLIC = "https://forewarn.example.com"
OPS_TOKEN = "ops-token-0123456789abcdef"
LINK_SECRET = "link-secret-0123456789abcdef"
ANA_TOKEN = "ana-phone-token-0123456789"
MARTA = "+351912000101"
SOMCHAI = "+66812345678"
ANA = "+351913000201"

FLEET = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101", email: marta@example.com,
     locale: en, timezone: Europe/Lisbon, channels: [sms, email]}
  - {id: c-somchai, name: Somchai Wong, phone: "+66812345678", locale: th,
     timezone: Asia/Bangkok, channels: [sms]}
sites:
  - {id: s-cascais, name: Silva home, customer: c-silva, region: lisbon-west,
     timezone: Europe/Lisbon, location: {lat: 38.697, lon: -9.421}}
  - {id: s-bangna, name: Bang Na house, customer: c-somchai, region: bangkok-east,
     timezone: Asia/Bangkok}
devices:
  - {id: inv-101, site: s-cascais, model: SunPeak 5K, kind: inverter}
  - {id: inv-301, site: s-bangna, model: SunPeak 5K, kind: inverter}
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter], regions: [lisbon-west, bangkok-east], home: {lat: 38.710, lon: -9.300}}
monitors:
  - id: inverter-overheating
    kind: threshold
    metric: temperature
    above: 80
    clear: 70
    severity: minor
    suggested_fix: Check the cooling fan.
    self_service:
      answer_within: 2h
      settle_within: 30m
      steps:
        en: Switch the inverter off, rinse the air filter behind the front grille,
          let it dry and switch it on again.
        pt: Desligue o inversor, lave o filtro de ar atrás da grelha da frente,
          deixe secar e volte a ligar.
        zh-Hans: 关闭逆变器，冲洗前格栅后面的空气滤网，晾干后重新开机。
        zh-Hant: 關閉逆變器，沖洗前格柵後方的空氣濾網，晾乾後重新開機。
        th: ปิดอินเวอร์เตอร์ ล้างแผ่นกรองอากาศหลังตะแกรงด้านหน้า รอให้แห้งแล้วเปิดใหม่
  - id: inverter-faults
    kind: fault_code
    codes:
      E021: {severity: critical, description: grid isolation fault}
ticketing:
  escalation:
    supervisor: {name: Sara Supervisor, phone: "+351913000999", email: sara@example.com}
web:
  public_url: https://forewarn.example.com
"""

START = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


@dataclass
class Clock:
    at: datetime

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@dataclass
class Desk:
    """One running forewarn and the ways in: telemetry, SMS, console, jobs, sender."""

    app: Forewarn
    web: TestClient
    twilio: FakeTwilio
    clock: Clock
    asgi: FastAPI

    # -- telemetry ----------------------------------------------------------------------

    def readings(self, device: str, metric: str, value: float, minutes: int = 1) -> None:
        """``device`` reports ``value`` every minute for ``minutes`` minutes."""
        for _ in range(minutes):
            at = self.clock.now()
            self._ingest(Sample(device, metric, at, received_at=at, value=value))
            self.clock.advance(minutes=1)

    def fault(self, device: str, code: str) -> None:
        at = self.clock.now()
        self._ingest(Sample(device, STATUS_METRIC, at, received_at=at, code=code))

    def _ingest(self, sample: Sample) -> None:
        with self.app.sessions.begin() as session:
            session.add(
                Reading(
                    device_id=sample.device_id,
                    metric=sample.metric,
                    ts=sample.ts,
                    value=sample.value,
                    code=sample.code,
                    received_at=sample.received_at,
                )
            )
            self.app.monitors.on_samples(session, [sample], self.clock.now())

    # -- the customer -------------------------------------------------------------------

    def sms(self, from_: str, body: str) -> str:
        """A signed inbound SMS through the Twilio webhook; returns our TwiML reply."""
        url = PUBLIC + TWILIO_INBOUND_PATH
        params, signature = self.twilio.inbound_sms(url, from_, TWILIO_SENDER, body)
        answer = self.web.post(
            TWILIO_INBOUND_PATH,
            content="&".join(f"{k}={quote_plus(v)}" for k, v in params.items()),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                TWILIO_SIGNATURE_HEADER: signature,
            },
        )
        assert answer.status_code == 200, answer.text
        return str(answer.text)

    def texts_to(self, number: str) -> list[str]:
        """Every SMS the fake Twilio accepted for ``number``, oldest first."""
        return [m.body for m in self.twilio.messages if m.to == number]

    # -- forewarn's own work -----------------------------------------------------------

    def run_jobs(self) -> None:
        """One run of the leader jobs that matter here, then the senders."""
        sweep_tickets(self.app)
        for job in care_jobs(self.app).values():
            job()
        self.send()

    def send(self) -> None:
        self.app.sender.drain()

    def console(self, path: str) -> Any:
        return self.web.get(path, headers={"Authorization": f"Bearer {OPS_TOKEN}"})

    def ticket(self) -> Ticket:
        with self.app.sessions() as session:
            tickets = list(session.scalars(select(Ticket).order_by(Ticket.id)))
        assert len(tickets) == 1, tickets
        return tickets[0]

    def outbox(self, event: str) -> list[Notification]:
        with self.app.sessions() as session:
            query = select(Notification).where(Notification.event == event)
            return list(session.scalars(query.order_by(Notification.id)))


def desk(database_url: str, twilio: FakeTwilio, extra: str = "") -> Iterator[Desk]:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    text = (
        FLEET
        + "notifications:\n  merge_window: 0s\n  human_response_sla: 1h\n"
        # A short code (100 SMS a second): the stepping clock never waits out a 1/s pace.
        + f'  twilio: {{from_number: "{TWILIO_SENDER}", api_url: "{twilio.base_url}",'
        + " number_type: short_code, burst: 100}\n"
        + extra
    )
    config = parse_config(
        text,
        {
            "FOREWARN_DATABASE_URL": database_url,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "FOREWARN_API_TOKEN": OPS_TOKEN,
            "FOREWARN_LINK_SECRET": LINK_SECRET,
        },
    )
    clock = Clock(START)
    app = build(config, clock=clock, console=io.StringIO())
    asgi = web_app(app, {"FOREWARN_TOKENS": f"technician:t-ana:{ANA_TOKEN}"})
    try:
        with TestClient(asgi) as client:
            yield Desk(app, client, twilio, clock, asgi)
    finally:
        app.sender.close()
        app.engine.dispose()
