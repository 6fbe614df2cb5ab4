"""Mirroring published outbox events to a Redis pub/sub channel, for live listeners.

Pub/sub keeps nothing: a listener that is not subscribed misses events, and a mirror that
fails is logged, never retried; the topic is the record. Each message is a JSON object:
``{"id", "topic", "key", "payload"}``, the payload as text when it is UTF-8 and as base64
(with ``"payload_encoding": "base64"``) when it is not.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from ...extras import require
from .publish import Claimed

log = logging.getLogger("tailrace.outbox.mirror")


def envelope(event: Claimed) -> bytes:
    body: dict[str, Any] = {"id": event.id, "topic": event.topic, "key": event.key}
    try:
        body["payload"] = event.payload.decode()
    except UnicodeDecodeError:
        body["payload"] = base64.b64encode(event.payload).decode()
        body["payload_encoding"] = "base64"
    return orjson.dumps(body)


class RedisMirror:
    """Publishes each event to `channel` on the Redis at `url`, one round trip per batch."""

    def __init__(self, url: str, channel: str) -> None:
        redis: Any = require("redis", "redis")
        self.channel = channel
        self._redis = redis.Redis.from_url(url)
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)

    def publish(self, events: Sequence[Claimed]) -> None:
        if not events:
            return
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            pipe.publish(self.channel, envelope(event))
        try:
            pipe.execute()
        except self._errors as exc:  # best effort by design (module doc)
            log.warning("redis mirror to %s failed: %s", self.channel, exc)

    def close(self) -> None:
        self._redis.close()
