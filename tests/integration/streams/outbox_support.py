"""What the outbox and spool tests share: a migrated schema, relays in subprocesses, and
reading a topic back as outbox events."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tailrace.db import migrate
from tailrace.streams.outbox import ID_HEADER
from tests.kafka_broker import Record
from tests.services import missing, postgres_schema


@contextmanager
def migrated_schema() -> Iterator[str]:
    """A fresh schema with tailrace's tables; yields its URL."""
    with postgres_schema() as url:
        migrate(url)
        yield url


def with_app_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def start_relay(url: str, bootstrap: str, log_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`tailrace outbox relay` in a subprocess, its output in `log_path`."""
    command = [
        sys.executable,
        "-m",
        "tailrace.cli.outbox",
        "relay",
        "--database-url",
        url,
        "--bootstrap-servers",
        bootstrap,
        *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)


def outbox_ids(records: Sequence[Record]) -> list[int]:
    """The outbox event id of each record, in the order read."""
    ids = []
    for record in records:
        value = record.header(ID_HEADER)
        assert value is not None, f"a record without {ID_HEADER}: {record}"
        ids.append(int(value))
    return ids


def per_key(records: Sequence[Record]) -> dict[bytes | None, list[bytes | None]]:
    """Each key's values in the order the topic holds them."""
    found: dict[bytes | None, list[bytes | None]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        found[record.key].append(record.value)
    return found


def redis_url() -> str:
    """The test Redis (127.0.0.1:6379); skips, or fails under CI=true, without one."""
    try:
        import redis
    except ImportError as exc:
        missing("Redis", f"redis-py is not installed ({exc})")
        raise
    client = redis.Redis()
    try:
        client.ping()
    except redis.RedisError as exc:
        missing("Redis", f"no server on 127.0.0.1:6379 ({exc})")
    finally:
        client.close()
    return "redis://127.0.0.1:6379/0"
