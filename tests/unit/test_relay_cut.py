"""A key's event that failed before goes alone: its later events are left for a later batch."""

from __future__ import annotations

from tailrace.streams.outbox.publish import Claimed
from tailrace.streams.outbox.relay import _cut_behind_retries


def _event(event_id: int, key: str | None, attempts: int = 0) -> Claimed:
    return Claimed(event_id, "t", key, b"%d" % event_id, None, attempts)


def test_a_batch_without_retries_is_sent_whole() -> None:
    batch = [_event(1, "a"), _event(2, "a"), _event(3, None)]
    assert _cut_behind_retries(batch) == batch


def test_the_later_events_of_a_retried_key_are_cut_the_others_kept() -> None:
    batch = [
        _event(1, "a"),
        _event(2, "b", attempts=2),
        _event(3, "a"),
        _event(4, "b"),
        _event(5, None, attempts=1),
        _event(6, None),
        _event(7, "b", attempts=1),
    ]
    assert [e.id for e in _cut_behind_retries(batch)] == [1, 2, 3, 5, 6]
