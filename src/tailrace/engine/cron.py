"""Cron expressions: five fields (minute hour day month weekday) or six with seconds first,
the ``@daily``-style aliases, evaluated by `cronsim` (the evaluator Healthchecks.io runs).

What users of Vixie cron expect holds: ranges that end on 7 (``5-7``: Friday to Sunday),
``L`` for the last day of the month, names of months and days, and a day matching when either
the day of month or the day of week does if both are restricted.

Each schedule has a time zone (UTC by default). Its ticks follow wall-clock time there, as
cronie does across daylight-saving changes: a time skipped in spring (02:30 on the day clocks
jump to 03:00) fires once, at the jump; a time that happens twice in autumn fires once, the
first time. Ticks are returned in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

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
# cronsim's error messages name the field ("Bad minute"): its position in six fields
_FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronExpressionError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None


@dataclass(frozen=True)
class Cron:
    expression: str
    timezone: str = "UTC"
    _text: str = field(default="", repr=False, compare=False)  # the fields, aliases expanded
    _zone: tzinfo = field(default=UTC, repr=False, compare=False)

    @classmethod
    def parse(cls, expression: str, timezone: str | None = None) -> Cron:
        """Check ``expression`` (and ``timezone``, an IANA name) now, so that a bad schedule
        fails where it is declared, never at its first tick."""
        text = _ALIASES.get(expression.strip().lower(), expression.strip())
        fields = text.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise CronExpressionError(
                f"cron expression {expression!r} has {len(text.split())} fields; "
                "expected 5 or 6 (seconds first)"
            )
        zone_name = timezone or "UTC"
        zone = _zone(zone_name)
        # five fields stay five: cronsim keeps the daylight-saving rules above for those only
        # (six-field expressions run on the clock as it is, like their seconds)
        given = " ".join(text.split())
        try:
            CronSim(given, datetime.now(zone))
        except CronSimError as exc:
            raise CronExpressionError(_explain(expression, fields, exc)) from None
        return cls(expression, zone_name, given, zone)

    def next_after(self, after: datetime) -> datetime:
        """The first tick strictly after ``after`` (a timezone-aware datetime), in UTC."""
        return self._ticks(after).__next__()

    def ticks_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Ticks t with start < t <= end, in UTC."""
        ticks = []
        for tick in self._ticks(start):
            if tick > end:
                break
            ticks.append(tick)
        return ticks

    def _ticks(self, after: datetime) -> _Ticks:
        if after.tzinfo is None:
            raise CronExpressionError(f"{after.isoformat()} has no time zone")
        return _Ticks(self, after)


class _Ticks:
    def __init__(self, cron: Cron, after: datetime) -> None:
        self._cron = cron
        self._sim = CronSim(cron._text, after.astimezone(cron._zone))

    def __iter__(self) -> _Ticks:
        return self

    def __next__(self) -> datetime:
        try:
            return next(self._sim).astimezone(UTC)
        except StopIteration:
            raise CronExpressionError(
                f"cron expression {self._cron.expression!r} never fires"
            ) from None


def _explain(expression: str, fields: list[str], exc: CronSimError) -> str:
    message = str(exc)
    if message.lower().endswith("day-of-month") and fields[4] != "*":
        try:  # the day is fine in some month: none of the chosen months has it
            CronSim(" ".join([*fields[:4], "*", fields[5]]), datetime.now(UTC))
        except CronSimError:
            pass
        else:
            return (
                f"cron expression {expression!r} never fires: no month in {fields[4]!r} "
                f"has day {fields[3]!r}"
            )
    for index, name in enumerate(_FIELDS):
        if message.lower().endswith(name):
            return (
                f"cron expression {expression!r}: bad {name} field {fields[index]!r} "
                "(numbers, names, '*', lists, ranges and steps; 0 and 7 are Sunday)"
            )
    return f"cron expression {expression!r}: {message}"
