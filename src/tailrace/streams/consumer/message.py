"""What a handler sees (`Message`) and what it may return (`Output`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import orjson
from confluent_kafka import Message as KafkaMessage

from ...errors import ConfigurationError

Headers = list[tuple[str, bytes]]


class IdSource(Enum):
    """Where a message's dedup id comes from.

    The choice is explicit because it decides what "the same message" means: a producer
    that resends keeps its header and key, while the offset names one copy in the log.
    """

    AUTO = "auto"
    """The ``message_id`` (or ``messageId``) header, else the offset. Not the key: keys
    name entities (a chat, a user) with many messages, which would all count as one."""
    HEADER = "header"
    """Only the header: a message without one is not deduplicated."""
    KEY = "key"
    """The Kafka key: right when each key is one message (not an entity's stream)."""
    OFFSET = "offset"
    """``topic:partition:offset``: covers redelivery after a crash, not producer resends."""
    BODY = "body"
    """A field of the JSON body (``body:message_id``; ``a.b`` for a nested one), where
    producers that set no header carry their id; a message without it (or not JSON) is
    deduplicated by its offset."""


def parse_id_source(text: str) -> tuple[IdSource, str | None]:
    """``auto``, ``header``, ``key``, ``offset`` or ``body:FIELD`` as (source, field)."""
    name, sep, field = text.partition(":")
    try:
        source = IdSource(name.strip().lower())
    except ValueError:
        source = None
    if source is None or (source is IdSource.BODY) != bool(sep and field.strip()):
        raise ConfigurationError(
            f"message id {text!r}: expected auto, header, key, offset or body:FIELD "
            "(body:message_id, body:meta.id)"
        )
    return source, field.strip() if source is IdSource.BODY else None


def body_field(value: bytes | None, path: str) -> str | None:
    """The field `path` (dotted) of the JSON object `value` as text, or None."""
    if not value:
        return None
    try:
        found: object = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    for part in path.split("."):
        if not isinstance(found, dict):
            return None
        found = found.get(part)
    if found is None or found == "":
        return None
    if isinstance(found, str):
        return found
    if isinstance(found, bool | int | float):
        return orjson.dumps(found).decode()
    return orjson.dumps(found, option=orjson.OPT_SORT_KEYS).decode()


MESSAGE_ID_HEADER = "message_id"  # what tailrace's producers write; consumers read either
ID_HEADERS = frozenset({MESSAGE_ID_HEADER, "messageId"})


def header_pairs(raw: KafkaMessage) -> Headers:
    """The headers of a consumed record as (name, bytes) pairs, in order."""
    headers = raw.headers()
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [
        (name, value.encode() if isinstance(value, str) else value or b"") for name, value in pairs
    ]


def message_id(raw: KafkaMessage, source: IdSource, field: str | None = None) -> str | None:
    """The dedup id of `raw` by `source` (`field`: the body's, for `IdSource.BODY`), or None
    when it has none. Bytes that are not UTF-8 show as ``\\xff`` escapes: an id is text in
    every dedup store."""
    if source is IdSource.BODY:
        found = body_field(raw.value(), field or "message_id")
        return found if found is not None else f"{raw.topic()}:{raw.partition()}:{raw.offset()}"
    if source is IdSource.AUTO or source is IdSource.HEADER:
        headers = raw.headers()
        if headers:
            # A consumed record's headers are a list of (str, bytes) pairs: walked as they
            # are, since this runs for every message.
            pairs = headers.items() if isinstance(headers, dict) else headers
            for name, value in pairs:
                if name in ID_HEADERS and value:
                    if isinstance(value, bytes):
                        return value.decode("utf-8", "backslashreplace")
                    return value
        if source is IdSource.HEADER:
            return None
    if source is IdSource.KEY:
        key = raw.key()
        return key.decode("utf-8", "backslashreplace") if key else None
    return f"{raw.topic()}:{raw.partition()}:{raw.offset()}"


def message_ids(
    records: list[KafkaMessage], source: IdSource, field: str | None = None
) -> list[str | None]:
    """`message_id` of each record, in order: the same, inlined for a batch (it runs for
    every consumed message when a dedup store is on)."""
    if source is not IdSource.AUTO:
        return [message_id(record, source, field) for record in records]
    names = ID_HEADERS
    ids: list[str | None] = []
    append = ids.append
    for record in records:
        headers = record.headers()
        if headers:
            # A consumed record's headers are a list of (str, bytes) pairs.
            pairs = headers.items() if isinstance(headers, dict) else headers
            for name, value in pairs:
                if name in names and value:
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "backslashreplace")
                    append(value)
                    break
            else:
                append(f"{record.topic()}:{record.partition()}:{record.offset()}")
        else:
            append(f"{record.topic()}:{record.partition()}:{record.offset()}")
    return ids


class _Unset:
    """The id of a message not computed yet (None is a valid id: the message has none)."""


UNSET = _Unset()


class Message:
    """One consumed message: the Kafka record and the id it is deduplicated by.

    A thin view over the client's record (read lazily: most handlers use a field or two).
    Without a dedup store the consumer never needs the id, so it is only worked out (by
    `source`) if the handler asks for it.
    """

    __slots__ = ("_field", "_id", "_source", "attempt", "raw")

    def __init__(
        self,
        raw: KafkaMessage,
        id: str | _Unset | None,
        source: IdSource = IdSource.AUTO,
        field: str | None = None,
    ) -> None:
        self.raw = raw
        self._id = id
        self._source = source
        self._field = field
        self.attempt = 1  # 1 for the first call of the handler, 2 for the first retry…

    @property
    def id(self) -> str | None:
        found = self._id
        if isinstance(found, _Unset):
            found = self._id = message_id(self.raw, self._source, self._field)
        return found

    @property
    def topic(self) -> str:
        return self.raw.topic() or ""

    @property
    def partition(self) -> int:
        return self.raw.partition() or 0

    @property
    def offset(self) -> int:
        return self.raw.offset() or 0

    @property
    def key(self) -> bytes | None:
        return self.raw.key()

    @property
    def value(self) -> bytes | None:
        return self.raw.value()

    @property
    def headers(self) -> Headers:
        return header_pairs(self.raw)

    def header(self, name: str) -> bytes | None:
        """The last header called `name`, or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found

    def __repr__(self) -> str:
        return f"Message({self.topic}[{self.partition}]@{self.offset}, id={self.id!r})"


@dataclass(frozen=True, slots=True)
class Output:
    """A message a handler asks to produce once its input is handled.

    `topic` None sends it to each of the consumer's default routes (``--route-to``).
    """

    value: bytes | None
    key: bytes | str | None = None
    headers: Headers | None = None
    topic: str | None = None
