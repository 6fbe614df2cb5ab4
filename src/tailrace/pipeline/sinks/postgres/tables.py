"""Existing tables for the ``log`` mapping: reference 003's TypeORM ``log`` table and others.

A table that already exists without every column of the ``log`` mapping is adopted rather
than refused: each field goes to the column named like it in snake_case or camelCase
(``auth_user_id`` or ``authUserId``), written as that column's type wants it:

- ``level`` as it is in the input in a text column (pino's 30 stays ``'30'``, as TypeORM wrote
  it), as a number in a numeric one (``info`` becomes 30);
- timestamps in UTC, also into ``timestamp without time zone`` columns (which would drop an
  offset silently);
- a ``uuid`` id is a UUID derived from the record id (the same record, the same UUID: stored
  once); a text id is the record id; any other id type is refused;
- ``createdAt``/``updatedAt`` (or snake_case) are set to the time of the write;
- fields the table has no column for are left out, with a warning naming them (``rawData``
  keeps the whole event when the table has it); a column no field fills that is NOT NULL
  without a default is refused, naming it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from tailrace.pipeline.sinks.base import SinkError
from tailrace.pipeline.sinks.postgres.sink import (
    _FIELD,
    _INT4,
    _INT8,
    _NO_REQUEST,
    _NULL,
    _PINO_LEVELS,
    _boolean,
    _content_id,
    _dumps,
    _float,
    _integer,
    _jsonb,
    _Layout,
    _read_log,
    _strip_nul_escapes,
    _text,
    _timestamp,
)

log = logging.getLogger("tailrace.sink")

#: Each field of the ``log`` mapping, in `_LOG.copied` order, and the names its column may have.
FIELDS: tuple[tuple[str, ...], ...] = (
    ("id",),
    ("timestamp",),
    ("level",),
    ("method",),
    ("url",),
    ("query",),
    ("headers",),
    ("context",),
    ("message",),
    ("auth_user_id", "authUserId"),
    ("pid",),
    ("hostname",),
    ("remote_address", "remoteAddress"),
    ("remote_port", "remotePort"),
    ("processing_time_ms", "processingTimeMs"),
    ("cache_hit", "cacheHit"),
    ("document_count", "documentCount"),
    ("last_updated", "lastUpdated"),
    ("params",),
    ("raw_data", "rawData"),
)
_STAMPS = (("created_at", "createdAt"), ("updated_at", "updatedAt"))
_LEVEL_NUMBERS = {name.decode(): number for number, name in _PINO_LEVELS.items()}
_ID_NAMESPACE = uuid.UUID("6f1c1f4e-5b7a-4a53-9f2b-7461696c7261")  # tailrace's own
_INT2 = (-(2**15), 2**15 - 1)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # pg_type.typname: int4, varchar, timestamptz...
    required: bool  # NOT NULL without a default


def columns(conn: psycopg.Connection[Any], table: sql.Identifier) -> list[Column]:
    rows = conn.execute(
        "SELECT a.attname, t.typname, a.attnotnull AND NOT a.atthasdef AND a.attidentity = ''"
        " AND a.attgenerated = '' FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        (table.as_string(conn),),
    ).fetchall()
    return [Column(str(name), str(kind), bool(required)) for name, kind, required in rows]


def adopt_log_table(
    conn: psycopg.Connection[Any], table: sql.Identifier, standard: Sequence[str], name: str
) -> _Layout | None:
    """The layout for an existing table, or None when it has every column of `standard`
    (the ``log`` mapping's own, written as usual)."""
    found = {c.name: c for c in columns(conn, table)}
    if all(column in found for column in standard):
        return None
    chosen: list[tuple[int, Column]] = []
    missing: list[str] = []
    for index, names in enumerate(FIELDS):
        column = next((found[n] for n in names if n in found), None)
        if column is None:
            missing.append(names[-1])
        else:
            chosen.append((index, column))
    stamps = [found[n] for names in _STAMPS for n in names if n in found]
    used = {c.name for _, c in chosen} | {c.name for c in stamps}
    if "id" not in used:
        raise SinkError(f"{name}: the table has no id column for the record id")
    refused = [c.name for c in found.values() if c.required and c.name not in used]
    if refused:
        listed = ", ".join(f'"{c}"' for c in refused)
        raise SinkError(
            f"{name}: columns {listed} are NOT NULL without a default and no field of a log"
            " record fills them: give them a default (ALTER TABLE ... ALTER COLUMN ... SET"
            " DEFAULT ...) or allow NULL"
        )
    if missing:
        log.warning(
            "the table has no column for some fields: they are not stored",
            extra={"table": name, "fields": missing},
        )
    return _Layout(
        columns="",
        copied=tuple(c.name for _, c in chosen) + tuple(c.name for c in stamps),
        row=_row_builder(chosen, len(stamps), name),
        unique="id",
    )


def _row_builder(
    chosen: list[tuple[int, Column]], stamps: int, name: str
) -> Callable[[bytes, str | None], bytes]:
    formats = [(index, _format(index, column, name)) for index, column in chosen]

    def row(raw: bytes, message_id: str | None) -> bytes:
        if b"\\" in raw and b"\\u0000" in raw:
            raw = _strip_nul_escapes(raw)
        values = _fields(raw, message_id)
        parts = [fmt(values[index]) for index, fmt in formats]
        if stamps:
            now = datetime.now(UTC).replace(tzinfo=None).isoformat().encode()
            parts.extend([now] * stamps)
        return _FIELD.join(parts)

    return row


def _fields(raw: bytes, message_id: str | None) -> tuple[Any, ...]:
    """The values of an event, unformatted, in `FIELDS` order."""
    event = _read_log(raw)
    req = event.req or _NO_REQUEST
    record_id = req.id
    if record_id is None:
        record_id = message_id if message_id is not None else _content_id(raw)
    when = event.time if event.timestamp is None else event.timestamp
    message = event.msg if event.message is None else event.message
    return (
        *(record_id, when, event.level, req.method, req.url, req.query, req.headers),
        *(event.context, message, event.authUserId, event.pid, event.hostname),
        *(req.remoteAddress, req.remotePort, event.processingTimeMs, event.cacheHit),
        *(event.documentCount, event.lastUpdated, req.params, msgspec.Raw(raw)),
    )


def _format(index: int, column: Column, name: str) -> Callable[[Any], bytes]:
    kind = column.type
    if index == 0:  # the record id
        if kind == "uuid":
            return _uuid
        if kind not in ("text", "varchar", "bpchar"):
            raise SinkError(
                f"{name}: the id column is {kind}: tailrace writes text or uuid record ids"
                " (req.id, else the message id, else a hash of the record)"
            )
        return _text
    if index == 2 and kind in ("int2", "int4", "int8", "numeric", "float4", "float8"):
        return _level_number
    return _BY_TYPE.get(kind, _text_or_json)


def _uuid(value: Any) -> bytes:
    text = value if type(value) is str else _dumps(value).decode()
    return str(uuid.uuid5(_ID_NAMESPACE, text)).encode()


def _level_number(value: Any) -> bytes:
    if type(value) is str and value.lower() in _LEVEL_NUMBERS:
        return b"%d" % _LEVEL_NUMBERS[value.lower()]
    return _integer(value, _INT4)


def _naive_utc(value: Any) -> bytes:
    """For ``timestamp without time zone``: the UTC time without its offset (PostgreSQL
    would drop the offset and keep the local time)."""
    text = _timestamp(value)
    if text is _NULL:
        return text
    moment = datetime.fromisoformat(text.decode())
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat().encode()


def _json(value: Any) -> bytes:
    if type(value) is msgspec.Raw:
        return bytes(_jsonb(value))
    return _NULL if value is None else _dumps(value)


def _text_or_json(value: Any) -> bytes:
    if type(value) is msgspec.Raw:
        return _NULL if not value or value == b"null" else bytes(value)
    return _text(value)


_BY_TYPE: dict[str, Callable[[Any], bytes]] = {
    "int2": lambda v: _integer(v, _INT2),
    "int4": lambda v: _integer(v, _INT4),
    "int8": lambda v: _integer(v, _INT8),
    "float4": _float,
    "float8": _float,
    "numeric": _float,
    "bool": _boolean,
    "timestamptz": _timestamp,
    "timestamp": _naive_utc,
    "json": _json,
    "jsonb": _json,
}
