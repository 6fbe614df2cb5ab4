"""The consumer's marks in flight (`Marker`) and look-ups a slice ahead (`Lookups`), with a
dedup store whose calls the test holds and releases."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from tailrace.streams.consumer_lookup import Lookups
from tailrace.streams.consumer_marking import Marker
from tailrace.streams.dedup import NoDedup
from tests.waiting import wait_until


class HeldStore(NoDedup):
    """Marks that wait for the test to release them, one event per mark, by first id."""

    def __init__(self) -> None:
        self.release: dict[str, threading.Event] = {}
        self.marked: list[str] = []
        self.fail: set[str] = set()

    def mark(self, ids: Sequence[str]) -> None:
        assert self.release[ids[0]].wait(10)
        if ids[0] in self.fail:
            raise RuntimeError(f"mark of {ids[0]} failed")
        self.marked.extend(ids)

    def seen(self, ids: Sequence[str]) -> set[str]:
        return {i for i in ids if i in self.marked}


def test_points_come_back_in_order_once_every_earlier_mark_is_done() -> None:
    store = HeldStore()
    for name in "abcd":
        store.release[name] = threading.Event()
    marker = Marker(store, depth=3)
    try:
        assert marker.submit(["a"], {0: 10}) == {}
        assert marker.submit(["b"], {0: 20}) == {}
        assert marker.submit(["c"], {0: 30, 1: 5}) == {}
        assert [ids for ids in marker.in_flight] == [["a"], ["b"], ["c"]]
        store.release["b"].set()
        store.release["c"].set()
        wait_until(lambda: {"b", "c"} <= set(store.marked), 10, "b and c marked")
        # b and c are durable, a is not: nothing may be committed yet.
        assert marker.ready() == {}
        # Three in flight: the next submit waits for the oldest, then hands every point
        # that is done, in order (the latest wins per partition).
        store.release["a"].set()
        store.release["d"].set()
        assert marker.submit(["d"], {0: 40}) == {0: 30, 1: 5}
        assert marker.wait() == {0: 40}
        assert list(marker.in_flight) == []
    finally:
        marker.close()


def test_a_failed_mark_commits_nothing_after_it() -> None:
    store = HeldStore()
    for name in "ab":
        store.release[name] = threading.Event()
    store.fail.add("a")
    marker = Marker(store, depth=2)
    try:
        marker.submit(["a"], {0: 10})
        marker.submit(["b"], {0: 20})
        store.release["b"].set()
        store.release["a"].set()
        with pytest.raises(RuntimeError, match="mark of a failed"):
            marker.wait()
        assert list(marker.in_flight) == []  # b has ended too, its points dropped
        assert store.marked == ["b"]
    finally:
        marker.close()


def test_lookups_count_the_ids_of_marks_in_flight() -> None:
    store = HeldStore()
    store.marked = ["m1", "m7"]
    lookups = Lookups(store)
    ids: list[str | None] = [f"m{i}" for i in range(10)]
    ids[4] = None
    try:
        slices = list(lookups.slices(ids, 4, lambda: [["m2"], ["m9", "x"]]))
    finally:
        lookups.close()
    assert slices == [(0, 4, {"m1", "m2"}), (4, 8, {"m7"}), (8, 10, {"m9"})]
