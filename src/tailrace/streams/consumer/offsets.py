"""Which offset each partition can commit: the lowest one not done yet, or one past the
highest delivered when all are done.

Messages are done in order except those held back by a retry (theirs, or an earlier one of
their key): only those are tracked one by one, so the common case costs nothing per message.
"""

from __future__ import annotations

from collections.abc import Iterable


class Offsets:
    def __init__(self) -> None:
        self._end: dict[int, int] = {}  # one past the highest offset delivered
        self._held: dict[int, set[int]] = {}
        self._committed: dict[int, int] = {}

    def delivered(self, partition: int, offset: int) -> None:
        """Offset `offset` of `partition` (and those before it) came from the broker."""
        if offset >= self._end.get(partition, -1):
            self._end[partition] = offset + 1

    def hold(self, partition: int, offset: int) -> None:
        """Not done yet: nothing from here on is committed until `release`."""
        self._held.setdefault(partition, set()).add(offset)

    def release(self, partition: int, offset: int) -> None:
        held = self._held.get(partition)
        if held is not None:
            held.discard(offset)

    def position(self, partition: int) -> int | None:
        """One past the highest offset delivered, or None before any."""
        return self._end.get(partition)

    def commit_points(self) -> dict[int, int]:
        """Partitions whose commit point moved since `committed`, with that point."""
        points: dict[int, int] = {}
        for partition, end in self._end.items():
            held = self._held.get(partition)
            point = min(held) if held else end
            if point > self._committed.get(partition, -1):
                points[partition] = point
        return points

    def points(self) -> dict[int, int]:
        """Every partition's commit point, moved or not."""
        points: dict[int, int] = {}
        for partition, end in self._end.items():
            held = self._held.get(partition)
            points[partition] = min(held) if held else end
        return points

    def committed(self, points: dict[int, int]) -> None:
        self._committed.update(points)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions no longer assigned: whoever gets them starts from their commit."""
        for partition in partitions:
            self._end.pop(partition, None)
            self._held.pop(partition, None)
            self._committed.pop(partition, None)
