"""A small, realistic store for the console tests, the browser test and the screenshot.

Three customers around Lisbon and Porto, solar inverters and a gateway, three technicians.
At ``now`` (03:01 UTC): inverter ``inv-lis-002`` has a firing DC-insulation fault; ticket
#1 is assigned to Rui Almeida (Marta was further away, Tiago lacks the skill) and the
work order and customer notice went out. One device is silent, one never reported, an
order delay case waits for the dispatcher, and an earlier repair is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from forewarn.store.models import (
    Alert,
    AlertEvent,
    Customer,
    DeliveryAttempt,
    Device,
    Notification,
    Quarantine,
    Site,
    Technician,
    Ticket,
    TicketEvent,
)

CUSTOMER_PHONE = "+351912345678"
CUSTOMER_EMAIL = "joana.silva@example.com"
BAD_NUMBER = "+351934567890"


@dataclass(frozen=True)
class Scenario:
    now: datetime
    firing_alert_id: int
    resolved_alert_id: int
    ticket_id: int
    delay_ticket_id: int
    closed_ticket_id: int


def seed(session: Session, now: datetime) -> Scenario:
    """Insert the scenario and commit; returns the ids the tests look at."""

    def minutes(n: float) -> datetime:
        """``n`` minutes before now."""
        return now - timedelta(minutes=n)

    session.add_all(
        [
            Customer(
                id="cust-joana",
                name="Joana Silva",
                phone=CUSTOMER_PHONE,
                email=CUSTOMER_EMAIL,
                locale="pt",
                timezone="Europe/Lisbon",
                channels=["sms", "email"],
            ),
            Customer(id="cust-pedro", name="Pedro Santos", phone="+351923456789", email=None),
            Customer(id="cust-ana", name="Ana Costa", phone=BAD_NUMBER, email="ana@example.org"),
        ]
    )
    session.flush()
    session.add_all(
        [
            Site(
                id="site-lis-alfama",
                name="Alfama rooftop",
                customer_id="cust-joana",
                address="Rua dos Remédios 12, Lisboa",
                region="lisboa",
                timezone="Europe/Lisbon",
                lat=38.7115,
                lon=-9.1300,
            ),
            Site(
                id="site-lis-belem",
                name="Belém villa",
                customer_id="cust-pedro",
                region="lisboa",
                timezone="Europe/Lisbon",
                lat=38.6979,
                lon=-9.2065,
            ),
            Site(
                id="site-opo-foz",
                name="Foz house",
                customer_id="cust-ana",
                region="porto",
                timezone="Europe/Lisbon",
                lat=41.1496,
                lon=-8.6756,
            ),
        ]
    )
    session.flush()
    registered = now - timedelta(days=90)
    devices = [
        ("inv-lis-001", "site-lis-alfama", "SunWave 5K", "inverter", minutes(1)),
        ("inv-lis-002", "site-lis-alfama", "SunWave 5K", "inverter", minutes(0.5)),
        ("inv-lis-003", "site-lis-belem", "SunWave 8K", "inverter", minutes(2)),
        ("gw-lis-belem", "site-lis-belem", "EdgeBox 2", "gateway", minutes(1)),
        ("inv-opo-001", "site-opo-foz", "SunWave 8K", "inverter", minutes(130)),
        ("inv-opo-002", "site-opo-foz", "SunWave 8K", "inverter", None),
    ]
    session.add_all(
        Device(
            id=i,
            site_id=s,
            model=m,
            kind=k,
            serial=f"SN-{i}",
            registered_at=registered,
            last_seen_at=seen,
            last_received_at=seen,
        )
        for i, s, m, k, seen in devices
    )
    session.add_all(
        [
            Technician(
                id="tech-rui",
                name="Rui Almeida",
                phone="+351961111111",
                email="rui@fieldteam.example",
                skills=["inverter"],
                regions=["lisboa"],
                lat=38.7369,
                lon=-9.1427,
                channels=["sms", "email"],
            ),
            Technician(
                id="tech-marta",
                name="Marta Sousa",
                phone="+351962222222",
                skills=["inverter", "gateway"],
                regions=["lisboa", "porto"],
                lat=38.7930,
                lon=-9.3800,
            ),
            Technician(
                id="tech-tiago",
                name="Tiago Ferreira",
                phone="+351963333333",
                skills=["gateway"],
                regions=["lisboa"],
                lat=38.72,
                lon=-9.14,
            ),
        ]
    )
    session.flush()

    ticket = Ticket(
        kind="repair",
        fingerprint="fault-codes:inv-lis-002",
        open_fingerprint="fault-codes:inv-lis-002",
        status="assigned",
        priority="critical",
        title="Inverter fault F21 at Alfama rooftop",
        device_id="inv-lis-002",
        site_id="site-lis-alfama",
        customer_id="cust-joana",
        technician_id="tech-rui",
        fault="fault F21: DC insulation resistance too low",
        suggested_fix="Check the DC string insulation; look for water in the junction box.",
        dispatch={
            "chosen": "tech-rui",
            "reason": "has the skill 'inverter'; serves region 'lisboa'; 0 open job(s); "
            "3.0 km from home base",
            "candidates": [
                {"technician": "tech-rui", "score": 0.06, "open_jobs": 0, "distance_km": 3.0},
                {"technician": "tech-marta", "score": 3.65, "open_jobs": 1, "distance_km": 24.5},
            ],
            "excluded": {"tech-tiago": "lacks skill 'inverter'"},
        },
        opened_at=minutes(2),
        updated_at=minutes(1.5),
        sla_due_at=now + timedelta(hours=4) - timedelta(minutes=2),
    )
    delay = Ticket(
        kind="delay",
        fingerprint="shipment-late:order-7731",
        open_fingerprint="shipment-late:order-7731",
        status="open",
        priority="minor",
        title="Order 7731 not handed to carrier within 48 h",
        customer_id="cust-pedro",
        dispatch={
            "chosen": None,
            "reason": "delay cases go to the dispatcher queue",
            "candidates": [],
            "excluded": {},
        },
        opened_at=minutes(300),
        updated_at=minutes(300),
        sla_due_at=minutes(60),
    )
    closed = Ticket(
        kind="repair",
        fingerprint="threshold:inv-lis-003",
        open_fingerprint=None,
        status="closed",
        priority="major",
        title="Low output at Belém villa",
        device_id="inv-lis-003",
        site_id="site-lis-belem",
        customer_id="cust-pedro",
        technician_id="tech-marta",
        opened_at=now - timedelta(days=3),
        updated_at=now - timedelta(days=2),
        sla_due_at=now - timedelta(days=2),
        closed_at=now - timedelta(days=2),
    )
    session.add_all([ticket, delay, closed])
    session.flush()

    firing = Alert(
        fingerprint="fault-codes:inv-lis-002",
        open_fingerprint="fault-codes:inv-lis-002",
        rule_id="fault-codes",
        rule_version="r7",
        subject="inv-lis-002",
        state="firing",
        severity="critical",
        summary="fault F21: DC insulation resistance too low",
        suggested_fix="Check the DC string insulation.",
        pending_since=minutes(2),
        firing_since=minutes(2),
        last_value=None,
        evidence={"code": "F21", "ts": minutes(2).isoformat()},
        ticket_id=ticket.id,
    )
    pending = Alert(
        fingerprint="low-output:inv-lis-001",
        open_fingerprint="low-output:inv-lis-001",
        rule_id="low-output",
        rule_version="r3",
        subject="inv-lis-001",
        state="pending",
        severity="minor",
        summary="power_w 180 below 250",
        pending_since=minutes(4),
        last_value=180.0,
        evidence={
            "metric": "power_w",
            "value": 180.0,
            "levels": {"above": None, "below": 250.0, "clear": 300.0},
            "for_seconds": 900.0,
        },
    )
    silent = Alert(
        fingerprint="offline:inv-opo-001",
        open_fingerprint="offline:inv-opo-001",
        rule_id="offline",
        rule_version="r1",
        subject="inv-opo-001",
        state="firing",
        severity="major",
        summary=f"no data since {minutes(130):%Y-%m-%d %H:%M:%S} UTC",
        pending_since=minutes(100),
        firing_since=minutes(100),
        evidence={"last_seen": minutes(130).isoformat(), "after_seconds": 1800.0},
    )
    resolved = Alert(
        fingerprint="low-output:inv-lis-003",
        open_fingerprint=None,
        rule_id="low-output",
        rule_version="r3",
        subject="inv-lis-003",
        state="resolved",
        severity="major",
        summary="power_w 320 cleared (clear level 300)",
        pending_since=now - timedelta(days=3),
        firing_since=now - timedelta(days=3),
        resolved_at=now - timedelta(days=2),
        last_value=320.0,
        ticket_id=closed.id,
    )
    session.add_all([firing, pending, silent, resolved])
    session.flush()
    session.add_all(
        [
            AlertEvent(
                alert_id=firing.id,
                at=minutes(2),
                from_state=None,
                to_state="firing",
                rule_version="r7",
                evidence={
                    "code": "F21",
                    "ts": minutes(2).isoformat(),
                    "summary": "fault F21: DC insulation resistance too low",
                    "decided_at": minutes(2).isoformat(),
                },
            ),
            AlertEvent(
                alert_id=pending.id,
                at=minutes(4),
                from_state=None,
                to_state="pending",
                rule_version="r3",
                evidence={
                    "metric": "power_w",
                    "value": 180.0,
                    "levels": {"above": None, "below": 250.0, "clear": 300.0},
                    "summary": "power_w 180 below 250",
                },
            ),
            AlertEvent(
                alert_id=resolved.id,
                at=now - timedelta(days=3),
                from_state=None,
                to_state="firing",
                rule_version="r3",
                evidence={"metric": "power_w", "value": 120.0},
            ),
            AlertEvent(
                alert_id=resolved.id,
                at=now - timedelta(days=2),
                from_state="firing",
                to_state="resolved",
                rule_version="r3",
                evidence={"metric": "power_w", "value": 320.0},
            ),
        ]
    )
    session.add_all(
        [
            TicketEvent(
                ticket_id=ticket.id,
                at=minutes(2),
                kind="opened",
                actor="monitor",
                to_status="open",
                detail={"alert": firing.id},
            ),
            TicketEvent(
                ticket_id=ticket.id,
                at=minutes(1.9),
                kind="assigned",
                actor="dispatch",
                from_status="open",
                to_status="assigned",
                detail={"technician": "tech-rui"},
            ),
            TicketEvent(
                ticket_id=delay.id,
                at=minutes(300),
                kind="queued_for_dispatcher",
                actor="dispatch",
                to_status="open",
                detail={},
            ),
        ]
    )

    def notification(n: int, **fields: object) -> Notification:
        values: dict[str, object] = {
            "dedupe_key": f"n-{n}",
            "locale": "en",
            "context": {},
            "attempts": 1,
            "next_attempt_at": minutes(1.8),
            "created_at": minutes(1.8),
        }
        values.update(fields)
        return Notification(**values)

    session.add_all(
        [
            notification(
                1,
                ticket_id=ticket.id,
                event="work_order",
                recipient_role="technician",
                recipient_id="tech-rui",
                channel="sms",
                address="+351961111111",
                status="delivered",
                provider="twilio",
                provider_message_id="SM0001",
                body="WO #1 CRITICAL inv-lis-002 Alfama rooftop: fault F21. Reply ACK.",
                critical=True,
                sent_at=minutes(1.7),
                delivered_at=minutes(1.5),
            ),
            notification(
                2,
                ticket_id=ticket.id,
                event="fault_notice",
                recipient_role="customer",
                recipient_id="cust-joana",
                channel="sms",
                address=CUSTOMER_PHONE,
                status="delivered",
                provider="twilio",
                provider_message_id="SM0002",
                locale="pt",
                body="Olá Joana, detetámos uma falha no seu inversor. O técnico Rui visita-o hoje.",
                sent_at=minutes(1.7),
                delivered_at=minutes(1.4),
            ),
            notification(
                3,
                ticket_id=ticket.id,
                event="fault_notice",
                recipient_role="customer",
                recipient_id="cust-joana",
                channel="email",
                address=CUSTOMER_EMAIL,
                status="sent",
                provider="sendgrid",
                provider_message_id="sg-0003",
                locale="pt",
                subject="O seu inversor precisa de atenção",
                body="Olá Joana,\nDetetámos uma falha no inversor inv-lis-002.",
                sent_at=minutes(1.6),
            ),
            notification(
                4,
                ticket_id=delay.id,
                event="delay_notice",
                recipient_role="customer",
                recipient_id="cust-ana",
                channel="sms",
                address=BAD_NUMBER,
                status="failed",
                provider="twilio",
                attempts=1,
                last_error=f"The 'To' number {BAD_NUMBER} is not a valid phone number",
                created_at=minutes(290),
                next_attempt_at=minutes(290),
            ),
            notification(
                5,
                ticket_id=None,
                event="digest",
                recipient_role="dispatcher",
                recipient_id="ops",
                channel="email",
                address="dispatch@forewarn.example",
                status="queued",
                attempts=0,
                created_at=minutes(0.2),
                next_attempt_at=minutes(0.2),
            ),
            notification(
                6,
                ticket_id=closed.id,
                event="all_clear",
                recipient_role="customer",
                recipient_id="cust-pedro",
                channel="sms",
                address="+351923456789",
                status="delivered",
                provider="twilio",
                created_at=now - timedelta(days=2),
                next_attempt_at=now - timedelta(days=2),
            ),
        ]
    )
    session.flush()
    session.add(
        DeliveryAttempt(
            notification_id=1,
            at=minutes(1.7),
            provider="twilio",
            outcome="sent",
            provider_message_id="SM0001",
        )
    )
    session.add_all(
        [
            Quarantine(
                received_at=minutes(10),
                source="mqtt",
                origin="devices/inv-lis-001/telemetry",
                payload=b'{"ts": 1790000000, "power_w": NaN}',
                reason="power_w: not a finite number",
            ),
            Quarantine(
                received_at=minutes(20),
                source="mqtt",
                origin="devices/unknown-77/telemetry",
                payload=b"\xff\xfe<script>alert(1)</script>\n" + b"x" * 2000,
                reason="unknown device 'unknown-77'",
            ),
            Quarantine(
                received_at=now - timedelta(days=2),
                source="feed:orders",
                origin="orders-2026-11-23.csv:14",
                payload=b"7731,,2026-11-30",
                reason="customer: is required",
            ),
        ]
    )
    session.commit()
    return Scenario(
        now=now,
        firing_alert_id=firing.id,
        resolved_alert_id=resolved.id,
        ticket_id=ticket.id,
        delay_ticket_id=delay.id,
        closed_ticket_id=closed.id,
    )
