"""`tailrace outbox requeue` by id, by key and all, and `status` showing what a dead event
holds (no broker needed: the statuses are set as a relay would leave them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from tailrace.cli.outbox import outbox as outbox_cli
from tailrace.streams import outbox
from tests.integration.streams.outbox_support import migrated_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
def db() -> Iterator[str]:
    with migrated_schema() as url:
        yield url


def _run(url: str, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(outbox_cli, [*args, "--database-url", url])
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.output)
    return parsed


def _kill(conn: psycopg.Connection[tuple[object, ...]], *ids: int) -> None:
    conn.execute(
        "UPDATE tailrace_outbox SET status = 'dead', attempts = 5, last_error = 'x'"
        " WHERE id = ANY(%s)",
        (list(ids),),
    )


def _statuses(conn: psycopg.Connection[tuple[Any, ...]]) -> dict[int, str]:
    return {int(i): str(s) for i, s in conn.execute("SELECT id, status FROM tailrace_outbox")}


def test_requeue_by_id_by_key_and_all(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        a1, a2 = outbox.add(conn, "t", "a", b"1"), outbox.add(conn, "t", "a", b"2")
        b1, b2 = outbox.add(conn, "t", "b", b"1"), outbox.add(conn, "t", "b", b"2")
        c1 = outbox.add(conn, "t", "c", b"1")
        _kill(conn, a1, b1, c1)

        status = _run(db, "status")
        assert (status["dead"], status["dead_keys"], status["held"]) == (3, 3, 2)

        assert _run(db, "requeue", "--id", str(a1)) == {"requeued": 1, "ids": [a1]}
        assert _run(db, "requeue", "--key", "b") == {"requeued": 1, "ids": [b1]}
        assert _statuses(conn)[c1] == "dead"
        assert _run(db, "requeue", "--all") == {"requeued": 1, "ids": [c1]}
        assert _run(db, "requeue", "--all") == {"requeued": 0, "ids": []}
        assert set(_statuses(conn).values()) == {"pending"}
        assert {a2, b2} <= set(_statuses(conn))
        row = conn.execute("SELECT max(attempts) FROM tailrace_outbox").fetchone()
        assert row == (0,)  # a requeued event gets its attempts back


def test_requeue_needs_one_selection(db: str) -> None:
    for args in ([], ["--all", "--id", "1"], ["--id", "1", "--key", "k"]):
        result = CliRunner().invoke(outbox_cli, ["requeue", *args, "--database-url", db])
        assert result.exit_code == 2, (args, result.output)
