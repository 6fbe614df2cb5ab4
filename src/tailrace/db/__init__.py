"""The database layer every store uses: connections (`Database`, and `Reconnecting` for a
PostgreSQL connection of one's own), the `Dialect`, named queries from ``.sql`` files, and
the migration lines (`migrate`). See README.md here for where a migration goes.

What needs psycopg is imported on first use, so that SQLite users never load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .database import Database, migrate
from .dialect import Dialect
from .migrations import LINES, MigrationError
from .policy import DEFAULT, PATIENT, PROMPT, ConnectionPolicy
from .queries import load_queries

if TYPE_CHECKING:
    from .connection import SCHEMA_LOCK, Reconnecting

__all__ = [
    "DEFAULT",
    "LINES",
    "PATIENT",
    "PROMPT",
    "SCHEMA_LOCK",
    "ConnectionPolicy",
    "Database",
    "Dialect",
    "MigrationError",
    "Reconnecting",
    "load_queries",
    "migrate",
]


def __getattr__(name: str) -> Any:
    if name in ("SCHEMA_LOCK", "Reconnecting"):
        from . import connection

        return getattr(connection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
