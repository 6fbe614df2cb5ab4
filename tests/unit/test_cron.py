from __future__ import annotations

from datetime import UTC, datetime

import pytest

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
        ("61 * * * *", "out of range"),
        ("*/0 * * * *", "bad step"),
        ("5-1 * * * *", "empty range"),
        ("x * * * *", "bad value 'x'"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(CronExpressionError, match=message):
        Cron.parse(expression).next_after(at("2026-01-01 00:00:00"))
