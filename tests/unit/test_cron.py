from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tailrace import App
from tailrace.engine.cron import Cron
from tailrace.errors import CronExpressionError


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", "2026-11-23 10:00:30", "2026-11-23 10:01:00"),
        ("*/15 * * * *", "2026-11-23 10:16:00", "2026-11-23 10:30:00"),
        ("0 2 * * *", "2026-11-23 02:00:00", "2026-11-24 02:00:00"),
        ("@hourly", "2026-12-31 23:59:59", "2027-01-01 00:00:00"),
        ("0 0 29 2 *", "2026-03-01 00:00:00", "2028-02-29 00:00:00"),
        ("30 9 * * mon-fri", "2026-11-27 10:00:00", "2026-11-30 09:30:00"),  # Fri -> Mon
        ("0 0 1 * sun", "2026-11-23 00:00:00", "2026-11-29 00:00:00"),  # day OR weekday
        ("*/2 * * * * *", "2026-11-23 10:00:01", "2026-11-23 10:00:02"),  # seconds first
        ("0 0 * jan,jul *", "2026-02-01 00:00:00", "2026-07-01 00:00:00"),
        ("0 12 * * 7", "2026-11-23 00:00:00", "2026-11-29 12:00:00"),  # 7 is Sunday too
        ("0 0 * * 5-7", "2026-11-23 00:00:00", "2026-11-27 00:00:00"),  # Fri to Sun
        ("0 0 * * 5-7", "2026-11-28 00:00:00", "2026-11-29 00:00:00"),  # ...Sat -> Sun
        ("0 0 * * 5-7", "2026-11-29 00:00:00", "2026-12-04 00:00:00"),  # ...Sun -> Fri
        ("0 0 L * *", "2026-02-01 00:00:00", "2026-02-28 00:00:00"),  # last day of the month
    ],
)
def test_next_tick(expression: str, after: str, expected: str) -> None:
    assert Cron.parse(expression).next_after(at(after)) == at(expected)


def test_ticks_between_is_half_open() -> None:
    ticks = Cron.parse("*/10 * * * * *").ticks_between(
        at("2026-01-01 00:00:00"), at("2026-01-01 00:00:30")
    )
    assert [t.second for t in ticks] == [10, 20, 30]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * *", "has 3 fields"),
        ("61 * * * *", "bad minute field '61'"),
        ("*/0 * * * *", "bad minute field '\\*/0'"),
        ("5-1 * * * *", "bad minute field '5-1'"),
        ("x * * * *", "bad minute field 'x'"),
        ("0 25 * * *", "bad hour field '25'"),
        ("0 0 * * 8", "bad day-of-week field '8'"),
        ("0 0 31 2 *", "never fires: no month in '2' has day '31'"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(CronExpressionError, match=message):
        Cron.parse(expression).next_after(at("2026-01-01 00:00:00"))


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Berlin"))


def test_a_schedule_follows_its_time_zone_across_daylight_saving() -> None:
    daily = Cron.parse("30 2 * * *", "Europe/Berlin")
    # spring: 02:30 does not exist on 29 March 2026 (02:00 -> 03:00): it fires once, at 03:00
    spring = daily.ticks_between(berlin("2026-03-27 12:00"), berlin("2026-03-31 00:00"))
    assert [t.astimezone(ZoneInfo("Europe/Berlin")).isoformat() for t in spring] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    # autumn: 02:30 happens twice on 25 October 2026: it fires once, the first time
    autumn = daily.ticks_between(berlin("2026-10-24 12:00"), berlin("2026-10-27 00:00"))
    assert [t.isoformat() for t in autumn] == [
        "2026-10-25T00:30:00+00:00",
        "2026-10-26T01:30:00+00:00",
    ]
    assert all(t.tzinfo is UTC for t in autumn)
    # the same expression in UTC ignores Berlin's clocks
    utc = Cron.parse("30 2 * * *").ticks_between(
        at("2026-03-28 12:00:00"), at("2026-03-30 12:00:00")
    )
    assert [t.isoformat() for t in utc] == [
        "2026-03-29T02:30:00+00:00",
        "2026-03-30T02:30:00+00:00",
    ]


def test_an_unknown_time_zone_is_refused_where_the_schedule_is_declared() -> None:
    with pytest.raises(CronExpressionError, match="unknown time zone 'Mars/Olympus'"):
        Cron.parse("0 0 * * *", "Mars/Olympus")


def test_periodic_takes_a_time_zone(tmp_path: Path) -> None:
    with App(f"sqlite:///{tmp_path}/t.db") as app:

        @app.task
        def report() -> None: ...

        schedule = app.periodic("0 9 * * mon-fri", "report", timezone="America/New_York")
        assert schedule.cron.timezone == "America/New_York"
        # 09:00 in New York on Monday 30 November 2026 is 14:00 UTC (EST)
        assert schedule.cron.next_after(at("2026-11-28 00:00:00")) == at("2026-11-30 14:00:00")
        with pytest.raises(CronExpressionError, match="unknown time zone"):
            app.periodic("0 9 * * *", "report", name="other", timezone="Nowhere/Else")
