"""A database made by the numbered layout (commit f6b5018: one folder per store, the
pipeline's and the streams' tables among the engine's) upgrades in place to the migration
lines: nothing is lost, nothing runs twice, and it ends with the schema a new database gets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from tailrace.cli.db import db as db_command
from tailrace.db import Database, Dialect, MigrationError, migrate
from tailrace.db.migrations import NUMBERED, all_migrations, migrate_postgres
from tests.migration.previous_layout import build, contents, schema, tables
from tests.services import postgres_schema

# What an f6b5018 database gets on upgrade: the migrations written since (the priority caps),
# and the tables the numbered layout never recorded because it made them on first use.
ADOPTED = [
    "engine/0003_priority_caps_pools",
    "engine/0004_worker_pool",
    "engine/0005_drop_queue_claim_index",
    "streams/0005_stream_dedup_positions",  # PostgreSQL only, as the whole streams line
    "objects/0001_uploads",
    "api/0001_revoked_sessions",
]
ADDED_TABLES = {"tailrace_pools", "tailrace_queue_caps", "tailrace_stream_dedup_done"}


def adopted(url: str) -> list[str]:
    """`ADOPTED` as the dialect of `url` has its lines."""
    postgres = Dialect.of(url) is Dialect.POSTGRES
    return [label for label in ADOPTED if postgres or not label.startswith("streams/")]


@pytest.fixture(params=["sqlite", "postgres"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty databases of one dialect: one to upgrade, one made new."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/old.db", f"sqlite:///{tmp_path}/new.db"
    else:
        with postgres_schema() as old, postgres_schema() as new:
            yield old, new


def test_the_previous_layout_upgrades_without_loss_or_rerun(two_urls: tuple[str, str]) -> None:
    old, new = two_urls
    build(old)
    before = contents(old)
    assert all(before[t] for t in before), [t for t in before if not before[t]]

    applied = CliRunner().invoke(db_command, ["migrate"], obj={"database_url": old, "app": None})
    assert applied.exit_code == 0, applied.output
    assert f"applied {', '.join(adopted(old))} to" in applied.output  # and nothing else

    after = contents(old)
    carried = after.pop("tailrace_schema_migrations")
    added = {name: after.pop(name) for name in set(after) - set(before)}
    assert set(added) <= ADDED_TABLES and not any(added.values())  # migrations since f6b5018
    # every row of every table, the old bookkeeping's included (columns added since at the end)
    width = {name: len(rows[0]) for name, rows in before.items()}
    assert {name: [r[: width[name]] for r in rows] for name, rows in after.items()} == before
    migrate(new)
    assert schema(old) == schema(new)
    made = contents(new)["tailrace_schema_migrations"]
    assert sorted(r[:3] for r in carried) == sorted(r[:3] for r in made)

    # the bookkeeping carried over says when each was applied, then
    by_label = {(r[0], r[1]): r[3] for r in carried}
    old_times = {r[0]: r[2] for r in before["tailrace_migrations"]}
    dialect = Dialect.of(old)
    for version, (_, line, new_version) in NUMBERED[dialect].items():
        assert by_label[(line, new_version)] == old_times[version]

    assert migrate(old) == []
    status = CliRunner().invoke(db_command, ["status"], obj={"database_url": old, "app": None})
    assert status.exit_code == 0 and "is up to date" in status.output, status.output


def test_a_database_that_was_behind_gets_the_rest_recorded_in_both_layouts(
    two_urls: tuple[str, str],
) -> None:
    """Processes of the previous version, still starting during a rolling upgrade, read the
    numbered table: what the lines applied for them is recorded there too."""
    old, new = two_urls
    dialect = Dialect.of(old)
    last = max(NUMBERED[dialect])
    build(old, upto=last - 1)
    missing = NUMBERED[dialect][last]
    label = f"{missing[1]}/{missing[2]:04d}_"
    applied = migrate(old)
    assert [a for a in applied if a.startswith(label)] != []
    assert [a for a in applied if a not in adopted(old) and not a.startswith(label)] == []
    numbered = contents(old)["tailrace_migrations"]
    assert [(r[0], r[1]) for r in numbered] == [(v, n[0]) for v, n in NUMBERED[dialect].items()]
    migrate(new)
    assert schema(old) == schema(new)


def test_a_new_database_gets_every_line_in_order(database_url: str) -> None:
    dialect = Dialect.of(database_url)
    with Database(database_url) as handle:
        pending = handle.migrations_pending()
    assert pending == [m.label for m in all_migrations(dialect)]
    status = CliRunner().invoke(
        db_command, ["status"], obj={"database_url": database_url, "app": None}
    )
    assert status.exit_code == 1 and ", ".join(pending) in status.output, status.output
    lines = [label.split("/")[0] for label in pending]
    expected = ["engine", "reprocessing", "streams", "objects", "api"]
    assert lines == sorted(lines, key=expected.index)
    assert migrate(database_url) == pending
    assert migrate(database_url) == []
    assert "tailrace_migrations" not in tables(database_url)


def test_an_applied_migration_this_version_does_not_know_stops_the_upgrade(pg_url: str) -> None:
    """A database migrated by a development branch (its own 0009): refusing beats guessing
    which line it belongs to, and the upgrade leaves the database as it found it."""
    build(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tailrace_migrations (version, name) VALUES (9, 'mystery')")
    before = contents(pg_url)
    with pytest.raises(MigrationError, match="0009_mystery"):
        migrate(pg_url)
    assert contents(pg_url) == before
    assert "tailrace_schema_migrations" not in tables(pg_url)


def test_an_up_to_date_database_opens_while_another_process_holds_the_migration_lock(
    pg_url: str,
) -> None:
    """Every store migrates as it opens; one process paused (SIGSTOP) inside that step must
    not hold back the others once there is nothing left to apply. While something is left,
    the lock still serialises: the second migrator waits."""
    from tailrace.db.connection import SCHEMA_LOCK
    from tailrace.db.migrations import _LOCK

    migrate(pg_url)
    with psycopg.connect(pg_url) as holder:  # a transaction open on the lock, as if paused
        holder.execute(SCHEMA_LOCK, (_LOCK,))
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute("SET lock_timeout = '2s'")
            assert migrate_postgres(other) == []
            other.execute("DELETE FROM tailrace_schema_migrations WHERE line = 'api'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                migrate_postgres(other)
