"""Cron expressions: five fields (minute hour day month weekday) or six with seconds first.

Times are UTC. Day-of-month and day-of-week follow Vixie cron: when both are restricted, a day
matches if either does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import CronExpressionError

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


def _parse_field(
    text: str, lo: int, hi: int, names: dict[str, int] | None = None
) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronExpressionError(f"bad step {step_text!r} in {text!r}")
            step = int(step_text)
        if part == "*":
            start, end = lo, hi
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, lo, hi, names, text), _value(b, lo, hi, names, text)
        else:
            start = _value(part, lo, hi, names, text)
            end = hi if step > 1 else start
        if start > end:
            raise CronExpressionError(f"empty range {part!r} in {text!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(token: str, lo: int, hi: int, names: dict[str, int] | None, field: str) -> int:
    key = token.lower()
    if names and key in names:
        return names[key]
    if not token.isdigit():
        raise CronExpressionError(f"bad value {token!r} in {field!r}")
    value = int(token)
    if names is _DAYS and value == 7:  # both 0 and 7 mean Sunday
        value = 0
    if not lo <= value <= hi:
        raise CronExpressionError(f"value {value} out of range {lo}-{hi} in {field!r}")
    return value


@dataclass(frozen=True)
class Cron:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        text = _ALIASES.get(expression.strip().lower(), expression.strip())
        fields = text.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise CronExpressionError(
                f"cron expression {expression!r} has {len(fields)} fields; expected 5 or 6"
            )
        sec, minute, hour, day, month, weekday = fields
        return cls(
            expression=expression,
            seconds=_parse_field(sec, 0, 59),
            minutes=_parse_field(minute, 0, 59),
            hours=_parse_field(hour, 0, 23),
            days=_parse_field(day, 1, 31),
            months=_parse_field(month, 1, 12, _MONTHS),
            weekdays=_parse_field(weekday, 0, 7, _DAYS),
            days_restricted=day != "*",
            weekdays_restricted=weekday != "*",
        )

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow
        return dom and dow

    def next_after(self, after: datetime) -> datetime:
        """The first tick strictly after ``after`` (a timezone-aware datetime)."""
        t = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        for _ in range(100_000):  # bounded: an impossible date (Feb 30) must not hang
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(
                    day=1
                )
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise CronExpressionError(f"cron expression {self.expression!r} never fires")

    def ticks_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Ticks t with start < t <= end."""
        ticks = []
        t = self.next_after(start)
        while t <= end:
            ticks.append(t)
            t = self.next_after(t)
        return ticks
