"""Contact policy, pure: when a message may go out in the recipient's own time zone, and
how many proactive messages a customer may get in a day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from forewarn.config.schema import HoursWindow
from forewarn.hours import RecurringHours


def deliver_after(
    now: datetime, timezone: str, quiet: HoursWindow | None, *, critical: bool
) -> datetime:
    """The earliest time a message may be sent: ``now``, or the end of quiet hours.

    Critical messages ignore quiet hours. The end of the window is computed on the local
    wall clock of the recipient's zone, so it stays right across DST changes (a quiet
    window ending at 07:00 ends at 07:00 local time on the day the clocks move).
    """
    if quiet is None or critical:
        return now
    window = RecurringHours.of(quiet.start, quiet.end, timezone).window_at(now)
    return now if window is None else window[1]


def within_budget(
    sent_at: Sequence[datetime], now: datetime, limit: int, window: timedelta = timedelta(days=1)
) -> datetime:
    """The earliest time one more proactive message fits the contact budget.

    ``sent_at`` are the times the recipient's earlier proactive messages went out. At most
    ``limit`` may fall in any rolling ``window``: with room left that is ``now``, else the
    moment the oldest counted message leaves the window.
    """
    recent = sorted(t for t in sent_at if now - window < t <= now)
    if len(recent) < limit:
        return now
    return recent[len(recent) - limit] + window
