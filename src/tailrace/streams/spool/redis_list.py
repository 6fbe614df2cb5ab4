"""A spool in a plain Redis list of JSON messages, as the Kafka workers' API and backfill
worker share one (``fallback:message_queue``): each entry is a message's JSON body, pushed
on the right, taken from the left, all for one topic.

Both ways work: what their API pushed is drained here (``tailrace spool drain``), and what a
tailrace producer spools here their backfill worker can read. The list holds bodies only:
a message's key and headers are not kept (said once in the log when a message had some), so
drained messages have no key, as theirs had; consumers dedup by the id in the body
(``--message-id body:message_id``). Order is the list's: a message that failed in the
producer's queue after later ones were spooled lands behind them (the sorted spools keep the
send order; this one cannot, being theirs too).

Draining takes the list's lease (`REDIS_LEASE_S`, renewed) so that two tailrace drainers do
not send one entry twice; their writers push as they please. Their own backfill worker takes
no lease: stop it before draining here. An entry leaves the list only once the broker
acknowledged it (their worker popped it first, and lost it when it died mid-send).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit, urlunsplit

import orjson

from ...errors import ConfigurationError
from . import Spooled, SpoolError
from .redis import _RELEASE, _RENEW, REDIS_LEASE_S

log = logging.getLogger("tailrace.streams.spool")

SCHEMES = {"redis+list": "redis", "rediss+list": "rediss"}
# Removes acknowledged entries: each named by its index from the head and its value, checked
# still there (else left, and said), then all of them at once.
_REMOVE = """
local tomb = ARGV[1]
local gone = 0
for i = 2, #ARGV, 2 do
  local index = tonumber(ARGV[i])
  if redis.call('lindex', KEYS[1], index) == ARGV[i + 1] then
    redis.call('lset', KEYS[1], index, tomb)
    gone = gone + 1
  end
end
redis.call('lrem', KEYS[1], 0, tomb)
return gone
"""


def split_url(url: str) -> tuple[str, str | None]:
    """The redis-py URL of ``redis+list://host:port/db?topic=T`` and its topic."""
    parts = urlsplit(url)
    scheme = SCHEMES.get(parts.scheme)
    if scheme is None:
        raise ConfigurationError(f"{url!r} is not a redis+list:// URL")
    query = parse_qs(parts.query)
    topic = query.pop("topic", [None])[-1]
    rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
    return urlunsplit((scheme, parts.netloc, parts.path, rest, "")), topic


class RedisListSpool:
    def __init__(self, url: str, name: str) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigurationError(f"the Redis spool needs redis-py: {exc}") from exc
        plain, topic = split_url(url)
        if not topic:
            raise ConfigurationError(
                f"redis list {name}: its entries do not say their topic; add ?topic=… to the "
                "spool URL (message_processing for the Kafka workers' fallback queue)"
            )
        self.topic = topic
        self.name = name
        self.key = name  # the list itself: fallback:message_queue
        self._redis = redis.Redis.from_url(plain)
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._lease_key = f"tailrace:spool-owner:{name}"
        self._token = uuid.uuid4().hex
        self._lease_ms = int(REDIS_LEASE_S * 1000)
        self._owned = False
        self._lost: str | None = None
        self._closing = threading.Event()
        self._renewer: threading.Thread | None = None
        self._said_dropped = False

    # -- the drainer's lease ------------------------------------------------------------------

    def _own(self) -> bool:
        """Hold the lease to drain (taken on first need); False while another drainer has it."""
        if self._lost is not None:
            raise SpoolError(f"redis list {self.key}: {self._lost}")
        if self._owned:
            return True
        if not self._redis.set(self._lease_key, self._token, nx=True, px=self._lease_ms):
            return False
        self._owned = True
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew, name="spool-lease", daemon=True)
            self._renewer.start()
        return True

    def _renew(self) -> None:
        while not self._closing.wait(REDIS_LEASE_S / 3):
            if not self._owned:
                continue
            try:
                renewed: Any = self._redis.eval(
                    _RENEW, 1, self._lease_key, self._token, self._lease_ms
                )
            except self._errors as exc:
                log.warning("cannot renew the lease of %s: %s", self.key, exc)
                continue
            if not renewed:
                self._lost = "its lease expired and another drainer may own it"
                log.error("redis list %s lost: %s", self.key, self._lost)
                return

    # -- the spool ----------------------------------------------------------------------------

    def append(self, entries: Sequence[Spooled]) -> None:
        if not entries:
            return
        values = [self._body(entry) for entry in entries]
        try:
            self._redis.rpush(self.key, *values)
        except self._errors as exc:
            raise SpoolError(f"redis list {self.key}: {exc}") from exc

    def _body(self, entry: Spooled) -> bytes:
        if entry.topic != self.topic:
            raise SpoolError(
                f"redis list {self.key} holds messages of {self.topic} only, not {entry.topic}"
            )
        try:
            body = orjson.loads(entry.value or b"")
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise SpoolError(f"redis list {self.key} holds JSON objects only (their shape)")
        own = [name for name, _ in entry.headers if name != "message_id"]
        if (entry.key is not None or own) and not self._said_dropped:
            self._said_dropped = True
            log.warning(
                "redis list %s keeps message bodies only: keys and headers are dropped", self.key
            )
        return entry.value or b""

    def head(self, limit: int) -> list[Spooled]:
        if not self._own():
            return []
        try:
            values = cast(list[bytes], self._redis.lrange(self.key, 0, limit - 1))
        except self._errors as exc:
            raise SpoolError(f"redis list {self.key}: {exc}") from exc
        if not values:  # drained: another drainer may take over later
            self._release()
        return [Spooled(index, self.topic, None, value, []) for index, value in enumerate(values)]

    def remove(self, entries: Sequence[Spooled]) -> None:
        if not entries or not self._own():
            return
        arguments: list[Any] = [f"tailrace-removed-{uuid.uuid4().hex}"]
        for entry in sorted(entries, key=lambda e: e.seq):
            arguments += [entry.seq, entry.value or b""]
        try:
            gone = int(cast(Any, self._redis.eval(_REMOVE, 1, self.key, *arguments)))
        except self._errors as exc:
            raise SpoolError(f"redis list {self.key}: {exc}") from exc
        if gone != len(entries):
            log.warning(
                "redis list %s changed at its head while draining (another backfill worker?): "
                "%d of %d sent entries were no longer in place",
                self.key,
                len(entries) - gone,
                len(entries),
            )

    def last_seq(self) -> int | None:
        return None  # a list has no sequence numbers: the producer starts from the clock

    def count(self) -> int:
        try:
            return int(self._redis.llen(self.key))
        except self._errors as exc:
            raise SpoolError(f"redis list {self.key}: {exc}") from exc

    def _release(self) -> None:
        if not self._owned:
            return
        self._owned = False
        try:
            self._redis.eval(_RELEASE, 1, self._lease_key, self._token)
        except self._errors as exc:  # it expires by itself
            log.warning("cannot release the lease of %s: %s", self.key, exc)

    def close(self) -> None:
        self._closing.set()
        if self._renewer is not None:
            self._renewer.join()
        self._release()
        self._redis.close()
