"""The PostgreSQL sink: each record stored once, each file's checkpoint in the same transaction.

`flush(mark)` ends one transaction: COPY the events written since the last flush, update the
mark in ``tailrace_sink_checkpoints`` (beside the table, in the same schema), commit. The
events and the mark land together or not at all, so a worker resuming from `committed()`
sends nothing twice. Once `committed(key)` has named the file being written (a worker asks
it at each file's start), events stream into the transaction's COPY as they are written, so
the server parses them while the worker reads on; without it they wait in memory for
`flush()`. Events streamed for a file that stops without its final flush are rolled back at
`close()` (the file resumes from its mark).

Written once, whatever resends them (a re-uploaded or fixed file, a file of an overlapping
run): every record has an id (below) under a unique index. The COPY goes straight into the
table; when it meets an id already stored, its transaction is rolled back and sent again
through a temporary staging table and ``INSERT ... ON CONFLICT DO NOTHING``. Records found
stored are not sent: `take_skipped()` hands them over as ``duplicate record`` and the mark's
counters say so (``sent`` counts only rows inserted).

Checkpoints belong to the target: their key is the table's ``"schema"."table"`` and the
file's key. Whoever (re)starts a file claims it (`committed()` bumps the row's generation),
and a flush commits only under the claim it holds: a worker that lost its file to another
(its lease ran out while it was paused) rolls back and raises "lost the claim".

Mappings (the table and the checkpoint table are created if missing, with no index but the
record id's: each one slows COPY down, add those your queries need; a table an earlier
version created without that index gets it, or is refused with the statements that fix it):

- ``log`` (default): the ``Log`` entity of reference 003, camelCase fields as snake_case
  columns: id (the primary key), timestamp, level, method, url, query, headers, context,
  message, auth_user_id, pid, hostname, remote_address, remote_port, processing_time_ms,
  cache_hit, document_count, last_updated, params, raw_data, created_at (``updatedAt`` is
  left out: rows are never updated). ``req.*`` fields come from the nested request. ``id``, the
  record id, is ``req.id`` as text (reference 003's id: two records with one ``req.id`` are
  one record), else the event's message id (`write`'s `keys`), else ``md5:`` and the MD5 of
  the event's bytes (the same record in any file has the same id). ``level`` holds pino's
  name for its numbers (30 -> ``info``), any other value as text. ``timestamp`` falls back
  to pino's ``time`` and ``message`` to ``msg``. Timestamps are ISO 8601 strings (naive
  means UTC) or epoch milliseconds. A value of the wrong type becomes NULL (numeric strings
  and ``"true"``/``"false"`` are coerced), a non-string in a text column its JSON text;
  ``raw_data`` always holds the whole event.
- ``raw``: ``id bigserial, record_id text UNIQUE, raw text, created_at``: the original
  bytes, unparsed; ``record_id`` is ``md5:`` and their MD5. ``text`` rather than ``jsonb``:
  byte-exact, and COPY into it runs 2-3x faster (the server parses
  every ``jsonb`` value); cast with ``raw::jsonb`` to query it.
- `PostgresDeadLetterSink`: dead-letter records in typed columns (file, line, offset, reason,
  data, encoding, size, truncated, recorded_at), at least once.

PostgreSQL text and ``jsonb`` cannot hold NUL: NUL characters are dropped from text columns
and ``\\u0000`` escapes from ``jsonb`` values (the other columns still say what was there). A
dead letter's data holding NUL is stored base64-encoded instead, so it is kept exactly.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import md5
from itertools import repeat
from math import isfinite
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from tailrace.pipeline.decoders.framing import Checkpoint
from tailrace.pipeline.sinks.base import (
    DUPLICATE_RECORD,
    FileMark,
    Keys,
    Routes,
    SinkBase,
    SinkCounters,
    SinkError,
)
from tailrace.settings import redact_url

if TYPE_CHECKING:
    from tailrace.pipeline.sinks.url import SinkSpec

CHECKPOINT_TABLE = "tailrace_sink_checkpoints"
APPLICATION_NAME = "tailrace-sink"
CONNECT_TIMEOUT_S = 10
# Rows per COPY message: the server parses one chunk while the next is built.
CHUNK_ROWS = 256
# Events buffered before they stream into the open COPY (once a file is named).
STREAM_ROWS = 1024
# One lock for all sink DDL: creating a table is rare, and CREATE TABLE IF NOT EXISTS alone
# still fails when two sessions create the same table at the same moment.
# Events of the open transaction kept to send again through the duplicate check, at most.
RETAIN_BYTES = 64 << 20
_STAGING = sql.Identifier("tailrace_staging")  # a temporary table: one per session
_SKIP_PREFIX = "skip:"  # how a mark's counters name skip reasons (run.mark_counters)
_DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('tailrace-sink-ddl', 0))"

MappingName = Literal["log", "raw"]
Connection = psycopg.Connection[TupleRow]
Cursor = psycopg.Cursor[TupleRow]

# Rows are assembled with bytes that valid UTF-8 never holds standing for the field
# separator, the row separator and NULL; one escaping pass over a whole chunk then replaces
# them, instead of escaping every field on its own.
_FIELD, _ROW, _NULL = b"\xff", b"\xfe", b"\xfd"
_SEPARATORS = bytes.maketrans(_FIELD + _ROW, b"\t\n")
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")  # \u0000 not itself escaped
# What JavaScript's toISOString() and most loggers write, passed on as it is (the common case,
# 3x cheaper than reformatting): forms both sides read the same way, offsets within 15:59.
_PLAIN_ISO = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?(?:Z|[+-](?:0\d|1[0-5]):[0-5]\d)?",
    re.ASCII,
)
# password=... in a URL's query or a key=value DSN, where the value may be quoted
_PASSWORD_PARAM = re.compile(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)")
_PINO_LEVELS = {10: b"trace", 20: b"debug", 30: b"info", 40: b"warn", 50: b"error", 60: b"fatal"}
_INT4 = (-(2**31), 2**31 - 1)
_INT8 = (-(2**63), 2**63 - 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ABSENT = msgspec.Raw()
_JSON_NULL = msgspec.Raw(b"null")
_NOT_JSON = (orjson.JSONDecodeError, msgspec.DecodeError)
_loads = orjson.loads
_dumps = orjson.dumps


# -- values: each returns the field's COPY bytes, or _NULL ------------------------------------


def _text(value: Any) -> bytes:
    if type(value) is str:
        return value.encode()
    return _NULL if value is None else _dumps(value)


def _jsonb(value: msgspec.Raw) -> bytes | msgspec.Raw:
    """A value kept as its original JSON text: no parsing, no re-serialising."""
    return _NULL if not value or value == _JSON_NULL else value


def _jsonb_without_nul(value: msgspec.Raw) -> bytes:
    return _NULL if not value or value == _JSON_NULL else _strip_nul_escapes(bytes(value))


def _strip_nul_escapes(data: bytes) -> bytes:
    return _NUL_ESCAPE.sub(rb"\1", data)


def _integer(value: Any, bounds: tuple[int, int]) -> bytes:
    if type(value) is not int:
        value = _coerce_integer(value)
        if value is None:
            return _NULL
    return b"%d" % value if bounds[0] <= value <= bounds[1] else _NULL


def _coerce_integer(value: Any) -> int | None:
    number = _coerce_float(value)
    return int(number) if number is not None and number.is_integer() else None


def _float(value: Any) -> bytes:
    # JSON's number text is PostgreSQL's too, and orjson writes it 4x faster than repr().
    if type(value) is float or type(value) is int:
        return _dumps(value)
    number = _coerce_float(value)
    return _NULL if number is None else _dumps(number)


def _coerce_float(value: Any) -> float | None:
    if type(value) is str:
        try:
            number = float(value)
        except ValueError:
            return None
        return number if isfinite(number) else None
    return float(value) if type(value) is float or type(value) is int else None


def _boolean(value: Any) -> bytes:
    if value is True or value is False:
        return b"t" if value else b"f"
    if type(value) is str and value.lower() in ("true", "false"):
        return b"t" if value.lower() == "true" else b"f"
    return _NULL


def _timestamp(value: Any) -> bytes:
    """ISO 8601 or epoch milliseconds, as text PostgreSQL reads the same way; naive times
    are UTC (the session's time zone)."""
    if type(value) is str:
        try:
            moment = datetime.fromisoformat(value)  # checks the ranges (month 13...)
        except ValueError:
            return _NULL
        if _PLAIN_ISO.fullmatch(value):
            return value.encode()
        return _utc_text(moment)
    if type(value) is int or type(value) is float:
        try:
            return (_EPOCH + timedelta(milliseconds=value)).isoformat().encode()
        except OverflowError:
            return _NULL
    return _NULL


def _utc_text(moment: datetime) -> bytes:
    # Python reads forms PostgreSQL refuses (week dates, "," before fractions, offsets past
    # 15:59 or with seconds): written back in UTC, they read the same on both sides.
    try:
        return (moment.astimezone(UTC) if moment.tzinfo else moment).isoformat().encode()
    except OverflowError:
        return _NULL


def _level(value: Any) -> bytes:
    name = _PINO_LEVELS.get(value) if type(value) is int else None
    return name or _text(value)


# -- rows ---------------------------------------------------------------------------------


class _Request(msgspec.Struct, gc=False):
    """The fields of ``req`` the log mapping reads, named as in the event; the objects stay
    as their JSON text."""

    id: Any = None
    method: Any = None
    url: Any = None
    query: msgspec.Raw = _ABSENT
    headers: msgspec.Raw = _ABSENT
    remoteAddress: Any = None
    remotePort: Any = None
    params: msgspec.Raw = _ABSENT


class _LogEvent(msgspec.Struct, gc=False):
    """The fields of an event the log mapping reads; msgspec skips the others unparsed."""

    level: Any = None
    timestamp: Any = None
    time: Any = None
    pid: Any = None
    hostname: Any = None
    req: _Request | None = None
    context: Any = None
    message: Any = None
    msg: Any = None
    authUserId: Any = None
    processingTimeMs: Any = None
    cacheHit: Any = None
    documentCount: Any = None
    lastUpdated: Any = None


_decode_log = msgspec.json.Decoder(_LogEvent).decode
_NO_REQUEST = _Request()


def _read_log(raw: bytes) -> _LogEvent:
    try:
        return _decode_log(raw)
    except msgspec.ValidationError:
        # Not an object, or a ``req`` that is not one: read the rest without it.
        data = _loads(raw)
        if type(data) is not dict:
            return _LogEvent()
        data.pop("req", None)
        return _decode_log(_dumps(data))


def _content_id(raw: bytes) -> str:
    """The record id of an event that names none: a hash of its original bytes."""
    return "md5:" + md5(raw, usedforsecurity=False).hexdigest()


def _log_row(raw: bytes, message_id: str | None) -> bytes:
    """One event as a row of the ``log`` mapping (sentinel-separated, unescaped)."""
    event = _read_log(raw)
    req = event.req or _NO_REQUEST
    record_id = req.id
    if record_id is None:
        record_id = message_id if message_id is not None else _content_id(raw)
    jsonb: Callable[[msgspec.Raw], bytes | msgspec.Raw] = _jsonb
    if b"\\" in raw and b"\\u0000" in raw:  # a one-byte search first: memchr, 5x faster
        jsonb = _jsonb_without_nul
        raw = _strip_nul_escapes(raw)
    when = event.timestamp
    message = event.message
    return _FIELD.join(
        (
            _text(record_id),
            _timestamp(event.time if when is None else when),
            _level(event.level),
            _text(req.method),
            _text(req.url),
            jsonb(req.query),
            jsonb(req.headers),
            _text(event.context),
            _text(event.msg if message is None else message),
            _integer(event.authUserId, _INT8),
            _integer(event.pid, _INT4),
            _text(event.hostname),
            _text(req.remoteAddress),
            _integer(req.remotePort, _INT4),
            _float(event.processingTimeMs),
            _boolean(event.cacheHit),
            _integer(event.documentCount, _INT4),
            _timestamp(event.lastUpdated),
            jsonb(req.params),
            raw,
        )
    )


def _raw_row(raw: bytes, message_id: str | None) -> bytes:
    return _content_id(raw).encode() + _FIELD + raw


def _deadletter_row(raw: bytes, message_id: str | None) -> bytes:
    record = _loads(raw)
    if type(record) is not dict:
        record = {}
    get = record.get
    data, encoding = get("data"), get("encoding")
    if type(data) is str and "\x00" in data and encoding == "utf-8":
        data, encoding = base64.b64encode(data.encode()).decode("ascii"), "base64"
    return _FIELD.join(
        (
            _text(get("file")),
            _integer(get("line"), _INT8),
            _integer(get("offset"), _INT8),
            _text(get("reason")),
            _text(data),
            _text(encoding),
            _integer(get("size"), _INT4),
            _boolean(get("truncated")),
        )
    )


def _copy_text(rows: list[bytes]) -> bytes:
    """Rows in COPY text format: escape, then turn the sentinels into tabs, newlines, NULLs."""
    chunk = _ROW.join(rows)
    chunk = chunk.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    chunk = chunk.replace(b"\t", b"\\t").replace(b"\x00", b"").replace(_NULL, b"\\N")
    return chunk.translate(_SEPARATORS) + b"\n"


@dataclass(frozen=True, slots=True)
class _Layout:
    """A table shape: its columns (DDL), those COPY fills, how an event becomes a row, and
    the column holding each record's id under a unique index (None: rows are not deduplicated)."""

    columns: str
    copied: tuple[str, ...]
    row: Callable[[bytes, str | None], bytes]
    unique: str | None


_LOG = _Layout(
    columns="""
        id text PRIMARY KEY, "timestamp" timestamptz, level text, method text, url text,
        query jsonb, headers jsonb, context text, message text, auth_user_id bigint,
        pid integer, hostname text, remote_address text, remote_port integer,
        processing_time_ms double precision, cache_hit boolean, document_count integer,
        last_updated timestamptz, params jsonb, raw_data jsonb,
        created_at timestamptz NOT NULL DEFAULT now()""",
    copied=(
        *("id", "timestamp", "level", "method", "url", "query", "headers", "context"),
        *("message", "auth_user_id", "pid", "hostname", "remote_address", "remote_port"),
        *("processing_time_ms", "cache_hit", "document_count", "last_updated", "params"),
        "raw_data",
    ),
    row=_log_row,
    unique="id",
)
_RAW = _Layout(
    columns="""
        id bigserial PRIMARY KEY, record_id text NOT NULL UNIQUE, raw text,
        created_at timestamptz NOT NULL DEFAULT now()""",
    copied=("record_id", "raw"),
    row=_raw_row,
    unique="record_id",
)
_DEADLETTER = _Layout(
    columns="""
        file text, line bigint, "offset" bigint, reason text, data text, encoding text,
        size integer, truncated boolean, recorded_at timestamptz NOT NULL DEFAULT now()""",
    copied=("file", "line", "offset", "reason", "data", "encoding", "size", "truncated"),
    row=_deadletter_row,
    unique=None,
)
_LAYOUTS = {"log": _LOG, "raw": _RAW}

# Updated at every flush: spare room on each page keeps those updates HOT, and HOT versions
# are pruned without vacuum (which may be off: it is here).
_CHECKPOINT_COLUMNS = """
    key text PRIMARY KEY, line bigint NOT NULL, "offset" bigint NOT NULL,
    counters jsonb NOT NULL DEFAULT '{}', events bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(), generation bigint NOT NULL DEFAULT 0,
    dedup boolean NOT NULL DEFAULT false"""
_CHECKPOINT_OPTIONS = " WITH (fillfactor = 70)"


def display_dsn(dsn: str) -> str:
    """The DSN with its password hidden, for names and messages."""
    return _PASSWORD_PARAM.sub(r"\1***", redact_url(dsn))


class _LostClaim(Exception):
    """The checkpoint row's generation moved on: another worker restarted the file."""


class _CopySink(SinkBase):
    """COPYs events into `table` (``table`` or ``schema.table``) through one connection.

    `dsn` is a libpq URL or ``key=value`` string; ``application_name`` (``tailrace-sink``)
    and ``connect_timeout`` (10 s) are added unless it sets them. The sink never reconnects:
    after a lost connection only a new sink's `committed()` can tell whether the last
    commit landed, so every later call raises `SinkError`.
    """

    def __init__(self, dsn: str, table: str, layout: _Layout) -> None:
        super().__init__()
        self._layout = layout
        self._setup(dsn, table)

    def _setup(self, dsn: str, table: str) -> None:
        self.table = table
        self.name = f"postgresql sink {display_dsn(dsn)} (table {table})"
        self._secret = ""
        self._events: list[bytes] = []
        self._keys: list[str | None] = []
        # The file being written (named by `committed()`), and the claims this sink holds:
        # file key -> the generation of its checkpoint row when this sink (re)started it.
        self._file_key: str | None = None
        self._claims: dict[str, int] = {}
        # The open transaction: its COPY (psycopg's Copy context, entered), how many events
        # went in, and those events kept for a replay through the duplicate check (None once
        # past `RETAIN_BYTES`).
        self._stream_copy: Any = None
        self._stream_cm: Any = None
        self._cursor: Cursor | None = None
        self._streamed = 0
        self._sent: list[bytes] | None = []
        self._sent_keys: list[str | None] = []
        self._sent_bytes = 0
        self._dedup = False  # this transaction COPYs into the staging table (see `_insert`)
        self._staging_ready = False
        self._skipped: dict[str, int] = {}
        self._broken: str | None = None
        schema, dot, name = table.rpartition(".")
        prefix = (schema,) if dot else ()
        self._table = sql.Identifier(*prefix, name)
        self._checkpoints = sql.Identifier(*prefix, CHECKPOINT_TABLE)
        self._columns = sql.SQL(", ").join(map(sql.Identifier, self._layout.copied))
        self._copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(self._table, self._columns)
        self._staging_copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(_STAGING, self._columns)
        self._target = ""  # "schema"."table", resolved by `_prepare`: the checkpoints' prefix
        self._conn = self._connect(dsn)
        try:
            self._prepare()
        except BaseException:
            self._conn.close()
            raise

    # -- connection ---------------------------------------------------------------------

    def _connect(self, dsn: str) -> Connection:
        try:
            given = conninfo_to_dict(dsn)
            self._secret = str(given.get("password") or "")
            defaults: dict[str, str | int] = {
                "application_name": APPLICATION_NAME,
                "connect_timeout": CONNECT_TIMEOUT_S,
            }
            extra = {key: value for key, value in defaults.items() if key not in given}
            conninfo = make_conninfo(dsn, client_encoding="utf8", **extra)
            return psycopg.connect(conninfo, autocommit=False)
        except psycopg.Error as exc:
            raise SinkError(f"{self.name}: cannot connect: {self._describe(exc)}") from None

    def _prepare(self) -> None:
        """Set the session up, create the tables that are missing, upgrade those an earlier
        version created (or refuse them, saying how to fix them)."""
        conn = self._conn
        try:
            with conn.transaction():
                conn.execute("SET TIME ZONE 'UTC'")
                # Exactly once needs durable commits: raise an `off` default to `on`, leave
                # a stronger one (remote_apply...) alone.
                conn.execute(
                    "SELECT set_config('synchronous_commit', 'on', false)"
                    " WHERE current_setting('synchronous_commit') = 'off'"
                )
                if self._needs_ddl():
                    conn.execute(_DDL_LOCK)
                    self._create_or_upgrade()
                if self._layout is _LOG:
                    self._adopt_existing()
                row = conn.execute(
                    "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s::regclass",
                    (self._table.as_string(conn),),
                ).fetchone()
                assert row is not None
                self._target = str(row[0])
        except psycopg.Error as exc:
            raise SinkError(
                f"{self.name}: cannot prepare the table: {self._describe(exc)}"
            ) from exc

    def _adopt_existing(self) -> None:
        """A ``log`` table someone else created (reference 003's TypeORM one): write its own
        columns, as their types want (see `tables`)."""
        from tailrace.pipeline.sinks.postgres.tables import adopt_log_table

        layout = adopt_log_table(self._conn, self._table, _LOG.copied, self.name)
        if layout is None:
            return
        self._layout = layout
        self._columns = sql.SQL(", ").join(map(sql.Identifier, layout.copied))
        self._copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(self._table, self._columns)
        self._staging_copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(_STAGING, self._columns)

    def _needs_ddl(self) -> bool:
        if not self._exists(self._table):
            return True
        if self._layout.unique is not None and not self._has_unique_index():
            return True
        if self.exactly_once:
            return not self._exists(self._checkpoints) or not self._has_column(
                self._checkpoints, "dedup"
            )
        return False

    def _create_or_upgrade(self) -> None:
        """Under the DDL lock: the same checks again (another session may have done it)."""
        if not self._exists(self._table):
            self._create(self._table, self._layout.columns, "")
        elif self._layout.unique is not None and not self._has_unique_index():
            self._add_unique_index()
        if self.exactly_once:
            if not self._exists(self._checkpoints):
                self._create(self._checkpoints, _CHECKPOINT_COLUMNS, _CHECKPOINT_OPTIONS)
            elif not self._has_column(self._checkpoints, "dedup"):
                # A checkpoint table of an earlier version: the claim columns are new.
                self._conn.execute(
                    sql.SQL(
                        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS generation bigint NOT NULL"
                        " DEFAULT 0, ADD COLUMN IF NOT EXISTS dedup boolean NOT NULL"
                        " DEFAULT false"
                    ).format(self._checkpoints)
                )

    def _exists(self, table: sql.Identifier) -> bool:
        row = self._conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (table.as_string(self._conn),)
        ).fetchone()
        return bool(row and row[0])

    def _has_column(self, table: sql.Identifier, column: str) -> bool:
        row = self._conn.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s"
            " AND NOT attisdropped",
            (table.as_string(self._conn), column),
        ).fetchone()
        return bool(row and row[0])

    def _has_unique_index(self) -> bool:
        """A unique index on the record id alone (what ``ON CONFLICT (id)`` needs)."""
        row = self._conn.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indnkeyatts = 1"
            " AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = %s",
            (self._table.as_string(self._conn), self._layout.unique),
        ).fetchone()
        return bool(row and row[0])

    def _create(self, table: sql.Identifier, columns: str, options: str) -> None:
        self._conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}){}").format(
                table, sql.SQL(columns), sql.SQL(options)
            )
        )

    def _add_unique_index(self) -> None:
        """A table an earlier version created, without the unique record id: index it, or
        refuse it with the statements that fix it (never go on storing records twice)."""
        conn, column = self._conn, self._layout.unique
        assert column is not None
        table = self._table.as_string(conn)
        index = f"CREATE UNIQUE INDEX ON {table} ({column});"
        if not self._has_column(self._table, column):
            raise SinkError(
                f"{self.name}: table {table} has no {column} column (an earlier version created"
                f" it), so records could be stored twice; upgrade it with: ALTER TABLE {table}"
                f" ADD COLUMN record_id text; UPDATE {table} SET record_id = 'md5:' || md5(raw);"
                f" DELETE FROM {table} a USING {table} b WHERE a.record_id = b.record_id"
                f" AND a.id > b.id; {index}"
            )
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(
                        self._table, sql.Identifier(column)
                    )
                )
        except psycopg.errors.UniqueViolation:
            raise SinkError(
                f"{self.name}: table {table} (created by an earlier version) holds records"
                f" with the same {column}: duplicates; remove them and add the unique index"
                f" with: DELETE FROM {table} a USING {table} b WHERE a.{column} = b.{column}"
                f" AND a.ctid > b.ctid; {index}"
            ) from None

    def _describe(self, exc: psycopg.Error) -> str:
        """The server's message, with where it happened (the COPY line), password-free."""
        text = str(exc).strip()
        context = getattr(exc.diag, "context", None)
        if context:
            text = f"{text} ({context.strip()})"
        return text.replace(self._secret, "***") if self._secret else text

    def _checkpoint_key(self, key: str) -> str:
        """Checkpoints are the target table's: the same file into another table starts anew."""
        return f"{self._target} {key}"

    # -- the sink protocol ------------------------------------------------------------------

    def write(
        self, batch: Sequence[bytes], *, keys: Keys | None = None, routes: Routes | None = None
    ) -> None:
        """Buffer the events; `keys` (message ids) give ids to events without ``req.id``.
        `routes` are not stored: the mapped tables have no column for them."""
        self._check_open()
        if keys is not None and len(keys) != len(batch):
            raise SinkError(f"{self.name}: {len(keys)} keys for {len(batch)} events")
        self._check_broken()
        self._events.extend(batch)
        self._keys.extend(repeat(None, len(batch)) if keys is None else keys)
        self._written(len(batch), sum(map(len, batch)))
        if self._file_key is not None and len(self._events) >= STREAM_ROWS:
            self._stream()

    def flush(self, mark: FileMark | None = None) -> None:
        """COPY what is buffered and store `mark` in one transaction; commit; count what was
        inserted (records already in the table are skipped, see `take_skipped`)."""
        self._check_open()
        self._check_broken()
        if not self.exactly_once:
            mark = None
        if self._stream_copy is not None or self._events or mark is not None:
            self._commit(mark)
        self._acknowledge()

    def take_skipped(self) -> dict[str, int]:
        skipped, self._skipped = self._skipped, {}
        return skipped

    def committed(self, key: str) -> FileMark | None:
        """Claim file `key` for this sink and return the mark last stored for it.

        Whoever (re)starts a file claims it: the checkpoint row's generation goes up, and a
        sink holding an older claim can no longer commit anything for that file.
        """
        self._check_open()
        if not self.exactly_once:
            return None
        if self._stream_copy is not None or self._events:
            # Left by a file that stopped without its final flush: never committed, and that
            # file resumes from its own mark, so drop it rather than let the next mark take it.
            self._abandon()
        query = sql.SQL(
            'INSERT INTO {} AS c (key, line, "offset", generation) VALUES (%s, -1, -1, 1)'
            " ON CONFLICT (key) DO UPDATE SET generation = c.generation + 1"
            ' RETURNING line, "offset", counters, generation, dedup'
        ).format(self._checkpoints)
        try:
            with self._conn.transaction():
                row = self._conn.execute(query, (self._checkpoint_key(key),)).fetchone()
        except psycopg.Error as exc:
            raise SinkError(
                f"{self.name}: cannot read checkpoint {key!r}: {self._describe(exc)}"
            ) from exc
        assert row is not None
        line, offset, counters, generation, dedup = row
        # A worker asks this at a file's start: from now on its events stream (`_stream`).
        self._file_key = key
        self._claims[key] = int(generation)
        self._dedup = bool(dedup)
        if line < 0:
            return None  # claimed just now, nothing stored yet
        return FileMark(key, Checkpoint(line, offset), dict(counters or {}))

    def close(self) -> None:
        """Flush and release; but events streamed for a file since its last mark are
        rolled back, not committed without one: the file resumes from its mark and sends
        them again, so committing them here would store them twice."""
        if self.closed:
            return
        if self._stream_copy is not None or (self._file_key is not None and self._broken is None):
            self._closed = True
            self._abandon()
            self._release()
            return
        super().close()

    def _release(self) -> None:
        self._conn.close()

    # -- streaming ----------------------------------------------------------------------
    #
    # Events do not wait for the flush: once `committed(key)` named the file, every
    # `STREAM_ROWS` they go into a COPY held open in the flush's transaction, so the server
    # parses them while the worker reads on. `flush(mark)` sends the rest, stores the mark
    # and commits: still one transaction.
    #
    # The COPY goes straight into the table, whose unique index on the record id refuses a
    # record stored before. Then (a re-uploaded file, an overlapping run) the transaction is
    # rolled back and its events sent again through the duplicate check: COPY into a
    # session-local staging table, ``INSERT ... ON CONFLICT DO NOTHING`` from there. The
    # rest of the file goes that way too (the checkpoint row remembers it).

    def _stream(self) -> None:
        events, keys = self._events, self._keys
        self._events, self._keys = [], []
        try:
            try:
                self._send(events, keys)
            except psycopg.errors.UniqueViolation:
                self._check_each_record()
        except psycopg.Error as exc:
            self._fail(exc, self._streamed + len(events))
        except SinkError:
            self._abandon()
            raise

    def _send(self, events: list[bytes], keys: list[str | None]) -> None:
        """Into the open transaction's COPY (opened on the way), kept for a replay."""
        if self._stream_copy is None:
            if self._dedup:
                self._ensure_staging()
            self._cursor = self._conn.cursor()
            self._stream_cm = self._cursor.copy(
                self._staging_copy_sql if self._dedup else self._copy_sql
            )
            self._stream_copy = self._stream_cm.__enter__()
        if self._sent is not None and not self._dedup:
            self._sent.extend(events)
            self._sent_keys.extend(keys)
            self._sent_bytes += sum(map(len, events))
            if self._sent_bytes > RETAIN_BYTES:
                self._sent, self._sent_keys = None, []
        for chunk in self._chunks(events, keys):
            self._stream_copy.write(chunk)
        self._streamed += len(events)

    def _commit(self, mark: FileMark | None) -> None:
        try:
            self._finish(mark)
        except _LostClaim:
            key = mark.key if mark is not None else self._file_key
            self._abandon()
            self._claims.pop(key or "", None)
            raise SinkError(
                f"{self.name}: lost the claim on file {key!r}: another worker restarted it,"
                " so this one stops; nothing of this flush was written"
            ) from None
        except psycopg.Error as exc:
            self._fail(exc, self._streamed + len(self._events))

    def _finish(self, mark: FileMark | None) -> None:
        """End the open transaction: the last events, the insert, the mark; commit."""
        if self._events:
            self._stream()
        try:
            self._end_copy()
        except psycopg.errors.UniqueViolation:
            self._check_each_record()
            self._end_copy()
        streamed = self._streamed
        cursor = self._cursor or self._conn.cursor()
        try:
            inserted = self._insert(cursor) if self._dedup and streamed else streamed
            duplicates = streamed - inserted
            if mark is not None:
                self._store_mark(cursor, mark, inserted, duplicates)
            self._conn.commit()
        finally:
            cursor.close()
            self._cursor = None
        self._end_transaction()
        if duplicates:
            self._skipped[DUPLICATE_RECORD] = self._skipped.get(DUPLICATE_RECORD, 0) + duplicates
            self._unacked.events -= duplicates

    def _end_copy(self) -> None:
        if self._stream_copy is not None:
            copy_cm, self._stream_copy, self._stream_cm = self._stream_cm, None, None
            copy_cm.__exit__(None, None, None)

    def _check_each_record(self) -> None:
        """A record of the open transaction is in the table already (its COPY failed): roll
        back and send the transaction's events again through the duplicate check; or, when
        there were too many to keep, note in the checkpoint row to check each record of the
        file and fail the flush (the file resumes from its last mark)."""
        events, keys = self._sent, self._sent_keys
        self._rollback()
        self._dedup = True
        if events is None:
            self._remember_dedup()
            self._abandon()
            raise SinkError(
                f"{self.name}: a record of file {self._file_key!r} is already in the table;"
                " nothing of this flush was written: the file resumes from its last mark,"
                " checking each record"
            )
        self._send(events, keys)

    def _insert(self, cursor: Cursor) -> int:
        """From the staging table into the table, skipping records already there."""
        unique = self._layout.unique
        assert unique is not None
        cursor.execute(
            sql.SQL(
                "INSERT INTO {0} ({1}) SELECT {1} FROM {2} ON CONFLICT ({3}) DO NOTHING"
            ).format(self._table, self._columns, _STAGING, sql.Identifier(unique))
        )
        inserted = cursor.rowcount
        cursor.execute(sql.SQL("TRUNCATE {}").format(_STAGING))
        return inserted

    def _ensure_staging(self) -> None:
        if self._staging_ready:
            return
        with self._conn.transaction():
            self._conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} AS SELECT {} FROM {} WITH NO DATA"
                ).format(_STAGING, self._columns, self._table)
            )
        self._staging_ready = True

    def _remember_dedup(self) -> None:
        """The checkpoint row says to check each record of the file from now on."""
        key = self._file_key
        if key is None or key not in self._claims:
            return
        query = sql.SQL("UPDATE {} SET dedup = true WHERE key = %s AND generation = %s")
        with self._conn.transaction():
            self._conn.execute(
                query.format(self._checkpoints), (self._checkpoint_key(key), self._claims[key])
            )

    def _store_mark(self, cursor: Cursor, mark: FileMark, inserted: int, duplicates: int) -> None:
        """The mark, its counters saying what this flush skipped, under this sink's claim."""
        counters = dict(mark.counters)
        if duplicates:
            counters["sent"] = counters.get("sent", 0) - duplicates
            counters["skipped"] = counters.get("skipped", 0) + duplicates
            reason = _SKIP_PREFIX + DUPLICATE_RECORD
            counters[reason] = counters.get(reason, 0) + duplicates
        point = mark.checkpoint
        values = (point.line, point.offset, _dumps(counters).decode(), inserted, self._dedup)
        key = self._checkpoint_key(mark.key)
        generation = self._claims.get(mark.key)
        if generation is None:
            # A mark for a file this sink never claimed (no `committed()`): claim it now.
            query = sql.SQL(
                'INSERT INTO {0} AS c (line, "offset", counters, events, dedup, key, generation)'
                " VALUES (%s, %s, %s::jsonb, %s, %s, %s, 1) ON CONFLICT (key) DO UPDATE SET"
                ' line = excluded.line, "offset" = excluded."offset",'
                " counters = excluded.counters, events = c.events + excluded.events,"
                " dedup = c.dedup OR excluded.dedup, generation = c.generation + 1,"
                " updated_at = now() RETURNING generation"
            ).format(self._checkpoints)
            row = cursor.execute(query, (*values, key)).fetchone()
            assert row is not None
            self._claims[mark.key] = int(row[0])
            return
        query = sql.SQL(
            'UPDATE {} SET line = %s, "offset" = %s, counters = %s::jsonb,'
            " events = events + %s, dedup = dedup OR %s, updated_at = now()"
            " WHERE key = %s AND generation = %s"
        ).format(self._checkpoints)
        cursor.execute(query, (*values, key, generation))
        if cursor.rowcount != 1:
            raise _LostClaim

    def _chunks(self, events: list[bytes], keys: list[str | None]) -> Iterator[bytes]:
        row = self._layout.row
        for first in range(0, len(events), CHUNK_ROWS):
            part = range(first, min(first + CHUNK_ROWS, len(events)))
            self._check_sentinels(events, part)
            try:
                rows = [row(events[i], keys[i]) for i in part]
            except _NOT_JSON:
                raise self._not_json(events, part) from None
            yield _copy_text(rows)

    def _check_sentinels(self, events: list[bytes], part: range) -> None:
        # msgspec does not check the UTF-8 of what it skips, and the raw mapping reads
        # nothing: turn away events holding a sentinel byte (the server would refuse those
        # bytes anyway) before they can split a row.
        joined = b"".join(events[part.start : part.stop])
        if _FIELD in joined or _ROW in joined or _NULL in joined:
            for i in part:
                if _FIELD in events[i] or _ROW in events[i] or _NULL in events[i]:
                    raise SinkError(f"{self.name}: event {i + 1} of the flush is not UTF-8")

    def _not_json(self, events: list[bytes], part: range) -> SinkError:
        for i in part:
            try:
                self._layout.row(events[i], None)
            except _NOT_JSON as exc:
                return SinkError(f"{self.name}: event {i + 1} of the flush is not JSON: {exc}")
        return SinkError(f"{self.name}: an event of the flush is not JSON")  # pragma: no cover

    # -- ending a transaction -----------------------------------------------------------

    def _fail(self, exc: psycopg.Error, lost: int) -> None:
        self._broken = f"{lost} events not delivered: {self._describe(exc)}"
        self._abandon()
        raise SinkError(f"{self.name}: {self._broken}") from exc

    def _rollback(self) -> None:
        copy_cm, self._stream_copy, self._stream_cm = self._stream_cm, None, None
        if copy_cm is not None and not self._conn.closed:
            try:  # end the COPY with an error: the server drops it, the session is usable
                copy_cm.__exit__(SinkError, SinkError("abandoned"), None)
            except (psycopg.Error, SinkError):
                pass
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
        if not self._conn.closed:
            try:
                self._conn.rollback()
            except psycopg.Error:
                pass  # a broken connection: nothing was committed either way
        self._end_transaction()

    def _end_transaction(self) -> None:
        self._streamed = 0
        self._sent, self._sent_keys, self._sent_bytes = [], [], 0

    def _abandon(self) -> None:
        """Roll back the open transaction, if any, and drop what it held."""
        self._rollback()
        self._events, self._keys = [], []
        self._unacked = SinkCounters()

    def _check_broken(self) -> None:
        if self._broken is not None:
            raise SinkError(f"{self.name}: an earlier flush failed ({self._broken})")


class PostgresSink(_CopySink):
    """The events sink: `mapping` ``log`` (reference 003's columns) or ``raw``; exactly once."""

    exactly_once = True

    def __init__(self, dsn: str, table: str = "logs", *, mapping: MappingName = "log") -> None:
        if mapping not in _LAYOUTS:
            raise ValueError(f"unknown mapping {mapping!r}: expected one of {sorted(_LAYOUTS)}")
        super().__init__(dsn, table, _LAYOUTS[mapping])

    @classmethod
    def from_spec(cls, spec: SinkSpec, *, mapping: MappingName = "log") -> PostgresSink:
        """The sink a ``postgresql://`` sink URL names (see `parse_sink_url`)."""
        return cls(_spec_dsn(spec), spec.table or "logs", mapping=mapping)


class PostgresDeadLetterSink(_CopySink):
    """Dead-letter records (`encode_record`'s JSON) into typed columns of `table`.

    At least once, not exactly once: the records commit on their own connection, before
    the events sink stores its mark.
    """

    def __init__(self, dsn: str, table: str = "logs_deadletter") -> None:
        super().__init__(dsn, table, _DEADLETTER)

    @classmethod
    def from_spec(cls, spec: SinkSpec) -> PostgresDeadLetterSink:
        """The sink for a dead-letter spec (`deadletter_spec` of a ``postgresql://`` sink)."""
        return cls(_spec_dsn(spec), spec.table or "logs_deadletter")


def _spec_dsn(spec: SinkSpec) -> str:
    if spec.kind != "postgresql" or spec.dsn is None:
        raise SinkError(f"not a PostgreSQL sink: {spec.display}")
    return spec.dsn
