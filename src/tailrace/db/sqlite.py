"""SQLite connections: the file a URL names, the session settings every store needs, and
write transactions that take the lock at their start."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigurationError

BUSY_TIMEOUT_S = 30.0


def path_from_url(url: str) -> Path:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a bare path."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        if not rest.startswith("/"):
            raise ConfigurationError(f"bad SQLite URL {url!r}: expected sqlite:///path")
        rest = rest[1:]
        return Path(rest) if rest else Path("tailrace.db")
    return Path(url)


def connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from several
    threads one at a time. WAL lets readers run beside the writer; ``synchronous=FULL``
    puts a commit on disk before it returns (stores of frequent, repeatable writes may
    pass NORMAL)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # as sqlite3 says it, so callers report it in their one line
        raise sqlite3.OperationalError(
            f"cannot create the directory {path.parent}: {exc.strerror or exc}"
        ) from None
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the database's write lock at BEGIN, so that two
    writers queue on the busy timeout instead of one failing when it upgrades its lock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def statements(script: str) -> Iterator[str]:
    """Split a script into statements (ours hold no semicolons inside literals): the sqlite3
    module runs one at a time, and ``executescript`` would commit the open transaction."""
    for part in script.split(";"):
        lines = [ln for ln in part.splitlines() if not ln.strip().startswith("--")]
        statement = "\n".join(lines).strip()
        if statement:
            yield statement
