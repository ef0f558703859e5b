"""Contact policy, pure: when a message may go out in the recipient's own time zone, and
how many proactive messages a customer may get in a day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from forewarn.config.schema import HoursWindow


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
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    if not quiet.contains(local.time()):
        return now
    end_day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        end_day += timedelta(days=1)  # the window crosses midnight: it ends tomorrow
    end_local = datetime.combine(end_day, quiet.end, tzinfo=zone)
    # A wall time that does not exist (spring forward) is normalised by the round trip.
    end = end_local.astimezone(UTC)
    return max(end, now)


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
