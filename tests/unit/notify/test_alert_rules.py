"""Which changes are news, which are urgent, and when quiet hours end (Kyiv time, summer and winter)."""

from datetime import UTC, datetime, time

import pytest

from poi_notify.alerts.service import is_urgent, quiet_until, transition
from poi_shared.contracts import StatusCause


@pytest.mark.parametrize(
    ("old", "new", "news"),
    [
        ("closed", "open", "opened"),
        ("unknown", "open", "opened"),
        (None, "open", "opened"),
        ("full", "open", "places_again"),
        ("open", "closed", "closed"),
        ("open", "full", "full"),
        ("open", "open", None),
        ("open", "standby", None),
        ("open", "unknown", None),
    ],
)
def test_transitions(old: str | None, new: str, news: str | None) -> None:
    assert transition(old, new) == news


def test_urgency() -> None:
    assert is_urgent("closed", StatusCause.report) and is_urgent("full", StatusCause.report)
    assert is_urgent("opened", StatusCause.activation)
    assert not is_urgent("opened", StatusCause.report) and not is_urgent("places_again", StatusCause.report)
    assert is_urgent("low_fuel", StatusCause.report) and is_urgent("stale", StatusCause.stale)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (datetime(2026, 11, 26, 19, 59, tzinfo=UTC), None),  # 21:59 in Kyiv (UTC+2)
        (datetime(2026, 11, 26, 20, 0, tzinfo=UTC), datetime(2026, 11, 27, 5, 0, tzinfo=UTC)),
        (datetime(2026, 11, 27, 3, 0, tzinfo=UTC), datetime(2026, 11, 27, 5, 0, tzinfo=UTC)),
        (datetime(2026, 11, 27, 5, 0, tzinfo=UTC), None),
        (datetime(2026, 7, 1, 20, 30, tzinfo=UTC), datetime(2026, 7, 2, 4, 0, tzinfo=UTC)),  # 23:30, UTC+3
    ],
)
def test_quiet_hours_in_kyiv_time(now: datetime, until: datetime | None) -> None:
    assert quiet_until(now, time(22, 0), time(7, 0)) == until


def test_no_quiet_hours_when_start_equals_end_and_daytime_quiet_hours() -> None:
    assert quiet_until(datetime(2026, 11, 26, 21, 0, tzinfo=UTC), time(0, 0), time(0, 0)) is None
    assert quiet_until(datetime(2026, 11, 26, 12, 0, tzinfo=UTC), time(13, 0), time(15, 0)) == datetime(
        2026, 11, 26, 13, 0, tzinfo=UTC
    )
