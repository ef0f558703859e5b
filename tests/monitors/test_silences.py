"""Maintenance windows in a site's IANA zone cover their local hours, DST or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from forewarn.config.schema import SilenceSettings
from forewarn.monitors.silences import Silence

LISBON = ZoneInfo("Europe/Lisbon")
NEW_YORK = ZoneInfo("America/New_York")


def nightly(**extra: object) -> Silence:
    return Silence.from_settings(
        SilenceSettings.model_validate({"id": "nightly", "sites": ["s-1"], **extra})
    )


def silenced_minutes(silence: Silence, zone: ZoneInfo, start: datetime, hours: int) -> list[int]:
    moments = (start + timedelta(minutes=m) for m in range(hours * 60))
    return [m for m, at in enumerate(moments) if silence.active_at(at, zone)]


def test_a_nightly_window_covers_its_wall_clock_hours_on_the_night_clocks_spring_forward() -> None:
    # 2027-03-28: Lisbon goes from 01:00 WET to 02:00 WEST. 00:30-03:00 on the clock is
    # 00:30-02:00 UTC: ninety real minutes.
    minutes = silenced_minutes(
        nightly(hours="00:30-03:00"), LISBON, datetime(2027, 3, 27, 23, 0, tzinfo=UTC), 6
    )
    assert len(minutes) == 90
    assert (minutes[0], minutes[-1]) == (90, 179)  # 00:30 to 01:59 UTC


def test_a_nightly_window_covers_its_wall_clock_hours_on_the_night_clocks_fall_back() -> None:
    # 2026-10-25: Lisbon goes from 02:00 WEST back to 01:00 WET. 00:30 WEST is 23:30 UTC,
    # 03:00 WET is 03:00 UTC: three and a half real hours.
    minutes = silenced_minutes(
        nightly(hours="00:30-03:00"), LISBON, datetime(2026, 10, 24, 22, 0, tzinfo=UTC), 7
    )
    assert len(minutes) == 210
    assert (minutes[0], minutes[-1]) == (90, 299)


def test_a_weekly_window_starts_on_its_local_weekday_in_the_sites_zone() -> None:
    window = nightly(days=["sat"], hours="22:00-02:00")
    saturday_night = datetime(2026, 11, 7, 22, 30, tzinfo=NEW_YORK)

    assert window.active_at(saturday_night, NEW_YORK)
    assert window.active_at(saturday_night + timedelta(hours=3), NEW_YORK)  # Sunday 01:30
    assert not window.active_at(saturday_night + timedelta(hours=4), NEW_YORK)
    assert not window.active_at(saturday_night - timedelta(days=1), NEW_YORK)


def test_a_one_off_window_in_local_time_ends_at_the_local_end() -> None:
    window = nightly(starts="2026-11-04T08:00", ends="2026-11-04T12:00")

    assert not window.active_at(datetime(2026, 11, 4, 7, 59, tzinfo=LISBON), LISBON)
    assert window.active_at(datetime(2026, 11, 4, 8, 0, tzinfo=LISBON), LISBON)
    assert not window.active_at(datetime(2026, 11, 4, 12, 0, tzinfo=LISBON), LISBON)
    assert window.active_at(datetime(2026, 11, 4, 11, 0, tzinfo=UTC), LISBON)
