"""A spool in a Redis sorted set: score = sequence number, member = number + record.

Sequence numbers stay below 2**53, so a score (a double) holds them exactly. Durability is
the server's: with ``appendfsync always`` an append survives a crash; with the default
(``everysec``) the last second may not.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any, cast

from ...extras import require
from . import SpoolBusy, Spooled, SpoolError, decode, encode

log = logging.getLogger("tailrace.streams.spool")

_SEQ_BYTES = 8
REDIS_LEASE_S = 15.0  # a dead owner's lease lasts this long; renewed every third of it
# Renew only our own lease (compare and expire in one step).
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _member(entry: Spooled) -> bytes:
    return entry.seq.to_bytes(_SEQ_BYTES, "big") + encode(entry)


class RedisSpool:
    def __init__(self, url: str, name: str) -> None:
        redis: Any = require("redis", "redis")
        self.name = name
        self.key = f"tailrace:spool:{name}"
        self._redis = redis.Redis.from_url(url)
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._lease_key = f"{self.key}:owner"
        self._token = uuid.uuid4().hex
        self._lease_ms = int(REDIS_LEASE_S * 1000)
        if not self._redis.set(self._lease_key, self._token, nx=True, px=self._lease_ms):
            self._redis.close()
            raise SpoolBusy(f"redis key {self.key}", name)
        self._lost: str | None = None
        self._closing = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="spool-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._closing.wait(REDIS_LEASE_S / 3):
            try:
                renewed: Any = self._redis.eval(
                    _RENEW, 1, self._lease_key, self._token, self._lease_ms
                )
            except self._errors as exc:
                log.warning("cannot renew the lease of spool %s: %s", self.name, exc)
                continue
            if not renewed:
                self._lost = "its lease expired and another process may own it"
                log.error("spool %s lost: %s", self.name, self._lost)
                return

    def _owned(self) -> None:
        if self._lost is not None:
            raise SpoolError(f"redis spool {self.name}: {self._lost}")

    def append(self, entries: Sequence[Spooled]) -> None:
        self._owned()
        if entries:
            try:
                self._redis.zadd(self.key, {_member(e): e.seq for e in entries})
            except self._errors as exc:
                raise SpoolError(f"redis spool {self.name}: {exc}") from exc

    def head(self, limit: int) -> list[Spooled]:
        self._owned()
        try:
            members = cast(list[bytes], self._redis.zrange(self.key, 0, limit - 1))
        except self._errors as exc:
            raise SpoolError(f"redis spool {self.name}: {exc}") from exc
        return [decode(int.from_bytes(m[:_SEQ_BYTES], "big"), m[_SEQ_BYTES:]) for m in members]

    def remove(self, entries: Sequence[Spooled]) -> None:
        self._owned()
        if entries:
            try:
                self._redis.zrem(self.key, *(_member(e) for e in entries))
            except self._errors as exc:
                raise SpoolError(f"redis spool {self.name}: {exc}") from exc

    def last_seq(self) -> int | None:
        found = cast(
            list[tuple[bytes, float]], self._redis.zrange(self.key, -1, -1, withscores=True)
        )
        return int(found[0][1]) if found else None

    def count(self) -> int:
        return int(self._redis.zcard(self.key))

    def close(self) -> None:
        self._closing.set()
        self._renewer.join()
        try:
            self._redis.eval(_RELEASE, 1, self._lease_key, self._token)
        except self._errors as exc:  # it expires by itself
            log.warning("cannot release the lease of spool %s: %s", self.name, exc)
        self._redis.close()
