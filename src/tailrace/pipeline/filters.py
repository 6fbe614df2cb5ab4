"""Event filters: stream ids, a date range and field predicates.

Everything that can be is computed once when the filter is built, so that checking an event
costs a set lookup, a time parse and two comparisons (only with a date range), and a tuple
index per predicate. Predicates read the values the decoder decoded for them: give the
decoder `EventFilter.paths` as its `extra_paths`; an event decoded without them is parsed
whole for its predicates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from tailrace.pipeline.errors import FieldPathError, FilterSpecError
from tailrace.pipeline.events import Event, FieldPath, lookup, parse_path

REASON_STREAM = "stream id not selected"
REASON_NO_TIME = "no event time"
REASON_BEFORE = "before date range"
REASON_AFTER = "after date range"


@dataclass(frozen=True, slots=True)
class Predicate:
    """``FIELD=VALUE``: the field's value, as a string, equals `value`."""

    path: FieldPath
    value: str
    reason: str

    @classmethod
    def parse(cls, spec: str) -> Predicate:
        field, sep, value = spec.partition("=")
        if not sep:
            raise FilterSpecError(f"predicate {spec!r} is not FIELD=VALUE")
        try:
            path = parse_path(field.strip())
        except FieldPathError as exc:
            raise FilterSpecError(f"predicate {spec!r}: {exc}") from exc
        return cls(path, value, f"{field.strip()} != {value!r}")

    def matches(self, data: dict[str, Any]) -> bool:
        """Whether a fully parsed event passes."""
        return field_text(lookup(data, self.path)) == self.value

    def matches_event(self, event: Event) -> bool:
        """Whether a decoded event passes (from its decoded values when it has them)."""
        return field_text(event.value(self.path)) == self.value


def field_text(value: Any) -> str | None:
    """A JSON value as a predicate compares it: strings as they are, numbers as written,
    ``true``/``false``/``null`` as in JSON, objects and arrays as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


#: Go's zero ``time.Time`` (``0001-01-01T00:00:00Z``): what Jitsu's Go clients send for a
#: date that is not set. As a bound it would keep nothing (or everything), so it means unset.
ZERO_TIME = datetime(1, 1, 1)


def is_zero_time(value: str | datetime | None) -> bool:
    """Whether a date bound is Go's zero time, however spelt (``Z``, ``+00:00``, a space for
    the ``T``, fractions of a second, any offset)."""
    if value is None:
        return False
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return False
    return value.replace(tzinfo=None) == ZERO_TIME


def date_bound(text: str | None) -> str | None:
    """A date bound as given, or None when it is unset: absent, blank, or Go's zero time."""
    if text is None or not text.strip() or is_zero_time(text):
        return None
    return text


def parse_time_bound(text: str) -> datetime:
    """An ISO 8601 bound given by a user; naive means UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise FilterSpecError(f"invalid date {text!r}: expected ISO 8601") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class EventFilter:
    """Decides for each event whether it passes; `check` returns None or the reason it did not.

    `stream_ids` None (or empty) selects every stream. The date range is inclusive at both
    ends; naive bounds mean UTC. When a range is set, an event without a parseable time is
    filtered out with `REASON_NO_TIME`.
    """

    def __init__(
        self,
        *,
        stream_ids: Iterable[str] | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        where: Iterable[str] = (),
    ) -> None:
        self.stream_ids = frozenset(stream_ids) if stream_ids else None
        self.date_from = _aware(date_from)
        self.date_to = _aware(date_to)
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise FilterSpecError(
                f"the date range is inverted: from {self.date_from.isoformat()} is after "
                f"to {self.date_to.isoformat()}, so every event would be filtered out; "
                "swap the two, or leave one unset"
            )
        self.predicates = tuple(Predicate.parse(spec) for spec in where)
        self.has_range = self.date_from is not None or self.date_to is not None
        self.paths: tuple[FieldPath, ...] = tuple(dict.fromkeys(p.path for p in self.predicates))
        """The field paths the predicates read: what the decoder's `extra_paths` should be."""
        self._checks = tuple((self.paths.index(p.path), p) for p in self.predicates)

    @property
    def selects_all(self) -> bool:
        """True when no condition is set: callers can skip the check entirely."""
        return self.stream_ids is None and not self.has_range and not self.predicates

    def check(self, event: Event) -> str | None:
        stream_ids = self.stream_ids
        if stream_ids is not None and event.stream_id not in stream_ids:
            return REASON_STREAM
        if self.has_range:
            moment = event.time
            if moment is None:
                return REASON_NO_TIME
            if self.date_from is not None and moment < self.date_from:
                return REASON_BEFORE
            if self.date_to is not None and moment > self.date_to:
                return REASON_AFTER
        predicates = self.predicates
        if predicates:
            if event.paths is self.paths:
                # Decoded for this filter: its values line up with our paths.
                values = event.values
                for index, predicate in self._checks:
                    if field_text(values[index]) != predicate.value:
                        return predicate.reason
            else:
                for predicate in predicates:
                    if not predicate.matches_event(event):
                        return predicate.reason
        return None
