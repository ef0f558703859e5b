"""The messages docs/notifications.md shows for the visit-window and closure journeys,
rendered from the shipped templates (``python -m tests.notifier.visit_docs`` prints the
Markdown; tests/notifier/test_visit_docs.py keeps the document equal to the templates)."""

from __future__ import annotations

from typing import Any

from forewarn.notifier.examples import example_context
from forewarn.notifier.render import Renderer

LANGUAGES = ("en", "pt", "zh-Hans", "zh-Hant", "th")
LISBON_WINDOWS = [
    ("2026-12-02T08:00:00+00:00", "2026-12-02T10:00:00+00:00"),
    ("2026-12-02T10:00:00+00:00", "2026-12-02T12:00:00+00:00"),
]


def _context(**changes: Any) -> dict[str, Any]:
    context = example_context()
    context["technician"] = {"id": "t-ana", "name": "Ana Costa", "phone": "+351913000201"}
    context["recipient"] = {"name": "Marta Silva", "timezone": "Europe/Lisbon", "by_sms": True}
    context.update(changes)
    return context


def _proposal(change: str | None = None, previous: str | None = None) -> dict[str, Any]:
    return {
        "options": [
            {"n": n, "start": start, "end": end, "link": f"https://forewarn.example.com/visit/{n}"}
            for n, (start, end) in enumerate(LISBON_WINDOWS, start=1)
        ],
        "more": 3,
        "change": change,
        "previous_technician": previous,
    }


BOOKED = {"start": LISBON_WINDOWS[1][0], "end": LISBON_WINDOWS[1][1]}
SCENES: list[tuple[str, str, dict[str, Any]]] = [
    ("fault_notice", "The first notice, times to follow", _context(proposal=_proposal())),
    ("visit_proposal", "The windows offered", _context(proposal=_proposal())),
    ("visit_confirmed", "The reply to `2`: booked", _context(visit=BOOKED, proposal=None)),
    ("visit_reminder", "The evening before", _context(visit=BOOKED)),
    (
        "visit_confirmed",
        "Another technician keeps the booked window",
        _context(visit=BOOKED, proposal=_proposal("technician", "Rui Lopes") | {"options": []}),
    ),
    ("parts_ordered", "DONE PARTS: the part is on order", _context()),
    (
        "visit_proposal",
        "PARTSIN: the return visit",
        _context(proposal=_proposal("return_visit")),
    ),
    (
        "ticket_resolved",
        "NOFAULT: nothing was wrong",
        _context(ticket=example_context()["ticket"] | {"closure_code": "no_fault_found"}),
    ),
]
TECHNICIAN: list[tuple[str, str, dict[str, Any]]] = [
    ("visit_booked", "To the technician: the booked window", _context(visit=BOOKED)),
]


def rendered() -> list[tuple[str, str, str, str]]:
    """(event, title, locale, SMS body) for every scene and language."""
    renderer = Renderer()
    found = []
    for event, title, context in SCENES:
        for locale in LANGUAGES:
            body = renderer.render(event, "sms", locale, context).body
            found.append((event, title, locale, body))
    for event, title, context in TECHNICIAN:
        body = renderer.render(event, "sms", "en", context).body
        found.append((event, title, "en", body))
    return found


def markdown() -> str:
    lines: list[str] = []
    title = ""
    for event, scene, locale, body in rendered():
        if scene != title:
            title = scene
            lines += [
                "",
                f"**{scene}** (`{event}`, SMS)",
                "",
                "| language | message |",
                "|---|---|",
            ]
        cell = body.replace("|", "\\|")
        lines.append(f"| {locale} | {cell} |")
    return "\n".join(lines).strip() + "\n"


if __name__ == "__main__":
    print(markdown())
