"""The consumer's checkpoints in flight (`Marker`) and ids taken a slice ahead (`Lookups`),
with a dedup store whose calls the test holds and releases."""

from __future__ import annotations

import threading

import pytest

from tailrace.streams.consumer.lookup import Lookups
from tailrace.streams.consumer.marking import Marker
from tailrace.streams.dedup import NoDedup, Taken
from tests.waiting import wait_until


class HeldStore(NoDedup):
    """Done writes that wait for the test to release them, one event per write, named by
    partition 0's offset; ids taken are remembered."""

    def __init__(self) -> None:
        self.release: dict[int, threading.Event] = {}
        self.written: list[dict[int, int]] = []
        self.fail: set[int] = set()
        self.taken: list[tuple[str, Taken]] = []
        self.known: set[str] = set()

    def done(self, topic: str, points: dict[int, int]) -> None:
        name = points[0]
        assert self.release[name].wait(10)
        if name in self.fail:
            raise RuntimeError(f"write of {name} failed")
        self.written.append(points)

    def take(self, topic: str, taken: Taken) -> set[str]:
        self.taken.append((topic, list(taken)))
        return {mid for mid, _, _ in taken if mid in self.known}


def test_points_come_back_in_order_once_every_earlier_write_is_done() -> None:
    store = HeldStore()
    for name in (10, 20, 30, 40):
        store.release[name] = threading.Event()
    marker = Marker(store, "t", depth=3)
    try:
        assert marker.submit({0: 10}) == {}
        assert marker.submit({0: 20}) == {}
        assert marker.submit({0: 30, 1: 5}) == {}
        assert marker.in_flight == 3
        store.release[20].set()
        store.release[30].set()
        wait_until(lambda: len(store.written) == 2, 10, "20 and 30 written")
        # 20 and 30 are durable, 10 is not: nothing may be committed yet.
        assert marker.ready() == {}
        # Three in flight: the next submit waits for the oldest, then hands every point
        # that is done, in order (the latest wins per partition).
        store.release[10].set()
        store.release[40].set()
        assert marker.submit({0: 40}) == {0: 30, 1: 5}
        assert marker.wait() == {0: 40}
        assert marker.in_flight == 0
    finally:
        marker.close()


def test_a_failed_write_commits_nothing_after_it() -> None:
    store = HeldStore()
    for name in (10, 20):
        store.release[name] = threading.Event()
    store.fail.add(10)
    marker = Marker(store, "t", depth=2)
    try:
        marker.submit({0: 10})
        marker.submit({0: 20})
        store.release[20].set()
        store.release[10].set()
        with pytest.raises(RuntimeError, match="write of 10 failed"):
            marker.wait()
        assert marker.in_flight == 0  # 20 has ended too, its points dropped
        assert store.written == [{0: 20}]
    finally:
        marker.close()


class _Raw:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class _Message:
    def __init__(self, partition: int, offset: int) -> None:
        self.raw = _Raw(partition, offset)


def test_lookups_take_each_id_once_with_its_first_position() -> None:
    store = HeldStore()
    store.known = {"m1", "m7"}
    lookups = Lookups(store, "t")
    ids: list[str | None] = [f"m{i}" for i in range(10)]
    ids[4] = None
    ids[3] = "m2"  # repeated within the slice: taken by its first message
    ids[9] = "m0"  # repeated in a later slice: found there, never taken again
    messages = [_Message(i % 2, 100 + i) for i in range(10)]
    try:
        slices = list(lookups.slices(messages, ids, 4))  # type: ignore[arg-type]
    finally:
        lookups.close()
    assert slices == [(0, 4, {"m1"}), (4, 8, {"m7"}), (8, 10, {"m0"})]
    assert store.taken[0] == ("t", [("m0", 0, 100), ("m1", 1, 101), ("m2", 0, 102)])
    assert [mid for mid, _, _ in store.taken[1][1]] == ["m5", "m6", "m7"]
    assert store.taken[2] == ("t", [("m8", 0, 108)])


def test_slices_taken_side_by_side_leave_a_repeated_id_to_the_first() -> None:
    """Three slices in flight at once: the later copy of an id is never sent, so it cannot
    overtake the first in the store."""
    store = HeldStore()
    lookups = Lookups(store, "t", depth=3)
    ids: list[str | None] = ["a", "b", "c", "a", "d", "b"]
    messages = [_Message(0, i) for i in range(6)]
    try:
        slices = list(lookups.slices(messages, ids, 2))  # type: ignore[arg-type]
    finally:
        lookups.close()
    assert slices == [(0, 2, set()), (2, 4, {"a"}), (4, 6, {"b"})]
    sent = sorted(mid for _, taken in store.taken for mid, _, _ in taken)
    assert sent == ["a", "b", "c", "d"]
