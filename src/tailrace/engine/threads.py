"""Daemon threads for sync tasks.

A thread cannot be killed, so a sync task that overruns its timeout, or the shutdown grace,
runs on. It must not hold a thread the next job needs (so the pool replaces it), nor keep the
process alive at exit once its job was released (so the threads are daemons, which
``ThreadPoolExecutor``'s are not: the interpreter joins those at exit).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

_Item = tuple[Callable[[], Any], "asyncio.Future[Any]"] | None


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # timed out or cancelled meanwhile
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class TaskThreads:
    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, name: str) -> None:
        self._loop = loop
        self._name = name
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._size = 0
        self._surplus = 0  # replacements made for stuck threads: they leave once free again
        for _ in range(size):
            self._spawn()

    def _spawn(self) -> None:
        with self._lock:
            self._size += 1
            n = self._size
        threading.Thread(target=self._serve, name=f"{self._name}-{n}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            call, future = item
            try:
                value, ok = call(), True
            except BaseException as exc:
                value, ok = exc, False
            try:
                self._loop.call_soon_threadsafe(_settle, future, ok, value)
            except RuntimeError:  # the loop is closed: nobody waits for this job any more
                return
            with self._lock:
                if self._surplus > 0:
                    self._surplus -= 1
                    return

    def submit(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put((call, future))
        return future

    def abandon(self) -> None:
        """A thread is stuck in a task nobody waits for any more: add one in its place."""
        with self._lock:
            self._surplus += 1
        self._spawn()

    def shutdown(self) -> None:
        with self._lock:
            n = self._size
        for _ in range(n):
            self._queue.put(None)
