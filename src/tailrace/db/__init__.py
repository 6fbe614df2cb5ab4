"""The database layer every store uses: connections (`Database`, and `Reconnecting` for a
PostgreSQL connection of one's own), the `Dialect`, named queries from ``.sql`` files, and
the migration lines (`migrate`)."""

from __future__ import annotations

from .connection import DEFAULT, PATIENT, PROMPT, SCHEMA_LOCK, ConnectionPolicy, Reconnecting
from .database import Database, migrate
from .dialect import Dialect
from .migrations import LINES, MigrationError
from .queries import load_queries

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
