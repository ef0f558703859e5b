"""A representative context for each template, used by ``forewarn check`` to render every
template before a customer is waiting, and by the docs. It has the shape that
:func:`forewarn.ticketing.tickets` produces for a real ticket event."""

from __future__ import annotations

from typing import Any

from forewarn.notifier.conversations import example_conversation_context
from forewarn.notifier.maintenance import example_maintenance_context
from forewarn.ticketing.delays import example_delay_context
from forewarn.ticketing.notices import example_ticket_context
from forewarn.ticketing.self_service import example_self_service_context


def example_context(recipient_timezone: str = "Europe/Lisbon") -> dict[str, Any]:
    return {
        **_notifier_examples(),
        "ticket": {
            "id": 1042,
            "priority": "P2",
            "fault": "temperature 81.5 > 75 for 10m",
            "suggested_fix": "Check the cooling fan and clear the air intake.",
            "sla_due": "2026-11-26T09:00:00+00:00",
            "opened": "2026-11-25T09:00:00+00:00",
        },
        "alert": {
            "rule": "inverter-overheating",
            "rule_version": "0123456789ab",
            "severity": "major",
            "summary": "temperature 81.5 > 75 for 10m",
            "evidence": {"metric": "temperature", "value": 81.5},
        },
        "device": {"id": "inv-101", "model": "SunPeak 5K", "kind": "inverter", "serial": "X1"},
        "site": {
            "id": "s-1",
            "name": "Silva home",
            "address": "Rua das Flores 12, Cascais",
            "region": "lisbon-west",
            "timezone": "Europe/Lisbon",
        },
        "customer": {"name": "Marta Silva", "phone": "+351912000101", "email": "m@example.com"},
        "technician": {"id": "t-ana", "name": "Ana Costa"},
        "recent_readings": [
            {
                "metric": "temperature",
                "value": 81.5,
                "code": None,
                "ts": "2026-11-25T08:59:00+00:00",
            },
            {"metric": "status", "value": None, "code": "OK", "ts": "2026-11-25T08:59:00+00:00"},
        ],
        "recipient": {"name": "Ana Costa", "timezone": recipient_timezone},
        **example_ticket_context(),
        **example_delay_context(),
        **example_self_service_context(),
        **example_conversation_context(),
        **example_maintenance_context(),
    }


def _notifier_examples() -> dict[str, Any]:
    """Keys of the notifier's own events: merged messages, ops updates, inbound replies."""
    return {
        "issues": [
            {
                "event": "fault_notice",
                "ticket": {"id": 1042},
                "device": {"id": "inv-101", "model": "SunPeak 5K", "kind": "inverter"},
                "site": {"id": "s-1", "name": "Silva home"},
                "technician": {"id": "t-ana", "name": "Ana Costa"},
            },
            {
                "event": "fault_notice",
                "ticket": {"id": 1043},
                "device": {"id": "bat-102", "model": "StoreX 10", "kind": "battery"},
                "site": {"id": "s-1", "name": "Silva home"},
                "technician": None,
            },
            {"event": "delay_notice", "orders": [{"id": "e481f51c", "case": 2210}]},
        ],
        "update": {"eta": "2026-11-26T14:00:00+00:00", "note": None},
        "task": {"id": 7, "due": "2026-11-25T11:00:00+00:00"},
        "score": 4,
    }
