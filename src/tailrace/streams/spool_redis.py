"""A spool in a Redis sorted set: score = sequence number, member = number + record.

Sequence numbers stay below 2**53, so a score (a double) holds them exactly. Durability is
the server's: with ``appendfsync always`` an append survives a crash; with the default
(``everysec``) the last second may not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from ..errors import ConfigurationError
from .spool import Spooled, SpoolError, decode, encode

_SEQ_BYTES = 8


def _member(entry: Spooled) -> bytes:
    return entry.seq.to_bytes(_SEQ_BYTES, "big") + encode(entry)


class RedisSpool:
    def __init__(self, url: str, name: str) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigurationError(f"the Redis spool needs redis-py: {exc}") from exc
        self.name = name
        self.key = f"tailrace:spool:{name}"
        self._redis = redis.Redis.from_url(url)
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)

    def append(self, entries: Sequence[Spooled]) -> None:
        if entries:
            try:
                self._redis.zadd(self.key, {_member(e): e.seq for e in entries})
            except self._errors as exc:
                raise SpoolError(f"redis spool {self.name}: {exc}") from exc

    def head(self, limit: int) -> list[Spooled]:
        try:
            members = cast(list[bytes], self._redis.zrange(self.key, 0, limit - 1))
        except self._errors as exc:
            raise SpoolError(f"redis spool {self.name}: {exc}") from exc
        return [decode(int.from_bytes(m[:_SEQ_BYTES], "big"), m[_SEQ_BYTES:]) for m in members]

    def remove(self, entries: Sequence[Spooled]) -> None:
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
        return self._redis.zcard(self.key)

    def close(self) -> None:
        self._redis.close()
