from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Harness


@pytest.fixture
def harness(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    """Worker processes on both stores; every process is killed and reaped at teardown,
    before the store (a PostgreSQL schema) is dropped."""
    h = Harness(database_url, tmp_path)
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def pg_harness(pg_url: str, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(pg_url, tmp_path)
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def sqlite_harness(tmp_path: Path) -> Iterator[Harness]:
    """For worker behaviour that does not depend on the store: SQLite only."""
    h = Harness(f"sqlite:///{tmp_path}/tailrace.db", tmp_path)
    try:
        yield h
    finally:
        h.close()
