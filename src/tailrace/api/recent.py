"""Answers computed in the last moment, shared by every request that asks meanwhile.

A job's status is read far more often (dashboards, scripts polling it) than it changes
(each worker writes at most 4 times a second). Keeping each answer for a quarter of a
second turns any number of concurrent readers into at most 4 database reads per second
per job, and requests that arrive while one read runs wait for it instead of starting
their own. Operations that change a job (cancel, resume) drop its entries at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

DEFAULT_TTL_S = 0.25
_PRUNE_AT = 1_000


class _OwnerGone(Exception):
    """The request computing an answer was cancelled (its client left) before it had one."""


class Recent:
    def __init__(self, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, asyncio.Future[bytes]]] = {}
        # forget() comes from the threads sync routes run on, get() from the event loop
        self._lock = threading.Lock()

    async def get(self, key: str, compute: Callable[[], bytes]) -> bytes:
        """The answer for `key`, from `compute` (run on a thread) at most once per TTL."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                future, owner = entry[1], False
            else:
                if len(self._entries) >= _PRUNE_AT:
                    self._prune(now)
                future = asyncio.get_running_loop().create_future()
                self._entries[key] = (now + self.ttl_s, future)
                owner = True
        if not owner:
            try:
                return await asyncio.shield(future)
            except _OwnerGone:
                return await self.get(key, compute)
        try:
            value = await run_in_threadpool(compute)
        except BaseException as exc:
            with self._lock:
                if self._entries.get(key, (0.0, None))[1] is future:
                    del self._entries[key]  # errors (a 404, a lost connection) are not kept
            gone = isinstance(exc, asyncio.CancelledError)
            future.set_exception(_OwnerGone() if gone else exc)
            future.exception()  # retrieved: no "never retrieved" warning if nobody waited
            raise
        future.set_result(value)
        return value

    def forget(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
