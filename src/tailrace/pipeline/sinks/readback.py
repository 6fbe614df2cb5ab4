"""Reading a job's dead letters back from where its sink put them: the file next to a file
sink, or the ``<table>_deadletter`` table of a PostgreSQL sink (each kind's `read_back` in
`tailrace.pipeline.sinks.kinds`). A Kafka topic is named, not read: consuming it is the
consumers' business."""

from __future__ import annotations

from typing import Any

import orjson

from tailrace.pipeline.sinks.url import SinkSpec

#: Where the records are, as a user finds them, and the records (None: not readable here).
ReadBack = tuple[str, list[dict[str, Any]] | None]

_COLUMNS = ("file", "line", "offset", "reason", "data", "encoding", "size", "truncated")


def read_file(spec: SinkSpec, files: set[str], limit: int, offset: int) -> ReadBack:
    """A dead-letter file's records of `files`, up to `limit` after `offset`."""
    assert spec.path is not None
    location = str(spec.path)
    records: list[dict[str, Any]] = []
    if not spec.path.exists():
        return location, records
    skipped = 0
    with spec.path.open("rb") as f:
        for line in f:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a partial last line being written now
            if not isinstance(record, dict) or record.get("file") not in files:
                continue
            if skipped < offset:
                skipped += 1
                continue
            records.append(record)
            if len(records) >= limit:
                break
    return location, records


def read_table(spec: SinkSpec, files: set[str], limit: int, offset: int) -> ReadBack:
    """A dead-letter table's records of `files`, up to `limit` after `offset`."""
    assert spec.dsn is not None
    return f"table {spec.table}", _from_table(spec.dsn, spec.table or "", files, limit, offset)


def _from_table(
    dsn: str, table: str, files: set[str], limit: int, offset: int
) -> list[dict[str, Any]]:
    import psycopg
    from psycopg import sql

    name = sql.Identifier(*table.split("."))
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if not exists or exists[0] is None:
            return []
        rows = conn.execute(
            sql.SQL(
                'SELECT file, line, "offset", reason, data, encoding, size, truncated FROM {} '
                "WHERE file = ANY(%s) ORDER BY recorded_at, file, line LIMIT %s OFFSET %s"
            ).format(name),
            (sorted(files), limit, offset),
        ).fetchall()
    return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
