"""Messages held back by a failure, per key, so that other keys go on.

A lane is one key of one partition (a keyless message is a lane of its own: Kafka promises
no order for it). When a message fails and has attempts left, its lane waits: the message
is retried after its backoff, and later messages of the lane queue behind it in order.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator

from .message import Message

Lane = tuple[int, bytes | int]


def lane_of(message: Message) -> Lane:
    raw = message.raw
    key = raw.key()
    return (raw.partition() or 0, key if key is not None else raw.offset() or 0)


class Waiting:
    def __init__(self) -> None:
        self._lanes: dict[Lane, deque[Message]] = {}
        self._due: list[tuple[float, int, Lane]] = []  # (when, sequence, lane) heap
        self._when: dict[Lane, float] = {}  # a lane's current retry time (heap may hold old)
        self._sequence = 0
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def blocked(self, lane: Lane) -> bool:
        return lane in self._lanes

    def queue(self, lane: Lane, message: Message) -> None:
        """`message` waits behind the failed head of its (blocked) lane."""
        self._lanes[lane].append(message)
        self.count += 1

    def retry_later(self, lane: Lane, message: Message, at: float) -> None:
        """`message` failed and goes (back) to the head of its lane, retried at `at`."""
        waiting = self._lanes.get(lane)
        if waiting is None:
            self._lanes[lane] = deque([message])
            self.count += 1
        elif waiting[0] is not message:
            waiting.appendleft(message)
            self.count += 1
        self._when[lane] = at
        self._sequence += 1
        heapq.heappush(self._due, (at, self._sequence, lane))

    def next_due(self) -> float | None:
        return self._due[0][0] if self._due else None

    def due(self, now: float) -> Iterator[Lane]:
        """Lanes whose retry time has come (popped: `retry_later` schedules again)."""
        while self._due and self._due[0][0] <= now:
            at, _, lane = heapq.heappop(self._due)
            if self._when.get(lane) == at:
                yield lane

    def lane(self, lane: Lane) -> deque[Message]:
        return self._lanes[lane]

    def pop(self, lane: Lane) -> Message:
        """Take the head of `lane` (it is done); the lane ends when empty."""
        waiting = self._lanes[lane]
        message = waiting.popleft()
        self.count -= 1
        if not waiting:
            del self._lanes[lane]
            del self._when[lane]
        return message

    def ids(self) -> set[str]:
        """The dedup ids of every waiting message."""
        return {m.id for lane in self._lanes.values() for m in lane if m.id is not None}

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the lanes of `partitions` (revoked: their new owner redelivers them)."""
        gone = set(partitions)
        for lane in [lane for lane in self._lanes if lane[0] in gone]:
            self.count -= len(self._lanes.pop(lane))
            self._when.pop(lane, None)
